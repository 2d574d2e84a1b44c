"""Which engine runs a graph here: availability, the ``auto`` order and honest fallback.

:func:`open_session` opens a model on the provider asked for, through its
engine's adapter (:mod:`unet_edge.engines.onnxruntime` for cpu, cuda and
tensorrt; :mod:`unet_edge.engines.openvino` for openvino), and says what
really runs it. An explicit ``cuda``, ``tensorrt`` or ``openvino`` request
that cannot run here raises :class:`~unet_edge.errors.ProviderError` naming
the missing libraries and how to install them
(:mod:`unet_edge.engines.diagnose`); ``auto`` tries TensorRT, then CUDA,
then OpenVINO, then the CPU and records in
:attr:`~unet_edge.engines.session.SessionInfo.notes` what it chose and why.

:func:`unavailable_reason` checks whether a provider really runs a graph
here (cached per process), :func:`report` does so for every provider.
What onnxruntime prints meanwhile is captured and turned into those reasons
and notes instead of reaching the terminal. The library never prints.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..capture import first_line
from ..config import ComputePrecision, look_up
from ..errors import ConfigError, ModelError, ProviderError
from .diagnose import explain, not_installed_reason
from .onnxruntime import compiled_in
from .onnxruntime import open_engine as open_onnxruntime
from .openvino import installed as openvino_installed
from .openvino import open_engine as open_openvino
from .options import Provider, ProviderOptions
from .session import SessionInfo, Unavailable, run_batch

__all__ = ["installed", "open_session", "report", "unavailable_reason"]

_CONCRETE: tuple[Provider, ...] = (
    Provider.CPU,
    Provider.CUDA,
    Provider.TENSORRT,
    Provider.OPENVINO,
)
#: What ``auto`` tries, best first, before it settles on the CPU.
_AUTO_ORDER: tuple[Provider, ...] = (Provider.TENSORRT, Provider.CUDA, Provider.OPENVINO)
_Shapes = tuple[tuple[int, int, int, int], ...]


# ---------------------------------------------------------------------------
# Availability


def installed() -> list[Provider]:
    """Providers installed here, in the order cpu, cuda, tensorrt, openvino.

    cuda and tensorrt: compiled into this onnxruntime build; openvino: the
    ``openvino`` package is installed. Being installed says nothing about
    whether the provider works here: see :func:`unavailable_reason`.
    """
    have = compiled_in()
    return [p for p in _CONCRETE if p in have] + (
        [Provider.OPENVINO] if openvino_installed() else []
    )


def unavailable_reason(provider: Provider | str, *, refresh: bool = False) -> str | None:
    """Why ``provider`` does not really run a graph here, or ``None`` if it does.

    Opens a tiny in-memory ONNX graph with that provider alone (plus the CPU
    for nodes it does not take), runs it once and compares the result. The
    answer is cached per process; ``refresh=True`` checks again.

    Returns:
        ``None`` if the provider works, else the reason in a few words.

    Raises:
        ConfigError: for an unknown name, or for ``auto`` (ask about a
            concrete provider; ``auto`` always ends on the CPU).
    """
    p = look_up(Provider, provider, "execution provider")
    if p is Provider.AUTO:
        raise ConfigError(
            "unavailable_reason() needs a concrete provider (cpu, cuda, tensorrt or openvino), "
            "got 'auto'; auto always works because it ends on the cpu"
        )
    if refresh:
        _reason_cached.cache_clear()
    return _reason_cached(p)


@functools.cache
def _reason_cached(provider: Provider) -> str | None:
    """:func:`unavailable_reason` of a concrete provider: relu of a (1, 1, 4, 4) ramp."""
    try:
        info = _open_exact(_relu_model(), provider, ProviderOptions(), ())
        x = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(1, 1, 4, 4)
        y = run_batch(info, "x", "y", x)
    except Unavailable as e:
        return e.reason
    except Exception as e:  # anything else still means "does not work here"
        return first_line(str(e)) or type(e).__name__
    if not np.allclose(y, np.maximum(x, 0.0)):
        return f"{provider.value} ran the check graph but returned wrong values"
    return None


def report() -> list[tuple[Provider, bool, str | None]]:
    """For each concrete provider: (provider, installed, reason it does not work or None).

    Meant for ``unet-edge info``. Checks each installed provider (cached).
    """
    have = set(installed())
    return [
        (p, True, unavailable_reason(p)) if p in have else (p, False, not_installed_reason(p))
        for p in _CONCRETE
    ]


def _relu_model() -> bytes:
    """A one-node graph ``y = relu(x)`` with ``x`` of shape (N, 1, H, W), float32."""
    # onnx is imported here: only the check needs it, and it is not cheap to import.
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "check", [x], [y])
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
    """Open ``model`` on ``provider`` and say what really runs it.

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
        A :class:`~unet_edge.engines.session.SessionInfo`; ``provider`` is
        what really runs the graph.

    Raises:
        ConfigError: unknown provider name (with the closest spelling), bad
            ``input_shapes``, or ``bf16`` precision with another provider
            than ``openvino``.
        ProviderError: ``cuda``, ``tensorrt`` or ``openvino`` was asked for
            explicitly and cannot run here; the message names the missing
            libraries and the fix.
        ModelError: the model file is missing or cannot be loaded.
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
    except Unavailable as e:
        raise ProviderError(explain(requested, e.reason), option="provider") from None


def _open_auto(source: str | bytes, opts: ProviderOptions, shapes: _Shapes) -> SessionInfo:
    """The first of :data:`_AUTO_ORDER` that opens, else the CPU; the notes say why."""
    notes: list[str] = []
    for candidate in _AUTO_ORDER:
        try:
            info = _open_exact(source, candidate, opts, shapes)
        except Unavailable as e:
            notes.append(f"auto: {candidate.value} unavailable ({e.reason})")
            continue
        notes.append(f"auto: using {candidate.value}")
        return replace(info, requested=Provider.AUTO, notes=(*notes, *info.notes))
    info = _open_exact(source, Provider.CPU, opts, shapes)
    notes.append("auto: using cpu")
    return replace(info, requested=Provider.AUTO, notes=(*notes, *info.notes))


def _open_exact(
    source: str | bytes, provider: Provider, opts: ProviderOptions, shapes: _Shapes
) -> SessionInfo:
    """Open ``source`` on exactly ``provider``, through its engine's adapter, or raise
    :class:`~unet_edge.engines.session.Unavailable`."""
    if provider is Provider.OPENVINO:
        return open_openvino(source, opts, shapes)
    return open_onnxruntime(source, provider, opts, shapes)


def _check_shapes(shapes: object) -> _Shapes:
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
    """A model file's path (checked to exist) or the model's bytes, as the engines take it."""
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
