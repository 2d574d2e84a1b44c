"""Why a provider does not come up (unet_edge/engines/diagnose.py): onnxruntime's own words,
as it prints them on Linux when a GPU provider cannot load, read into a few words a user
can act on, and the full message with the fix."""

from __future__ import annotations

import os
import re

import onnxruntime as ort
import pytest
from conv_graph import conv_model

from unet_edge.engines import diagnose
from unet_edge.engines.options import Provider, ProviderOptions

#: What onnxruntime-gpu 1.23 printed on a machine without CUDA 13 (captured here, verbatim).
CUDA_TEXT = (
    "2026-12-03 15:45:08.300045465 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 "
    "operator()] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 "
    "onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL "
    ": Failed to load library /venv/lib/python3.11/site-packages/onnxruntime/capi/"
    "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object "
    "file: No such file or directory\n\n2026-12-03 15:45:08.300256322 [W:onnxruntime:Default, "
    "onnxruntime_pybind_state.cc:1295 CreateExecutionProviderFactoryInstance] Failed to create "
    "CUDAExecutionProvider. Require cuDNN 9.* and CUDA 13.*. Please install all dependencies as "
    "mentioned in the GPU requirements page (https://onnxruntime.ai/docs/execution-providers/"
    "CUDA-ExecutionProvider.html#requirements), make sure they're in the PATH, and that your GPU "
    "is supported."
)
#: The TensorRT provider's words, same machine: its own library loads, CUDA's does not.
TRT_TEXT = (
    "2026-12-03 15:45:08.306023131 [E:onnxruntime:Default, provider_bridge_ort.cc:2430 "
    "operator()] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 "
    "onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL "
    ": Failed to load library /venv/lib/python3.11/site-packages/onnxruntime/capi/"
    "libonnxruntime_providers_tensorrt.so with error: libcublas.so.13: cannot open shared "
    "object file: No such file or directory\n\n*************** EP Error ***************\nEP "
    "Error /onnxruntime_src/onnxruntime/python/onnxruntime_pybind_state.cc:729 void "
    "onnxruntime::python::RegisterTensorRTPluginsAsCustomOps(PySessionOptions&, const "
    "onnxruntime::ProviderOptions&) Please install TensorRT libraries as mentioned in the GPU "
    "requirements page, make sure they're in the PATH or LD_LIBRARY_PATH, and that your GPU is "
    "supported.\n when using ['TensorrtExecutionProvider', 'CPUExecutionProvider']\nFalling back "
    "to ['CPUExecutionProvider'] and retrying.\n****************************************"
)
#: What preload_dlls() prints for each library it cannot find (onnxruntime 1.21+).
PRELOAD_TEXT = (
    "Failed to load libcudnn.so.9: libcudnn.so.9: cannot open shared object file: No such file "
    "or directory\nFailed to load libcufft.so.12: libcufft.so.12: cannot open shared object "
    "file: No such file or directory\nlibcudart.so.13 not found in any of the library paths"
)


@pytest.fixture(autouse=True)
def no_preload_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """What preload_dlls() missed earlier in this process joins every diagnosis: none here."""
    monkeypatch.setattr(diagnose, "_preload_missing", [])


def test_missing_libraries_leave_onnxruntime_s_own_out() -> None:
    assert diagnose.missing_libraries(CUDA_TEXT) == ["libcublasLt.so.13"]
    assert diagnose.missing_libraries(TRT_TEXT) == ["libcublas.so.13"]
    assert diagnose.missing_libraries(PRELOAD_TEXT) == [
        "libcudnn.so.9",
        "libcufft.so.12",
        "libcudart.so.13",
    ]
    assert diagnose.missing_libraries(CUDA_TEXT + CUDA_TEXT) == ["libcublasLt.so.13"]  # once
    assert diagnose.missing_libraries("all is well") == []


def test_diagnose_names_the_libraries_and_the_versions_needed() -> None:
    assert diagnose.diagnose(Provider.CUDA, CUDA_TEXT, "") == (
        "libcublasLt.so.13 not found; this onnxruntime needs cuDNN 9.* and CUDA 13.*"
    )
    assert diagnose.diagnose(Provider.TENSORRT, TRT_TEXT, "") == "libcublas.so.13 not found"


def test_what_preloading_missed_joins_the_diagnosis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "_preload_missing", ["libcublasLt.so.13", "libcudnn.so.9"])
    reason = diagnose.diagnose(Provider.CUDA, CUDA_TEXT, "")
    assert reason.startswith("libcublasLt.so.13, libcudnn.so.9 not found;")


@pytest.mark.parametrize(
    ("provider", "error", "reason"),
    [
        (Provider.TENSORRT, TRT_TEXT.split("\n\n", 1)[1],
         "TensorRT libraries (libnvinfer) not found"),
        (Provider.CUDA, "CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; "
         "hostname=x ; file=cuda_call.cc ; line=123", "no CUDA GPU is visible"),
        (Provider.CUDA, "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime "
         "version ; GPU=0", "the NVIDIA driver is too old for this CUDA runtime"),
        (Provider.CUDA, "CUDA failure 101: invalid device ordinal ; GPU=3",
         "no GPU with the requested device_id"),
        (Provider.CUDA, "", "onnxruntime silently fell back to the CPU"),
    ],
)  # fmt: skip
def test_diagnose_without_a_missing_library(provider: Provider, error: str, reason: str) -> None:
    assert diagnose.diagnose(provider, "", error).startswith(reason)


def test_an_unknown_failure_quotes_onnxruntime_s_first_line() -> None:
    printed = "noise\n2026-12-03 [W:onnxruntime:Default, x.cc:1 f] something new went wrong\n"
    reason = diagnose.diagnose(Provider.CUDA, printed, "")
    assert reason == (
        "onnxruntime did not register it (2026-12-03 [W:onnxruntime:Default, x.cc:1 f] "
        "something new went wrong)"
    )
    said = diagnose.diagnose(Provider.CUDA, "", "RuntimeError: odd\nsecond line")
    assert said == "onnxruntime did not register it (RuntimeError: odd)"


def test_provider_failures_are_told_from_model_failures() -> None:
    assert diagnose.is_provider_failure(CUDA_TEXT) and diagnose.is_provider_failure(TRT_TEXT)
    assert diagnose.is_provider_failure("[ONNXRuntimeError] : 1 : FAIL : GPU out of memory")
    model = "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. Type Error"
    assert not diagnose.is_provider_failure(model)


def test_the_live_cuda_failure_reads_like_the_recorded_one() -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider compiled in")
    session, error, printed = diagnose.call_captured(
        lambda: ort.InferenceSession(conv_model(), providers=["CUDAExecutionProvider"])
    )
    if session is not None and session.get_providers()[0] == "CUDAExecutionProvider":
        pytest.skip("CUDA really works here")
    reason = diagnose.diagnose(Provider.CUDA, printed, str(error or ""))
    assert reason and "\n" not in reason and reason != "onnxruntime silently fell back to the CPU"


def test_call_captured_hands_back_result_error_and_what_was_printed() -> None:
    def loud() -> int:
        os.write(2, b"from C, on fd 2\n")
        print("from Python")
        return 7

    result, error, text = diagnose.call_captured(loud)
    assert (result, error) == (7, None)
    assert sorted(text.splitlines()) == ["from C, on fd 2", "from Python"]

    def failing() -> int:
        os.write(1, b"before failing\n")
        raise ValueError("bad")

    result, error, text = diagnose.call_captured(failing)
    assert result is None and isinstance(error, ValueError) and text.strip() == "before failing"


def test_explain_says_what_why_and_the_fix_naming_no_flag() -> None:
    msg = diagnose.explain(Provider.TENSORRT, "libcublas.so.13 not found")
    assert msg.startswith(
        "provider 'tensorrt' was requested but cannot run here: libcublas.so.13 not found. Fix: "
    )
    assert 'pip install "unet-edge[cuda]"' in msg and 'pip install "unet-edge[tensorrt]"' in msg
    assert "libnvinfer.so.10" in msg and msg.endswith(
        "`unet-edge info` lists the providers that work."
    )
    cuda = diagnose.explain(Provider.CUDA, "no CUDA GPU is visible")
    assert "tensorrt" not in cuda.lower() and "use the cpu provider (or auto" in cuda
    ov = diagnose.explain(Provider.OPENVINO, diagnose.not_installed_reason(Provider.OPENVINO))
    assert ov.count("pip install 'unet-edge[openvino]'") == 1 and "Fix: use the cpu provider" in ov
    for text in (msg, cuda, ov):
        assert not re.search(r"(^|\s)--\w", text)  # the CLI adds flags (cli/messages.py)


def test_not_installed_reasons() -> None:
    assert diagnose.not_installed_reason(Provider.CUDA).startswith(
        f"not compiled into this onnxruntime build ({ort.__version__}); install onnxruntime-gpu"
    )
    assert "openvino package is not installed" in diagnose.not_installed_reason(Provider.OPENVINO)


def test_preloading_is_skipped_when_not_asked_for() -> None:
    assert diagnose.preload(Provider.CUDA, ProviderOptions(preload_dlls=False)) == []
