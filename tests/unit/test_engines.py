"""Execution providers against the real onnxruntime: no mocks.

On a machine without a GPU (or without CUDA/cuDNN/TensorRT libraries) the
tests check that explicit GPU requests fail clearly and that ``auto`` falls
back and says so; the tests marked ``gpu`` run only where CUDA really works.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from unet_edge.engines.onnxruntime import _provider_list
from unet_edge.engines.options import Provider, ProviderOptions
from unet_edge.engines.select import installed, open_session, report, unavailable_reason
from unet_edge.engines.session import SessionInfo, run_batch
from unet_edge.errors import ConfigError, InputError, ModelError, ProviderError, UnetEdgeError

CUDA_REASON = unavailable_reason("cuda")
TRT_REASON = unavailable_reason("tensorrt")
OPENVINO_REASON = unavailable_reason("openvino")
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=f"CUDA unusable: {CUDA_REASON}")
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT unusable: {TRT_REASON}")


def _conv_model(classes: int = 2) -> bytes:
    """x (N, 1, H, W) float32 -> valid 3x3 conv -> softmax -> y (N, classes, H-2, W-2)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(classes, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["z"], kernel_shape=[3, 3]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes, "h", "w"])
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return _conv_model()


@pytest.fixture()
def model_path(tmp_path: Path, model_bytes: bytes) -> Path:
    p = tmp_path / "tiny.onnx"
    p.write_bytes(model_bytes)
    return p


def _batch(n: int, size: int = 13, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, size, size), dtype=np.float32)


# --- CPU ------------------------------------------------------------------


def test_cpu_session_runs_and_reports_cpu(model_path: Path) -> None:
    info = open_session(model_path, "cpu")
    assert isinstance(info, SessionInfo)
    assert info.provider is Provider.CPU and info.requested is Provider.CPU
    assert info.notes == ()
    assert info.session.ort_session.get_providers() == ["CPUExecutionProvider"]
    (y,) = info.session.ort_session.run(["y"], {"x": _batch(2)})
    assert y.shape == (2, 2, 11, 11)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_session_options_follow_provider_options(model_bytes: bytes) -> None:
    info = open_session(model_bytes, Provider.CPU, ProviderOptions(threads=1))
    so = info.session.ort_session.get_session_options()
    assert so.intra_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert info.options.threads == 1


def test_provider_names_are_case_insensitive(model_bytes: bytes) -> None:
    assert open_session(model_bytes, " CPU ").provider is Provider.CPU


# --- GPU requested where it cannot run ------------------------------------------


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


# --- options and arguments ------------------------------------------------------


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


# --- probe, report, installed ---------------------------------------------------


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


# --- run_batch -----------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3])
def test_run_batch_equals_session_run_on_cpu(model_bytes: bytes, n: int) -> None:
    info = open_session(model_bytes, "cpu")
    x = _batch(n)
    (expected,) = info.session.ort_session.run(["y"], {"x": x})
    plain = run_batch(info, "x", "y", x)
    bound = run_batch(info, "x", "y", x, io_binding=True)  # the IO-binding path, on host memory
    np.testing.assert_array_equal(plain, expected)
    np.testing.assert_array_equal(bound, expected)
    assert bound.dtype == np.float32 and bound.shape == (n, 2, 11, 11)


def test_run_batch_accepts_non_contiguous_input(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cpu")
    x = _batch(2, size=26)[:, :, ::2, ::2]
    assert not x.flags.c_contiguous
    expected = info.session.ort_session.run(["y"], {"x": np.ascontiguousarray(x)})[0]
    np.testing.assert_array_equal(run_batch(info, "x", "y", x, io_binding=True), expected)


def test_run_batch_refuses_wrong_dtype_name_and_rank(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cpu")
    with pytest.raises(InputError, match=r"expects float32.*astype"):
        run_batch(info, "x", "y", _batch(1).astype(np.float64))
    with pytest.raises(InputError, match="no input named 'image'"):
        run_batch(info, "image", "y", _batch(1))
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        run_batch(info, "x", "y", _batch(1)[0])


# --- on a real GPU ---------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_cuda_session_runs_on_cuda_with_io_binding(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cuda", ProviderOptions(cudnn_conv_algo_search="HEURISTIC"))
    assert info.provider is Provider.CUDA
    assert info.session.ort_session.get_providers()[0] == "CUDAExecutionProvider"
    x = _batch(4)
    expected = run_batch(open_session(model_bytes, "cpu"), "x", "y", x)
    np.testing.assert_allclose(run_batch(info, "x", "y", x), expected, atol=1e-5)
    np.testing.assert_allclose(run_batch(info, "x", "y", x, io_binding=False), expected, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_auto_picks_a_gpu_when_one_works(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "auto")
    assert info.provider in (Provider.CUDA, Provider.TENSORRT)
    assert f"auto: using {info.provider.value}" in info.notes


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
        x = _batch(shape[0])
        np.testing.assert_allclose(
            run_batch(info, "x", "y", x), run_batch(cpu, "x", "y", x), atol=1e-4
        )
    assert any(p.suffix == ".engine" for p in cache.iterdir())
