"""OpenVINO on the CPU as an engine, behind the same session interface as ONNX Runtime.

:func:`unet_edge.engines.select.open_session` opens an :class:`OpenVinoSession`
for ``provider="openvino"`` (and for ``auto`` when OpenVINO works here) with
:func:`open_engine`, and :func:`unet_edge.engines.session.run_batch` runs it
like an onnxruntime session (:class:`unet_edge.engines.session.Session`), so
:class:`unet_edge.tiling.TileRun`, streaming, the windowed path and the bench
use it unchanged.

- **The same ONNX file**: OpenVINO reads the exported graph directly (fp32,
  the fp16 export, and the int8 QDQ files of ``unet-edge quantize``, whose
  quantised convolutions it runs in int8).
- **Honest precision**: OpenVINO computes in bf16 by default on CPUs with
  AVX512-BF16 or AMX. Here ``fp32`` (the default) sets
  ``INFERENCE_PRECISION_HINT=f32``, so float parts are computed in float32;
  ``bf16`` is an explicit choice, refused with a
  :class:`~unet_edge.errors.ProviderError` on a CPU without bf16 arithmetic
  (OpenVINO would quietly compute in f32 there).
- **Static shapes**: the graph is compiled once per input shape (batch,
  channels, tile), the first time that shape is run (or when the session is
  opened with the shapes the tiler will send); a compiled shape is reused.
  A compiled model's first inference is slow: warm up every tile shape
  (:meth:`unet_edge.Segmenter.warmup`) before latency matters.
- **Threads**: ``threads`` sets ``INFERENCE_NUM_THREADS`` (default: OpenVINO's,
  one per physical core); the latency hint keeps one stream.
- **Thread safety**: :meth:`OpenVinoSession.run` may be called from any
  number of threads, as onnxruntime's ``run``. Each call takes an idle infer
  request of its shape's compiled model, or creates one, and returns it when
  done, so no request is used by two threads at once.

``openvino`` itself is imported only when a session is opened (extra
``[openvino]``); a missing or broken install is a
:class:`~unet_edge.errors.ProviderError` that says how to install it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import ComputePrecision, look_up
from ..errors import InputError, ModelError, ProviderError
from .options import Provider, ProviderOptions
from .session import SessionInfo, Unavailable, checked_batch

__all__ = ["INSTALL", "OpenVinoSession", "installed", "open_engine"]

#: How to install OpenVINO for unet-edge.
INSTALL = "pip install 'unet-edge[openvino]'"
#: OpenVINO's INFERENCE_PRECISION_HINT for each compute precision.
_HINT = {ComputePrecision.FP32: "f32", ComputePrecision.BF16: "bf16"}
#: Compiled shapes kept at most (each holds its own buffers); the oldest goes first.
_MAX_SHAPES = 16


def installed() -> bool:
    """Whether the ``openvino`` package is installed (found, not imported)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _import() -> Any:
    """The ``openvino`` module, or a ProviderError that says how to install it."""
    try:
        import openvino as ov  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise ProviderError(f"the openvino package is not installed ({INSTALL})") from e
    except Exception as e:  # a broken install (missing shared library, ...)
        raise ProviderError(f"openvino cannot be imported: {_first_line(e)}") from e
    return ov


def _first_line(e: BaseException) -> str:
    """The line of an OpenVINO exception that says what went wrong (at most 300 characters)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # OpenVINO's messages start with "Exception from src/...": the cause is on the last line.
    return (lines[-1] if lines else type(e).__name__)[:300]


class _Compiled:
    """One compiled shape and its idle infer requests (one request per concurrent caller)."""

    def __init__(self, compiled: Any) -> None:
        self.model = compiled
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The output for the (N, C, H, W) batch ``x`` of this shape, a copy of its own."""
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.model.create_infer_request()
        try:
            request.infer({0: x})
            # The output tensor is the request's own buffer, reused by its next run.
            return np.array(request.get_output_tensor(0).data, copy=True)
        finally:
            self._idle.put(request)


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, one compiled model per input shape.

    Args:
        source: path of the ONNX file, or its bytes.
        precision: ``"fp32"`` (float parts in float32) or ``"bf16"``.
        threads: ``INFERENCE_NUM_THREADS``; ``None`` for OpenVINO's default.
        shapes: (N, C, H, W) input shapes to compile now (else on first use).

    Raises:
        ProviderError: openvino is missing or broken, sees no CPU, cannot
            compile the model, or ``bf16`` was asked for on a CPU without
            bf16 arithmetic (``option="precision"``).
        ModelError: OpenVINO cannot read the file, or the graph has not one
            input and one output.
    """

    device = "CPU"

    def __init__(
        self,
        source: str | bytes,
        precision: ComputePrecision | str = ComputePrecision.FP32,
        threads: int | None = None,
        shapes: Sequence[tuple[int, int, int, int]] = (),
    ) -> None:
        ov = _import()
        self.version: str = ov.__version__
        self.precision = look_up(ComputePrecision, precision, "precision")
        try:
            self._core = ov.Core()
            devices = list(self._core.available_devices)
        except Exception as e:
            raise ProviderError(f"openvino could not start: {_first_line(e)}") from e
        if self.device not in devices:
            raise ProviderError(f"openvino sees no CPU device (devices: {devices or 'none'})")
        self._check_precision()
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINT[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._net = self._read(source)
        port = self._net.inputs[0]
        self.input_names = frozenset(port.get_names())
        self.output_names = frozenset(self._net.outputs[0].get_names())
        self._dtype = np.dtype(port.get_element_type().to_dtype())
        self._compiled: dict[tuple[int, ...], _Compiled] = {}
        self._lock = threading.Lock()
        for s in shapes:
            self._get(tuple(int(d) for d in s))

    def _check_precision(self) -> None:
        """Refuse bf16 on a CPU without bf16 arithmetic (OpenVINO would use f32 silently)."""
        if self.precision is ComputePrecision.FP32:
            return
        caps = list(self._core.get_property(self.device, "OPTIMIZATION_CAPABILITIES"))
        if "BF16" not in caps:
            cpu = self._core.get_property(self.device, "FULL_DEVICE_NAME")
            raise ProviderError(
                f"bf16 precision was requested, but this CPU ({cpu}) has no bf16 arithmetic "
                f"that OpenVINO uses (it lists {', '.join(caps)}; bf16 needs AVX512-BF16 or "
                "AMX); choose fp32 precision",
                option="precision",
            )

    def _read(self, source: str | bytes) -> Any:
        """The model read by OpenVINO, checked to have one input and one output."""
        try:
            net = self._core.read_model(source)
        except Exception as e:
            raise ModelError(
                f"openvino could not read the model: {_first_line(e)}; "
                "expected an ONNX file exported by `unet-edge export`"
            ) from e
        if len(net.inputs) != 1 or len(net.outputs) != 1:
            raise ModelError(
                f"expected a model with one input and one output, found {len(net.inputs)} "
                f"and {len(net.outputs)}; export it with `unet-edge export`"
            )
        return net

    def describe(self) -> str:
        """One line for the user: version, device, precision and threads."""
        cpu = self._core.get_property(self.device, "FULL_DEVICE_NAME")
        threads = self._config.get("INFERENCE_NUM_THREADS", "default")
        return (
            f"openvino {self.version} on the CPU ({cpu}): {self.precision.value} arithmetic "
            f"(INFERENCE_PRECISION_HINT={_HINT[self.precision]}), threads {threads}, "
            "compiled per tile shape"
        )

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes compiled so far."""
        return list(self._compiled)

    def _get(self, shape: tuple[int, ...]) -> _Compiled:
        """The compiled model of input ``shape`` (N, C, H, W), compiled on first use."""
        c = self._compiled.get(shape)
        if c is not None:
            return c
        with self._lock:  # compile each shape once, even when threads ask together
            c = self._compiled.get(shape)
            if c is None:
                c = _Compiled(self._compile(shape))
                if len(self._compiled) >= _MAX_SHAPES:
                    self._compiled.pop(next(iter(self._compiled)))
                self._compiled[shape] = c
        return c

    def _compile(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for input ``shape``, checked to compute in the precision asked."""
        net = self._net.clone()
        try:
            net.reshape({0: list(shape)})
            compiled = self._core.compile_model(net, self.device, self._config)
        except Exception as e:
            raise ProviderError(
                f"openvino could not compile the model for input shape {shape}: {_first_line(e)}"
            ) from e
        got = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        want = {"f32": "float32", "bf16": "bfloat16"}[_HINT[self.precision]]
        if want not in got:  # never a silent change of precision
            raise ProviderError(
                f"openvino compiled the model with precision {got}, not {want} as asked",
                option="precision",
            )
        return compiled

    def input_dtype(self, name: str) -> np.dtype[Any]:
        """The element type of the graph's input ``name``.

        Raises:
            InputError: the graph has no input called ``name``.
        """
        if name not in self.input_names:
            raise InputError(_no_port(name, self.input_names))
        return self._dtype

    def run(
        self,
        input_name: str,
        output_name: str,
        batch: np.ndarray,
        *,
        io_binding: bool | None = None,
    ) -> np.ndarray:
        """The model's output for a C-contiguous (N, C, H, W) batch of its input dtype,
        from the compiled model of the batch's shape. ``io_binding`` is ignored: OpenVINO
        runs on the host's memory.

        Raises:
            InputError: the graph has no output called ``output_name``.
            ProviderError: the shape cannot be compiled, or the run fails.
        """
        if output_name not in self.output_names:
            raise InputError(_no_port(output_name, self.output_names))
        c = self._get(tuple(int(d) for d in batch.shape))
        try:
            return c.infer(batch)
        except Exception as e:
            raise ProviderError(
                f"openvino failed on a batch of shape {batch.shape}: {_first_line(e)}"
            ) from e

    def run_quietly(self, input_name: str, output_name: str, batch: np.ndarray) -> np.ndarray:
        """:meth:`run` of a (N, C, H, W) ``batch`` after its checks: OpenVINO logs nothing to
        stderr when a run fails, so a quiet run is a checked one."""
        return self.run(input_name, output_name, checked_batch(self, input_name, batch))


def _no_port(name: str, names: frozenset[str]) -> str:
    """The message for a port ``name`` the graph does not have (it has ``names``)."""
    return f"the model has no input or output named {name!r}; it has {sorted(names)}"


def open_engine(
    source: str | bytes, opts: ProviderOptions, shapes: Sequence[tuple[int, int, int, int]]
) -> SessionInfo:
    """Open ``source`` (a path or ONNX bytes) on OpenVINO, compiled now for ``shapes``.

    Raises:
        Unavailable: OpenVINO is missing or broken, or cannot compile the model.
        ProviderError: a precision it refuses (``option="precision"``), as is.
        ModelError: OpenVINO cannot read the model.
    """
    try:
        s = OpenVinoSession(source, opts.precision, opts.threads, shapes)
    except ProviderError as e:
        if e.option == "precision":
            raise
        raise Unavailable(str(e)) from e
    return SessionInfo(s, Provider.OPENVINO, Provider.OPENVINO, (s.describe(),), opts)
