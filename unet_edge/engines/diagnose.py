"""Why a provider does not come up here, in words a user can act on; and the library
preloading that spares users library paths.

onnxruntime's C++ logger writes straight to the process's stderr. What it
says while a session is created (or while ``preload_dlls`` loads CUDA) is
captured (:mod:`unet_edge.capture`) and read here: the missing libraries,
no visible GPU, a driver too old. :func:`diagnose` turns that into a reason
of a few words (an ``auto`` note), :func:`explain` into the full message of
a :class:`~unet_edge.errors.ProviderError` with the fix.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import onnxruntime as ort

from ..capture import captured, first_line
from .openvino import INSTALL as OPENVINO_INSTALL
from .options import Provider, ProviderOptions

__all__ = [
    "call_captured",
    "diagnose",
    "explain",
    "is_provider_failure",
    "missing_libraries",
    "not_installed_reason",
    "preload",
]

_T = TypeVar("_T")


def call_captured(fn: Callable[[], _T]) -> tuple[_T | None, Exception | None, str]:
    """Call ``fn`` with the process's stdout and stderr captured.

    Returns:
        (its result, or ``None`` if it raised; the exception it raised, or
        ``None``; what was printed meanwhile). The text is read once the
        capture has ended, so it is complete whether ``fn`` raised or not.
    """
    result: _T | None = None
    error: Exception | None = None
    with captured() as said:
        try:
            result = fn()
        except Exception as e:  # handed back: the caller decides what it means
            error = e
    return result, error, said.text


# ---------------------------------------------------------------------------
# Preloading


_preload_lock = threading.Lock()
_preload_result: list[str | None] = []  # [note] once preload_dlls has been tried
_preload_missing: list[str] = []  # the libraries it could not load


def preload(provider: Provider, opts: ProviderOptions) -> list[str]:
    """Load the libraries a GPU ``provider`` needs, unless ``opts.preload_dlls`` is off.

    Returns notes for the user: what could not be loaded (CUDA, cuDNN), and
    for TensorRT what was loaded from where.
    """
    if not opts.preload_dlls:
        return []
    notes = [n for n in (_preload_dlls(),) if n]
    if provider is Provider.TENSORRT:
        notes.extend(_preload_tensorrt())
    return notes


def _preload_dlls() -> str | None:
    """Call ``onnxruntime.preload_dlls()`` once per process; return a note on failure.

    It loads CUDA and cuDNN from ``nvidia-*`` pip packages (or the default
    library path) so the CUDA provider can find them. It prints what it could
    not load; that text is captured and kept for :func:`diagnose`.
    """
    with _preload_lock:
        if _preload_result:
            return _preload_result[0]
        fn = getattr(ort, "preload_dlls", None)
        note: str | None = None
        if fn is not None:
            try:
                _, error, text = call_captured(fn)
            except Exception as e:  # the capture itself could not start (no temporary file)
                error, text = e, ""
            if error is not None:  # a helper must never be why a session fails
                note = f"onnxruntime.preload_dlls() failed: {first_line(str(error))}"
            missing = missing_libraries(text)
            _preload_missing.extend(missing)
            if missing and note is None:
                note = f"onnxruntime.preload_dlls() could not load {', '.join(missing)}"
        _preload_result.append(note)
        return note


@functools.cache
def _preload_tensorrt() -> tuple[str, ...]:
    """Load TensorRT 10 from the ``tensorrt-cu13-libs`` wheel (``unet-edge[tensorrt]``), if any.

    onnxruntime's TensorRT provider links ``libnvinfer.so.10`` and
    ``libnvonnxparser.so.10`` but ``preload_dlls()`` does not look for
    TensorRT; loading them globally first spares the user LD_LIBRARY_PATH.
    Returns notes (what was loaded, or why not); nothing when the wheel is absent.
    """
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = next(iter(spec.submodule_search_locations))
    loaded, notes = [], []
    for name in ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10"):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            loaded.append(name)
        except OSError as e:
            notes.append(f"tensorrt: could not load {path}: {first_line(str(e))}")
    if loaded:
        notes.append(f"tensorrt: loaded {', '.join(loaded)} from {folder}")
    return tuple(notes)


# ---------------------------------------------------------------------------
# Reading what onnxruntime said


_MISSING_LIB = re.compile(
    r"([\w.+-]+\.(?:so(?:\.[\d.]+)?|dll|dylib))[\"']?:? "
    r"(?:cannot open shared object file|No such file|.*?not found)"
)
_WIN_MISSING = re.compile(
    r'LoadLibrary failed with error \d+ "[^"]*" when trying to load "([^"]+)"'
)
_REQUIRE = re.compile(r"Require (cuDNN \d+(?:\.\*)? and CUDA \d+(?:\.\*)?)")


def missing_libraries(text: str) -> list[str]:
    """The shared libraries ``text`` says could not be loaded, in order, each once
    (onnxruntime's own provider libraries left out: they are there, their dependencies not)."""
    found: list[str] = []
    for m in _MISSING_LIB.finditer(text):
        name = m.group(1)
        if name not in found and "onnxruntime_providers" not in name:
            found.append(name)
    for m in _WIN_MISSING.finditer(text):
        name = os.path.basename(m.group(1))
        if name not in found:
            found.append(name)
    return found


def is_provider_failure(text: str) -> bool:
    """Whether an error ``text`` is about a GPU provider rather than about the model."""
    t = text.lower()
    return any(k in t for k in ("cuda", "tensorrt", "nvinfer", "cudnn", "provider", "gpu"))


def diagnose(provider: Provider, printed: str, error: str) -> str:
    """A few words on why ``provider`` did not come up, from onnxruntime's messages
    (``printed``: what it wrote to stdout/stderr; ``error``: the exception's text, or empty)."""
    text = f"{printed}\n{error}"
    # The provider's own load stops at the first missing library; preload_dlls
    # tried them all, so together they name everything to install.
    missing = missing_libraries(text)
    missing += [m for m in _preload_missing if m not in missing]
    low = text.lower()
    if missing:
        reason = f"{', '.join(missing)} not found"
    elif provider is Provider.TENSORRT and (
        "install tensorrt" in low or "nvinfer" in low or "tensorrt librar" in low
    ):
        reason = "TensorRT libraries (libnvinfer) not found"
    elif "no cuda-capable device" in low or "cudaerrornodevice" in low or "cuda failure 100" in low:
        reason = "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
    elif "driver version is insufficient" in low:
        reason = "the NVIDIA driver is too old for this CUDA runtime"
    elif "invalid device ordinal" in low:
        reason = "no GPU with the requested device_id"
    else:
        lines = [first_line(ln) for ln in text.splitlines() if "[E:" in ln or "[W:" in ln]
        detail = lines[0] if lines else first_line(error)
        if detail:
            reason = f"onnxruntime did not register it ({detail})"
        else:
            reason = "onnxruntime silently fell back to the CPU"

    req = _REQUIRE.search(text)
    if req:
        reason += f"; this onnxruntime needs {req.group(1)}"
    return reason


# ---------------------------------------------------------------------------
# Explaining


def not_installed_reason(provider: Provider) -> str:
    """Why ``provider`` is not even installed here (not compiled in, package missing)."""
    if provider is Provider.OPENVINO:
        return f"the openvino package is not installed ({OPENVINO_INSTALL})"
    return (
        f"not compiled into this onnxruntime build ({ort.__version__}); "
        "install onnxruntime-gpu (Linux x86_64 or Windows) instead of onnxruntime"
    )


def explain(provider: Provider, reason: str) -> str:
    """The full ProviderError message: what was asked, why it failed, how to fix it."""
    if provider is Provider.OPENVINO:
        fix = "" if OPENVINO_INSTALL in reason else f"Fix: {OPENVINO_INSTALL}, or "
        return (
            f"provider 'openvino' was requested but cannot run here: {reason}. "
            f"{fix or 'Fix: '}use the cpu provider (or auto, which falls back and says so). "
            "`unet-edge info` lists the providers that work."
        )
    major = _cuda_major()
    libs = (
        f'pip install "unet-edge[cuda]" (onnxruntime-gpu[cuda,cudnn]: CUDA {major} and cuDNN 9 '
        "as pip wheels, which unet-edge finds through onnxruntime.preload_dlls()), "
        f"or install CUDA {major}.x and cuDNN 9 system-wide and put them on "
        f"{'PATH' if sys.platform == 'win32' else 'LD_LIBRARY_PATH'}"
    )
    if provider is Provider.TENSORRT:
        fix = (
            f"{libs}; and TensorRT 10, which this onnxruntime links (libnvinfer.so.10): "
            f'pip install "unet-edge[tensorrt]" (tensorrt-cu{major}-libs 10.x; plain '
            f"tensorrt-cu{major} now installs TensorRT 11, which it cannot load)"
        )
    else:
        fix = libs
    return (
        f"provider {provider.value!r} was requested but cannot run here: {reason}. "
        f"Fix: {fix}; or use the cpu provider (or auto, which falls back and says so). "
        "`unet-edge info` lists the providers that work."
    )


def _cuda_major() -> int:
    """The CUDA major version this onnxruntime was built for (12 when it does not say)."""
    version = str(getattr(ort, "cuda_version", "") or "12")
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 12
