"""Choosing and opening an engine (unet_edge/engines/select.py) against the real
onnxruntime, no mocks: availability, the ``auto`` order and its notes, explicit GPU requests
that fail clearly; the tests marked ``gpu`` run only where CUDA really works."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conv_graph import conv_model, random_batch

from unet_edge.engines.options import Provider
from unet_edge.engines.select import installed, open_session, report, unavailable_reason
from unet_edge.engines.session import SessionInfo
from unet_edge.errors import ConfigError, ModelError, ProviderError, UnetEdgeError

CUDA_REASON = unavailable_reason("cuda")
TRT_REASON = unavailable_reason("tensorrt")
OPENVINO_REASON = unavailable_reason("openvino")
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=f"CUDA unusable: {CUDA_REASON}")


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return conv_model()


@pytest.fixture()
def model_path(tmp_path: Path, model_bytes: bytes) -> Path:
    p = tmp_path / "tiny.onnx"
    p.write_bytes(model_bytes)
    return p


def test_cpu_session_runs_and_reports_cpu(model_path: Path) -> None:
    info = open_session(model_path, "cpu")
    assert isinstance(info, SessionInfo)
    assert info.provider is Provider.CPU and info.requested is Provider.CPU
    assert info.notes == ()
    assert info.session.ort_session.get_providers() == ["CPUExecutionProvider"]
    (y,) = info.session.ort_session.run(["y"], {"x": random_batch(2)})
    assert y.shape == (2, 2, 11, 11)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_provider_names_are_case_insensitive(model_bytes: bytes) -> None:
    assert open_session(model_bytes, " CPU ").provider is Provider.CPU


@pytest.mark.parametrize("name", ["cuda", "tensorrt"])
def test_explicit_gpu_request_fails_clearly(
    name: str, model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    if unavailable_reason(name) is None:
        pytest.skip(f"{name} really works here; the failure path cannot be shown")
    capfd.readouterr()
    with pytest.raises(ProviderError) as err:
        open_session(model_path, name, input_shapes=[(2, 1, 13, 13)])
    msg = str(err.value)
    assert isinstance(err.value, UnetEdgeError) and isinstance(err.value, RuntimeError)
    assert f"provider {name!r} was requested but cannot run here" in msg
    assert unavailable_reason(name) in msg  # the reason, e.g. "libcublasLt.so.13 not found"
    assert "pip install" in msg and "cpu provider" in msg
    assert "--provider" not in msg and err.value.option == "provider"  # the CLI adds the flag
    if name == "tensorrt":
        assert "TensorRT" in msg
    # onnxruntime's warnings were captured, not sprayed on the terminal.
    out, errtext = capfd.readouterr()
    assert out == "" and errtext == ""


def test_auto_falls_back_to_cpu_with_notes(
    model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    if CUDA_REASON is None or TRT_REASON is None:
        pytest.skip("a GPU provider works here, so auto does not fall back to the CPU")
    capfd.readouterr()
    info = open_session(model_path, "auto")
    assert info.requested is Provider.AUTO
    assert info.notes[0] == f"auto: tensorrt unavailable ({TRT_REASON})"
    assert info.notes[1] == f"auto: cuda unavailable ({CUDA_REASON})"
    if OPENVINO_REASON is None:  # OpenVINO works here: auto takes it, before the plain cpu
        assert info.provider is Provider.OPENVINO
        assert info.notes[2] == "auto: using openvino"
        assert (
            info.notes[3].startswith("openvino ")
            and "INFERENCE_PRECISION_HINT=f32" in info.notes[3]
        )
    else:
        assert info.provider is Provider.CPU
        assert info.session.ort_session.get_providers() == ["CPUExecutionProvider"]  # type: ignore[union-attr]
        assert info.notes[2] == f"auto: openvino unavailable ({OPENVINO_REASON})"
        assert info.notes[-1] == "auto: using cpu"
    assert capfd.readouterr() == ("", "")


def test_output_streams_work_after_capture(
    model_bytes: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    open_session(model_bytes, "auto")
    print("to stdout")
    os.write(2, b"to fd 2\n")
    out, err = capfd.readouterr()
    assert out == "to stdout\n" and err == "to fd 2\n"


def test_typo_suggests_closest_provider(model_bytes: bytes) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'cuda'"):
        open_session(model_bytes, "cdua")
    with pytest.raises(ConfigError, match="Did you mean 'tensorrt'"):
        open_session(model_bytes, "tensort")


@pytest.mark.parametrize(
    "shapes",
    [[(1, 1, 8)], [(0, 1, 8, 8)], [(1.0, 1, 8, 8)], "1x1x8x8", [(1, 1, 8, -8)], 5],
)
def test_bad_input_shapes_are_refused(model_bytes: bytes, shapes: object) -> None:
    with pytest.raises(ConfigError, match="input"):
        open_session(model_bytes, "cpu", input_shapes=shapes)  # type: ignore[arg-type]


def test_missing_or_broken_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        open_session(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf")
    with pytest.raises(ModelError, match="could not load the model"):
        open_session(bad, "cpu")


def test_probe_and_report_shapes() -> None:
    assert unavailable_reason("cpu") is None
    assert unavailable_reason(Provider.CPU) is None
    with pytest.raises(ConfigError, match="concrete provider"):
        unavailable_reason("auto")
    rows = report()
    assert [r[0] for r in rows] == [
        Provider.CPU,
        Provider.CUDA,
        Provider.TENSORRT,
        Provider.OPENVINO,
    ]
    have = installed()
    assert Provider.CPU in have and Provider.AUTO not in have
    for provider, is_installed, reason in rows:
        assert is_installed == (provider in have)
        assert reason is None or (isinstance(reason, str) and reason)
        if not is_installed:
            assert reason is not None
            assert "not compiled" in reason or "not installed" in reason
    assert rows[0] == (Provider.CPU, True, None)


@pytest.mark.gpu
@needs_cuda
def test_auto_picks_a_gpu_when_one_works(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "auto")
    assert info.provider in (Provider.CUDA, Provider.TENSORRT)
    assert f"auto: using {info.provider.value}" in info.notes
