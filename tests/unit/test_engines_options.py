"""What a caller asks of an engine (unet_edge/engines/options.py): options checked when
made, typos answered with the closest spelling, normalised and frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.config import ComputePrecision
from unet_edge.engines.options import ConvAlgoSearch, Provider, ProviderOptions, check_int
from unet_edge.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads must be an integer >= 1 or None"),
        ({"threads": 2.0}, "threads must be"),
        ({"threads": True}, "threads must be"),
        ({"device_id": -1}, "device_id must be an integer >= 0"),
        ({"cudnn_conv_algo_search": "exhaustiv"}, "Did you mean 'exhaustive'"),
        ({"cudnn_conv_algo_search": 1}, "cudnn_conv_algo_search must be a string"),
        ({"trt_builder_optimization_level": 6}, r"in 0\.\.5"),
        ({"trt_fp16": "yes"}, "trt_fp16 must be True or False"),
        ({"gpu_mem_limit": 0}, "gpu_mem_limit"),
        ({"trt_max_workspace_size": -5}, "trt_max_workspace_size"),
        ({"trt_cache_dir": ""}, "trt_cache_dir must be a folder path"),
        ({"preload_dlls": 1}, "preload_dlls must be True or False"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ProviderOptions(**kwargs)  # type: ignore[arg-type]


def test_options_are_normalised_and_frozen(tmp_path: Path) -> None:
    o = ProviderOptions(cudnn_conv_algo_search="heuristic", trt_cache_dir=tmp_path)  # type: ignore[arg-type]
    assert o.cudnn_conv_algo_search == "HEURISTIC"
    assert o.trt_cache_dir == str(tmp_path)
    assert ProviderOptions().cudnn_conv_algo_search == "EXHAUSTIVE"
    with pytest.raises(AttributeError):
        o.device_id = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "low", "high", "optional", "ok"),
    [
        (1, 1, None, False, True),
        (10**12, 1, None, False, True),  # no upper bound
        (0, 1, None, False, False),
        (5, 0, 5, False, True),
        (6, 0, 5, False, False),
        (None, 1, None, True, True),
        (None, 1, None, False, False),
        (True, 0, None, False, False),  # a bool is not a count
        (np.int64(3), 0, None, False, False),  # numpy integers are not Python ints
        ("3", 0, None, False, False),
    ],
)
def test_check_int(value: object, low: int, high: int | None, optional: bool, ok: bool) -> None:
    if ok:
        check_int("n", value, low, high, optional)
        return
    wanted = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    said = f"n must be {wanted}{' or None' if optional else ''}, got {value!r}"
    with pytest.raises(ConfigError) as e:
        check_int("n", value, low, high, optional)
    assert str(e.value) == said


def test_precision_is_looked_up_and_a_typo_is_answered() -> None:
    assert ProviderOptions(precision=" BF16 ").precision == "bf16"
    assert ProviderOptions(precision=ComputePrecision.FP32).precision == "fp32"
    with pytest.raises(ConfigError, match=r"unknown precision 'bf61'.*Did you mean 'bf16'"):
        ProviderOptions(precision="bf61")


def test_providers_by_the_names_users_type() -> None:
    assert [p.value for p in Provider] == ["auto", "cpu", "cuda", "tensorrt", "openvino"]
    assert Provider("tensorrt") is Provider.TENSORRT and Provider.CUDA == "cuda"
    assert ProviderOptions(
        cudnn_conv_algo_search=ConvAlgoSearch.DEFAULT
    ).cudnn_conv_algo_search == ("DEFAULT")
    assert ProviderOptions(trt_cache_dir=None).trt_cache_dir is None
