"""The ONNX Runtime adapter (unet_edge/engines/onnxruntime.py): session options, the
provider chain and TensorRT/CUDA options as handed to onnxruntime (checkable without a GPU);
IO binding and cached TensorRT engines where a GPU really works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conv_graph import conv_model, random_batch

from unet_edge.engines.onnxruntime import _provider_list
from unet_edge.engines.options import Provider, ProviderOptions
from unet_edge.engines.select import open_session, unavailable_reason
from unet_edge.engines.session import run_batch

CUDA_REASON = unavailable_reason("cuda")
TRT_REASON = unavailable_reason("tensorrt")
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=f"CUDA unusable: {CUDA_REASON}")
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT unusable: {TRT_REASON}")


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return conv_model()


@pytest.fixture()
def model_path(tmp_path: Path, model_bytes: bytes) -> Path:
    p = tmp_path / "tiny.onnx"
    p.write_bytes(model_bytes)
    return p


def test_session_options_follow_provider_options(model_bytes: bytes) -> None:
    info = open_session(model_bytes, Provider.CPU, ProviderOptions(threads=1))
    so = info.session.ort_session.get_session_options()
    assert so.intra_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert info.options.threads == 1


def test_tensorrt_options_build_exact_profiles_and_caches(model_path: Path, tmp_path: Path) -> None:
    """The TensorRT provider options as handed to onnxruntime (checkable without a GPU)."""
    cache = tmp_path / "trt" / "cache"
    opts = ProviderOptions(trt_fp16=True, trt_cache_dir=str(cache), device_id=1)
    notes: list[str] = []
    shapes = ((4, 1, 13, 13), (1, 1, 13, 13))
    chain = _provider_list(str(model_path), Provider.TENSORRT, opts, shapes, notes)
    assert [name for name, _ in chain] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = chain[0][1]
    assert trt["device_id"] == "1"
    assert trt["trt_fp16_enable"] == "True"
    assert trt["trt_builder_optimization_level"] == "3"
    spec = "x:4x1x13x13,x:1x1x13x13"  # one profile per shape, the input named again
    assert trt["trt_profile_min_shapes"] == trt["trt_profile_opt_shapes"] == spec
    assert trt["trt_profile_max_shapes"] == spec
    assert trt["trt_engine_cache_enable"] == trt["trt_timing_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(cache)
    assert cache.is_dir()
    assert any("cache" in n for n in notes)
    cuda = chain[1][1]
    assert cuda["device_id"] == "1" and cuda["cudnn_conv_algo_search"] == "EXHAUSTIVE"


@pytest.mark.gpu
@needs_cuda
def test_cuda_session_runs_on_cuda_with_io_binding(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cuda", ProviderOptions(cudnn_conv_algo_search="HEURISTIC"))
    assert info.provider is Provider.CUDA
    assert info.session.ort_session.get_providers()[0] == "CUDAExecutionProvider"
    x = random_batch(4)
    expected = run_batch(open_session(model_bytes, "cpu"), "x", "y", x)
    np.testing.assert_allclose(run_batch(info, "x", "y", x), expected, atol=1e-5)
    np.testing.assert_allclose(run_batch(info, "x", "y", x, io_binding=False), expected, atol=1e-5)


@pytest.mark.gpu
@needs_trt
def test_tensorrt_builds_cached_engines_for_the_tile_shapes(
    model_path: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "trt"
    shapes = [(2, 1, 13, 13), (1, 1, 13, 13)]
    opts = ProviderOptions(trt_cache_dir=str(cache))
    info = open_session(model_path, "tensorrt", opts, input_shapes=shapes)
    assert info.provider is Provider.TENSORRT
    assert info.session.ort_session.get_providers()[0] == "TensorrtExecutionProvider"
    cpu = open_session(model_path, "cpu")
    for shape in shapes:
        x = random_batch(shape[0])
        np.testing.assert_allclose(
            run_batch(info, "x", "y", x), run_batch(cpu, "x", "y", x), atol=1e-4
        )
    assert any(p.suffix == ".engine" for p in cache.iterdir())
