"""The one interface every engine adapter implements, and running a batch through it.

An adapter (:class:`unet_edge.engines.onnxruntime.OrtSession`,
:class:`unet_edge.engines.openvino.OpenVinoSession`) is an open model on
one engine: it names its input's dtype, runs a batch from an input name to
an output name, and runs one batch quietly for the load-time graph check.
:func:`run_batch` checks a batch once, for every engine, before handing it
over; nothing outside the adapters asks which engine it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import InputError, ProviderError
from .options import Provider, ProviderOptions

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Session", "SessionInfo", "Unavailable", "checked_batch", "run_batch", "run_quietly"]


class Session(Protocol):
    """An ONNX model opened by one engine, ready to run batches of tiles.

    Runs may be called from any number of threads at once.
    """

    def input_dtype(self, name: str) -> np.dtype[Any] | None:
        """The element type of the graph's input ``name`` (``None``: not one numpy knows).

        Raises:
            InputError: the graph has no input called ``name``.
        """
        ...

    def run(
        self,
        input_name: str,
        output_name: str,
        batch: NDArray[Any],
        *,
        io_binding: bool | None = None,
    ) -> NDArray[Any]:
        """The output ``output_name`` for a checked (see :func:`checked_batch`) batch.

        ``batch`` is a C-contiguous (N, C, H, W) array of the input's dtype;
        the result is on the host, e.g. (N, classes, h, w) float32.
        ``io_binding`` is a hint for engines that can keep tensors on a
        device (``None``: their own default); others ignore it.
        """
        ...

    def run_quietly(self, input_name: str, output_name: str, batch: NDArray[Any]) -> NDArray[Any]:
        """One plain run of an unchecked (N, C, H, W) ``batch`` that raises, without the
        engine logging to stderr, when the graph fails (the load-time graph check)."""
        ...


@dataclass(frozen=True)
class SessionInfo:
    """An open session and the truth about where it runs.

    Attributes:
        session: the engine adapter that runs the graph.
        provider: the provider that really runs the graph (``CPU`` after
            ``auto`` fell back); never ``AUTO``.
        requested: what the caller asked for.
        notes: human-readable remarks for the user, e.g.
            ``"auto: cuda unavailable (libcublasLt.so.13 not found), using cpu"``.
        options: the options the session was created with.
    """

    session: Session
    provider: Provider
    requested: Provider
    notes: tuple[str, ...] = ()
    options: ProviderOptions = field(default_factory=ProviderOptions)


class Unavailable(ProviderError):
    """A provider cannot be used here; ``reason`` says why in a few words.

    Raised by the adapters while opening, and never past
    :func:`unet_edge.engines.select.open_session`: it becomes an ``auto`` note,
    or a :class:`~unet_edge.errors.ProviderError` that explains the fix.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def checked_batch(session: Session, input_name: str, batch: NDArray[Any]) -> NDArray[Any]:
    """``batch`` as the C-contiguous (N, C, H, W) array of the input's dtype an engine runs.

    Raises:
        InputError: the graph has no input ``input_name``, ``batch`` has
            another dtype than that input, or is not 4-dimensional.
    """
    expected = session.input_dtype(input_name)
    if expected is not None and batch.dtype != expected:
        raise InputError(
            f"batch dtype is {batch.dtype}, the model's input {input_name!r} expects {expected}; "
            f"convert with batch.astype(np.{expected.name})"
        )
    if batch.ndim != 4:
        raise InputError(f"batch must be (N, C, H, W), got shape {batch.shape}")
    return np.ascontiguousarray(batch)


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
        info: from :func:`unet_edge.engines.select.open_session`.
        input_name, output_name: the graph's input and output names.
        batch: (N, C, H, W) array of the model's input dtype (float32 for
            fp32 graphs); made C-contiguous if it is not.
        io_binding: onnxruntime only. ``None`` (default) uses IO binding on
            CUDA and TensorRT (the batch is copied to the device once, the
            output stays bound on the device and is copied back once) and
            plain ``session.run`` on the CPU. ``True`` forces IO binding (on
            the CPU it binds host memory); ``False`` forces ``session.run``.

    Returns:
        The output array, e.g. (N, classes, h, w) float32.

    Raises:
        InputError: see :func:`checked_batch`; on OpenVINO also an unknown
            ``output_name``.
    """
    x = checked_batch(info.session, input_name, batch)
    return info.session.run(input_name, output_name, x, io_binding=io_binding)


def run_quietly(
    info: SessionInfo, input_name: str, output_name: str, batch: NDArray[Any]
) -> NDArray[Any]:
    """One plain run of (N, C, H, W) ``batch`` (no I/O binding) that raises without the
    engine logging to stderr when the graph fails: the load-time check of a model."""
    return info.session.run_quietly(input_name, output_name, batch)
