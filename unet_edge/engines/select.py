"""Execution providers: names, options, availability and honest fallback.

onnxruntime-gpu lists ``CUDAExecutionProvider`` and ``TensorrtExecutionProvider``
as *available* whenever they are compiled in, even on a machine without a GPU
or without the CUDA, cuDNN and TensorRT libraries. Asked for them, it logs a
warning to stderr and quietly runs on the CPU. This module never lets that
pass: after creating a session it compares ``session.get_providers()`` with
what was asked. An explicit ``cuda`` or ``tensorrt`` request that was
downgraded raises :class:`~unet_edge.errors.ProviderError` naming the missing
libraries and how to install them; ``auto`` tries TensorRT, then CUDA, then
OpenVINO, then the CPU and records in :attr:`SessionInfo.notes` what it chose
and why.

``openvino`` is not an onnxruntime provider: the same ONNX file is compiled by
OpenVINO for the CPU (:mod:`unet_edge.openvino_backend`), opened, probed and
run through the same functions here.

onnxruntime's own messages (its C++ logger writes straight to the process's
stderr) are captured while a session is created and turned into those
reasons and notes instead of reaching the terminal. The library never prints.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from ..capture import captured, first_line
from ..config import ComputePrecision, look_up
from ..errors import ConfigError, InputError, ModelError, ProviderError
from .openvino import INSTALL as _OPENVINO_INSTALL
from .openvino import OpenVinoSession
from .openvino import installed as _openvino_installed

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "Provider",
    "ProviderOptions",
    "SessionInfo",
    "installed",
    "open_session",
    "probe",
    "report",
    "run_batch",
]


class Provider(str, enum.Enum):
    """An execution provider, by the name users type (``--provider cuda``)."""

    AUTO = "auto"  # the best of tensorrt, cuda, openvino, cpu that really works here
    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"  # OpenVINO on the CPU (not an onnxruntime provider)


# onnxruntime's names for the concrete providers.
_ORT_NAME: dict[Provider, str] = {
    Provider.CPU: "CPUExecutionProvider",
    Provider.CUDA: "CUDAExecutionProvider",
    Provider.TENSORRT: "TensorrtExecutionProvider",
}
_CONCRETE: tuple[Provider, ...] = (
    Provider.CPU,
    Provider.CUDA,
    Provider.TENSORRT,
    Provider.OPENVINO,
)
_AUTO_ORDER: tuple[Provider, ...] = (Provider.TENSORRT, Provider.CUDA, Provider.OPENVINO)


class _ConvAlgoSearch(str, enum.Enum):
    """cuDNN convolution algorithm search, as onnxruntime's CUDA provider names it."""

    EXHAUSTIVE = "exhaustive"  # benchmark every algorithm on the first run of each shape
    HEURISTIC = "heuristic"  # cuDNN's heuristic ranking, no benchmarking
    DEFAULT = "default"  # always IMPLICIT_PRECOMP_GEMM; least memory


@dataclass(frozen=True)
class ProviderOptions:
    """Options that matter for the providers unet-edge uses.

    Options of providers that are not used are ignored (``trt_*`` on CUDA).

    Attributes:
        threads: CPU intra-op threads (OpenVINO: ``INFERENCE_NUM_THREADS``);
            ``None`` leaves the runtime's default (one per physical core).
        precision: arithmetic for the graph's float parts: ``"fp32"``, or
            ``"bf16"`` (``openvino`` only, on CPUs with AVX512-BF16 or AMX:
            about 2x faster, a few pixels may change class). Not the graph's
            own precision (an int8 file stays int8).
        device_id: CUDA device index for CUDA and TensorRT.
        cudnn_conv_algo_search: ``"EXHAUSTIVE"`` (fastest kernels, a slow first
            batch per tile shape), ``"HEURISTIC"`` or ``"DEFAULT"``
            (least memory). Case-insensitive; stored upper-case.
        gpu_mem_limit: cap in bytes on the CUDA provider's memory arena;
            ``None`` for no cap.
        trt_fp16: let TensorRT pick fp16 kernels (faster on tensor cores,
            results differ slightly from fp32).
        trt_cache_dir: folder for TensorRT engine and timing caches, so that
            engines are built once per tile shape and reused by later runs;
            created if missing. ``None`` disables both caches.
        trt_builder_optimization_level: TensorRT builder effort, 0..5
            (onnxruntime's default 3); higher builds slower, may run faster.
        trt_max_workspace_size: TensorRT builder workspace in bytes; ``None``
            leaves onnxruntime's default (the device's memory).
        preload_dlls: call ``onnxruntime.preload_dlls()`` once before the first
            CUDA or TensorRT session, so that CUDA and cuDNN installed as
            ``nvidia-*`` pip packages are found without setting library paths.
    """

    threads: int | None = None
    precision: str = "fp32"
    device_id: int = 0
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    gpu_mem_limit: int | None = None
    trt_fp16: bool = False
    trt_cache_dir: str | None = None
    trt_builder_optimization_level: int = 3
    trt_max_workspace_size: int | None = None
    preload_dlls: bool = True

    def __post_init__(self) -> None:
        _check_int("threads", self.threads, low=1, optional=True)
        _check_int("device_id", self.device_id, low=0)
        _check_int("gpu_mem_limit", self.gpu_mem_limit, low=1, optional=True)
        _check_int("trt_builder_optimization_level", self.trt_builder_optimization_level, 0, 5)
        _check_int("trt_max_workspace_size", self.trt_max_workspace_size, low=1, optional=True)
        search = look_up(_ConvAlgoSearch, self.cudnn_conv_algo_search, "cudnn_conv_algo_search")
        object.__setattr__(self, "cudnn_conv_algo_search", search.value.upper())
        object.__setattr__(
            self, "precision", look_up(ComputePrecision, self.precision, "precision").value
        )
        for name in ("trt_fp16", "preload_dlls"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.trt_cache_dir is not None:
            if not isinstance(self.trt_cache_dir, (str, os.PathLike)) or not str(
                self.trt_cache_dir
            ):
                raise ConfigError(
                    f"trt_cache_dir must be a folder path or None, got {self.trt_cache_dir!r}"
                )
            object.__setattr__(self, "trt_cache_dir", os.fspath(self.trt_cache_dir))


def _check_int(
    name: str, value: object, low: int, high: int | None = None, optional: bool = False
) -> None:
    if value is None and optional:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= low and (high is None or value <= high):  # type: ignore[operator]
        return
    wanted = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    raise ConfigError(f"{name} must be {wanted}{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class SessionInfo:
    """An open session and the truth about where it runs.

    Attributes:
        session: the onnxruntime session (an :class:`OpenVinoSession` for ``openvino``).
        provider: the provider that really runs the graph (``CPU`` after
            ``auto`` fell back); never ``AUTO``.
        requested: what the caller asked for.
        notes: human-readable remarks for the user, e.g.
            ``"auto: cuda unavailable (libcublasLt.so.13 not found), using cpu"``.
        options: the options the session was created with.
    """

    session: ort.InferenceSession | OpenVinoSession
    provider: Provider
    requested: Provider
    notes: tuple[str, ...] = ()
    options: ProviderOptions = field(default_factory=ProviderOptions)


class _Unavailable(Exception):
    """Internal: a provider could not be used; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Availability


def installed() -> list[Provider]:
    """Providers installed here, in the order cpu, cuda, tensorrt, openvino.

    cuda and tensorrt: compiled into this onnxruntime build; openvino: the
    ``openvino`` package is installed. Being installed says nothing about
    whether the provider works here: see :func:`probe`.
    """
    available = set(ort.get_available_providers())
    have = [p for p in _CONCRETE if p in _ORT_NAME and _ORT_NAME[p] in available]
    return have + ([Provider.OPENVINO] if _openvino_installed() else [])


def probe(provider: Provider | str, *, refresh: bool = False) -> str | None:
    """Check whether ``provider`` really runs a graph here.

    Opens a tiny in-memory ONNX graph with that provider alone (plus the CPU
    for nodes it does not take), runs it once and checks
    ``get_providers()``. The answer is cached per process; ``refresh=True``
    probes again.

    Returns:
        ``None`` if the provider works, else the reason in a few words.

    Raises:
        ConfigError: for an unknown name, or for ``auto`` (probe a concrete
            provider; ``auto`` always ends on the CPU).
    """
    p = look_up(Provider, provider, "execution provider")
    if p is Provider.AUTO:
        raise ConfigError(
            "probe() needs a concrete provider (cpu, cuda, tensorrt or openvino), got 'auto'; "
            "auto always works because it ends on the cpu"
        )
    if refresh:
        _probe_cached.cache_clear()
    return _probe_cached(p)


@functools.cache
def _probe_cached(provider: Provider) -> str | None:
    try:
        info = _open_exact(_tiny_model(), provider, ProviderOptions(), ())
        x = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(1, 1, 4, 4)
        y = run_batch(info, "x", "y", x)
    except _Unavailable as e:
        return e.reason
    except Exception as e:  # anything else still means "does not work here"
        return first_line(str(e)) or type(e).__name__
    if not np.allclose(y, np.maximum(x, 0.0)):
        return f"{provider.value} ran the probe graph but returned wrong values"
    return None


def report() -> list[tuple[Provider, bool, str | None]]:
    """For each concrete provider: (provider, compiled in, reason it does not work or None).

    Meant for ``unet-edge info``. Probes each installed provider (cached).
    """
    have = set(installed())
    rows: list[tuple[Provider, bool, str | None]] = []
    for p in _CONCRETE:
        if p in have:
            rows.append((p, True, probe(p)))
        else:
            rows.append((p, False, _not_compiled_reason(p)))
    return rows


def _not_compiled_reason(provider: Provider) -> str:
    if provider is Provider.OPENVINO:
        return f"the openvino package is not installed ({_OPENVINO_INSTALL})"
    return (
        f"not compiled into this onnxruntime build ({ort.__version__}); "
        "install onnxruntime-gpu (Linux x86_64 or Windows) instead of onnxruntime"
    )


def _tiny_model() -> bytes:
    """A one-node graph ``y = relu(x)`` with ``x`` of shape (N, 1, H, W), float32."""
    # onnx is imported here: only probing needs it, and it is not cheap to import.
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    # IR 8 / opset 17: old enough for every onnxruntime we support (a fresh onnx
    # writes an IR version newer onnxruntime builds refuse).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString())


# ---------------------------------------------------------------------------
# Opening sessions


def open_session(
    model: str | os.PathLike[str] | bytes,
    provider: Provider | str = "cpu",
    options: ProviderOptions | None = None,
    input_shapes: Sequence[tuple[int, int, int, int]] = (),
) -> SessionInfo:
    """Open an onnxruntime session on ``provider`` and say what really runs it.

    Args:
        model: path of an ONNX file, or its bytes.
        provider: ``"cpu"``, ``"cuda"``, ``"tensorrt"``, ``"openvino"`` or
            ``"auto"`` (or a :class:`Provider`). ``auto`` tries tensorrt, cuda,
            openvino, cpu in that order.
        options: provider options; ``None`` for the defaults.
        input_shapes: the exact (N, C, H, W) batch shapes the tiler will send
            (typically the full batch and the last, smaller one). TensorRT
            builds one optimisation profile for exactly each of them (min =
            opt = max), OpenVINO compiles each now; another shape makes them
            build an engine or compile at run time. Ignored by the other
            providers.

    Returns:
        A :class:`SessionInfo`; ``provider`` is what really runs the graph.

    Raises:
        ConfigError: unknown provider name (with the closest spelling), bad
            ``input_shapes``, or ``bf16`` precision with another provider
            than ``openvino``.
        ProviderError: ``cuda``, ``tensorrt`` or ``openvino`` was asked for
            explicitly and cannot run here; the message names the missing
            libraries and the fix.
        ModelError: the model file is missing or onnxruntime cannot load it.
    """
    requested = look_up(Provider, provider, "execution provider")
    opts = ProviderOptions() if options is None else options
    if not isinstance(opts, ProviderOptions):
        raise ConfigError(f"options must be a ProviderOptions or None, got {type(opts).__name__}")
    shapes = _check_shapes(input_shapes)
    source = _model_source(model)
    if opts.precision != ComputePrecision.FP32.value and requested is not Provider.OPENVINO:
        raise ConfigError(
            f"precision {opts.precision!r} needs the openvino provider, got "
            f"{requested.value!r} (onnxruntime computes an fp32 graph in fp32); choose the "
            "openvino provider or fp32 precision",
            option="precision",
        )
    if requested is Provider.AUTO:
        return _open_auto(source, opts, shapes)
    try:
        return _open_exact(source, requested, opts, shapes)
    except _Unavailable as e:
        raise ProviderError(_explain(requested, e.reason), option="provider") from None


def _open_auto(
    source: str | bytes, opts: ProviderOptions, shapes: tuple[tuple[int, int, int, int], ...]
) -> SessionInfo:
    """The first of :data:`_AUTO_ORDER` that opens, else the CPU; the notes say why."""
    notes: list[str] = []
    for candidate in _AUTO_ORDER:
        try:
            info = _open_exact(source, candidate, opts, shapes)
        except _Unavailable as e:
            notes.append(f"auto: {candidate.value} unavailable ({e.reason})")
            continue
        notes.append(f"auto: using {candidate.value}")
        return replace(info, requested=Provider.AUTO, notes=(*notes, *info.notes))
    info = _open_exact(source, Provider.CPU, opts, shapes)
    notes.append("auto: using cpu")
    return replace(info, requested=Provider.AUTO, notes=(*notes, *info.notes))


def _open_exact(
    source: str | bytes,
    provider: Provider,
    opts: ProviderOptions,
    shapes: tuple[tuple[int, int, int, int], ...],
) -> SessionInfo:
    """Open ``source`` on exactly ``provider`` or raise :class:`_Unavailable`."""
    if provider is Provider.OPENVINO:
        return _open_openvino(source, opts, shapes)
    notes: list[str] = []
    if provider is not Provider.CPU:
        if provider not in installed():
            raise _Unavailable(_not_compiled_reason(provider))
        preload_note = _preload_dlls() if opts.preload_dlls else None
        if preload_note:
            notes.append(preload_note)
        if provider is Provider.TENSORRT and opts.preload_dlls:
            notes.extend(_preload_tensorrt())
    providers = _provider_list(source, provider, opts, shapes, notes)
    try:
        with captured() as said:
            # enable_fallback=0: a provider that fails to register raises here
            # instead of onnxruntime printing a banner and retrying on the CPU.
            session = ort.InferenceSession(
                source, sess_options=_session_options(opts), providers=providers, enable_fallback=0
            )
    except Exception as e:
        if provider is not Provider.CPU and _is_provider_failure(str(e) + said.text):
            raise _Unavailable(_diagnose(provider, said.text, str(e))) from e
        raise ModelError(
            f"onnxruntime could not load the model: {first_line(str(e))}; "
            "expected an ONNX file exported by `unet-edge export`"
        ) from e
    got = session.get_providers()
    if got[0] != _ORT_NAME[provider]:
        raise _Unavailable(_diagnose(provider, said.text, ""))
    if provider is not Provider.CPU:
        # No silent switch to the CPU at run time either.
        session.disable_fallback()
        if provider is Provider.TENSORRT and not shapes:
            notes.append(
                "tensorrt: no input shapes given, so engines are built at run time "
                "for each new tile shape"
            )
    return SessionInfo(session, provider, provider, tuple(notes), opts)


def _open_openvino(
    source: str | bytes, opts: ProviderOptions, shapes: tuple[tuple[int, int, int, int], ...]
) -> SessionInfo:
    """OpenVINO on the CPU, or :class:`_Unavailable`; a precision it refuses is raised as is."""
    try:
        s = OpenVinoSession(source, opts.precision, opts.threads, shapes)
    except ProviderError as e:
        if e.option == "precision":
            raise
        raise _Unavailable(str(e)) from e
    return SessionInfo(s, Provider.OPENVINO, Provider.OPENVINO, (s.describe(),), opts)


def _session_options(opts: ProviderOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if opts.threads is not None:
        so.intra_op_num_threads = opts.threads
    # Errors only: "some nodes were not assigned to the preferred provider"
    # is expected (shape ops run on the CPU) and not worth a warning.
    so.log_severity_level = 3
    return so


def _provider_list(
    source: str | bytes,
    provider: Provider,
    opts: ProviderOptions,
    shapes: tuple[tuple[int, int, int, int], ...],
    notes: list[str],
) -> list[tuple[str, dict[str, str]]]:
    """onnxruntime's ``providers=`` argument: the provider, then its fallbacks for nodes."""
    cpu: tuple[str, dict[str, str]] = (_ORT_NAME[Provider.CPU], {})
    if provider is Provider.CPU:
        return [cpu]
    cuda = (_ORT_NAME[Provider.CUDA], _cuda_options(opts))
    if provider is Provider.CUDA:
        return [cuda, cpu]
    # CUDA behind TensorRT takes the nodes TensorRT cannot (documented practice).
    return [
        (_ORT_NAME[Provider.TENSORRT], _tensorrt_options(source, opts, shapes, notes)),
        cuda,
        cpu,
    ]


def _cuda_options(opts: ProviderOptions) -> dict[str, str]:
    o = {
        "device_id": str(opts.device_id),
        "cudnn_conv_algo_search": opts.cudnn_conv_algo_search,
        # Same stream for copies and compute: onnxruntime's default, and the
        # other setting can race (onnxruntime issue #4829).
        "do_copy_in_default_stream": "1",
    }
    if opts.gpu_mem_limit is not None:
        o["gpu_mem_limit"] = str(opts.gpu_mem_limit)
    return o


def _tensorrt_options(
    source: str | bytes,
    opts: ProviderOptions,
    shapes: tuple[tuple[int, int, int, int], ...],
    notes: list[str],
) -> dict[str, str]:
    o = {
        "device_id": str(opts.device_id),
        "trt_fp16_enable": str(opts.trt_fp16),
        "trt_builder_optimization_level": str(opts.trt_builder_optimization_level),
    }
    if opts.trt_max_workspace_size is not None:
        o["trt_max_workspace_size"] = str(opts.trt_max_workspace_size)
    if opts.trt_cache_dir is not None:
        try:
            os.makedirs(opts.trt_cache_dir, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create the TensorRT cache folder {opts.trt_cache_dir!r}: {e.strerror}; "
                "choose a writable folder or trt_cache_dir=None"
            ) from e
        o.update(
            trt_engine_cache_enable="True",
            trt_engine_cache_path=opts.trt_cache_dir,
            trt_timing_cache_enable="True",
            trt_timing_cache_path=opts.trt_cache_dir,
        )
        notes.append(f"tensorrt: engine and timing caches in {opts.trt_cache_dir}")
    if shapes:
        o.update(_profile_options(_input_name(source), shapes))
    return o


def _profile_options(name: str, shapes: Sequence[tuple[int, int, int, int]]) -> dict[str, str]:
    """One TensorRT optimisation profile per shape, min = opt = max.

    onnxruntime reads ``name:AxBxCxD`` entries separated by commas; the same
    input named again starts another profile.
    """
    if any(c in name for c in ",:"):
        raise ModelError(
            f"the model's input is named {name!r}; TensorRT profiles cannot name an input "
            "containing ',' or ':'; re-export the model with a plain input name"
        )
    spec = ",".join(f"{name}:{'x'.join(str(d) for d in s)}" for s in shapes)
    return {"trt_profile_min_shapes": spec, "trt_profile_opt_shapes": spec,
            "trt_profile_max_shapes": spec}  # fmt: skip


def _input_name(source: str | bytes) -> str:
    """The name of the model's single graph input (initializers excluded)."""
    import onnx

    try:
        if isinstance(source, bytes):
            m = onnx.load_from_string(source)
        else:
            m = onnx.load(source, load_external_data=False)
    except Exception as e:
        raise ModelError(f"cannot read the ONNX model to name its input: {e}") from e
    inits = {t.name for t in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ModelError(
            f"expected a model with exactly one input, found {len(names)}: {names}; "
            "export it with `unet-edge export`"
        )
    return names[0]


def _check_shapes(shapes: object) -> tuple[tuple[int, int, int, int], ...]:
    """Validate (N, C, H, W) tile shapes; drop repeats, keep order."""
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence):
        raise ConfigError(
            f"input_shapes must be a sequence of (N, C, H, W) tuples, got {type(shapes).__name__}"
        )
    out: list[tuple[int, int, int, int]] = []
    for s in shapes:
        ok = (
            isinstance(s, Sequence)
            and len(s) == 4
            and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in s)
            and all(int(d) >= 1 for d in s)
        )
        if not ok:
            raise ConfigError(
                f"each input shape must be 4 positive integers (N, C, H, W), got {s!r}"
            )
        t = (int(s[0]), int(s[1]), int(s[2]), int(s[3]))
        if t not in out:
            out.append(t)
    return tuple(out)


def _model_source(model: object) -> str | bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        if not os.path.isfile(path):
            raise ModelError(
                f"model file not found: {path!r}; pass the path of an ONNX file "
                "written by `unet-edge export`"
            )
        return path
    raise ModelError(f"model must be a path or the ONNX bytes, got {type(model).__name__}")


# ---------------------------------------------------------------------------
# Running


def run_batch(
    info: SessionInfo,
    input_name: str,
    output_name: str,
    batch: NDArray[Any],
    *,
    io_binding: bool | None = None,
) -> NDArray[Any]:
    """Run one batch of tiles and return the output on the host.

    Args:
        info: from :func:`open_session`.
        input_name, output_name: the graph's input and output names.
        batch: (N, C, H, W) array of the model's input dtype (float32 for
            fp32 graphs); made C-contiguous if it is not.
        io_binding: ``None`` (default) uses IO binding on CUDA and TensorRT
            (the batch is copied to the device once, the output stays bound
            on the device and is copied back once) and plain ``session.run``
            on the CPU. ``True`` forces IO binding (on the CPU it binds host
            memory); ``False`` forces ``session.run``.

    Returns:
        The output array, e.g. (N, classes, h, w) float32.
    """
    session = info.session
    expected = _input_dtype(session, input_name)
    if expected is not None and batch.dtype != expected:
        raise InputError(
            f"batch dtype is {batch.dtype}, the model's input {input_name!r} expects {expected}; "
            f"convert with batch.astype(np.{expected.name})"
        )
    if batch.ndim != 4:
        raise InputError(f"batch must be (N, C, H, W), got shape {batch.shape}")
    x = np.ascontiguousarray(batch)
    if isinstance(session, OpenVinoSession):
        return _run_openvino(session, output_name, x)
    on_gpu = info.provider in (Provider.CUDA, Provider.TENSORRT)
    if not (on_gpu if io_binding is None else io_binding):
        return np.asarray(session.run([output_name], {input_name: x})[0])
    device, device_id = ("cuda", info.options.device_id) if on_gpu else ("cpu", 0)
    binding = session.io_binding()
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, device, device_id)
    binding.bind_ortvalue_input(input_name, x_dev)
    binding.bind_output(output_name, device, device_id)
    session.run_with_iobinding(binding)
    return np.asarray(binding.copy_outputs_to_cpu()[0])


def quiet_run_options() -> ort.RunOptions:
    """Run options under which a failing run raises without ONNX Runtime logging to stderr."""
    ro = ort.RunOptions()
    ro.log_severity_level = 4
    return ro


def run_quietly(s: SessionInfo, input_name: str, output_name: str, x: NDArray[Any]) -> NDArray[Any]:
    """One plain run of ``x`` (no I/O binding) that raises without ONNX Runtime logging to
    stderr when the graph fails: the load-time check of a model (OpenVINO: its own path)."""
    if isinstance(s.session, OpenVinoSession):
        return run_batch(s, input_name, output_name, x)
    return np.asarray(s.session.run([output_name], {input_name: x}, quiet_run_options())[0])


def _run_openvino(session: OpenVinoSession, output_name: str, x: NDArray[Any]) -> NDArray[Any]:
    """:func:`run_batch` on OpenVINO, after its checks: the compiled model of ``x``'s shape."""
    if output_name not in session.output_names:
        raise InputError(_no_port(output_name, session.output_names))
    return session.run(x)


def _no_port(name: str, names: frozenset[str]) -> str:
    return f"the model has no input or output named {name!r}; it has {sorted(names)}"


_ORT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
}


def _input_dtype(
    session: ort.InferenceSession | OpenVinoSession, name: str
) -> np.dtype[Any] | None:
    """The element type of the graph's input ``name`` (None: not one numpy knows)."""
    if isinstance(session, OpenVinoSession):
        if name in session.input_names:
            return session.input_dtype
        raise InputError(_no_port(name, session.input_names))
    for i in session.get_inputs():
        if i.name == name:
            return _ORT_TYPES.get(i.type)
    names = [i.name for i in session.get_inputs()]
    raise InputError(f"the model has no input named {name!r}; its inputs are {names}")


# ---------------------------------------------------------------------------
# Diagnosis: turning onnxruntime's stderr into reasons


_preload_lock = threading.Lock()
_preload_result: list[str | None] = []  # [note] once preload_dlls has been tried
_preload_missing: list[str] = []  # the libraries it could not load


def _preload_dlls() -> str | None:
    """Call ``onnxruntime.preload_dlls()`` once per process; return a note on failure.

    It loads CUDA and cuDNN from ``nvidia-*`` pip packages (or the default
    library path) so the CUDA provider can find them. It prints what it could
    not load; that text is captured and kept for the diagnosis.
    """
    with _preload_lock:
        if _preload_result:
            return _preload_result[0]
        fn = getattr(ort, "preload_dlls", None)
        note: str | None = None
        if fn is not None:
            try:
                with captured() as said:
                    fn()
            except Exception as e:  # a helper must never be why a session fails
                note = f"onnxruntime.preload_dlls() failed: {first_line(str(e))}"
            missing = _missing_libraries(said.text)
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


_MISSING_LIB = re.compile(
    r"([\w.+-]+\.(?:so(?:\.[\d.]+)?|dll|dylib))[\"']?:? "
    r"(?:cannot open shared object file|No such file|.*?not found)"
)
_WIN_MISSING = re.compile(
    r'LoadLibrary failed with error \d+ "[^"]*" when trying to load "([^"]+)"'
)
_REQUIRE = re.compile(r"Require (cuDNN \d+(?:\.\*)? and CUDA \d+(?:\.\*)?)")


def _missing_libraries(text: str) -> list[str]:
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


def _is_provider_failure(text: str) -> bool:
    t = text.lower()
    return any(k in t for k in ("cuda", "tensorrt", "nvinfer", "cudnn", "provider", "gpu"))


def _diagnose(provider: Provider, captured: str, error: str) -> str:
    """A few words on why ``provider`` did not come up, from onnxruntime's messages."""
    text = f"{captured}\n{error}"
    # The provider's own load stops at the first missing library; preload_dlls
    # tried them all, so together they name everything to install.
    missing = _missing_libraries(text)
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


def _explain(provider: Provider, reason: str) -> str:
    """The full ProviderError message: what was asked, why it failed, how to fix it."""
    if provider is Provider.OPENVINO:
        fix = "" if _OPENVINO_INSTALL in reason else f"Fix: {_OPENVINO_INSTALL}, or "
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
    version = str(getattr(ort, "cuda_version", "") or "12")
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 12
