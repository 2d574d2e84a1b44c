"""Exceptions raised by unet-edge.

Every exception subclasses :class:`UnetEdgeError` *and* the builtin it most
resembles, so callers can catch either. Messages say what was received, what
was expected and how to fix it; the CLI prints them as one line.
"""

from __future__ import annotations


class UnetEdgeError(Exception):
    """Base class of every error unet-edge raises on purpose.

    ``option`` optionally names the argument that fixes the error (``"overwrite"``,
    ``"provider"``, ``"output"``, ...). Messages name no command-line flag; a front
    end (the CLI) uses ``option`` to add the fix in its own terms.
    """

    def __init__(self, *args: object, option: str | None = None) -> None:
        super().__init__(*args)
        self.option = option


class InputError(UnetEdgeError, ValueError):
    """An image, array or argument has the wrong shape, dtype or value."""


class NonFiniteError(InputError):
    """Pixels are NaN or infinite after normalisation (NaN input, or float32 overflow).

    ``count`` is how many values of the window are, ``first`` the (channel, row,
    column) of the first one in that window.
    """

    def __init__(
        self,
        *args: object,
        count: int = 0,
        first: tuple[int, int, int] = (0, 0, 0),
        option: str | None = None,
    ) -> None:
        super().__init__(*args, option=option)
        self.count, self.first = count, first


class MemoryLimitError(UnetEdgeError, MemoryError):
    """An image would need more memory to segment in memory than there is; refused before
    anything is allocated. ``needed`` and ``available`` are the estimate and what there
    is (bytes); the message names the window-by-window path to use instead."""

    def __new__(cls, *args: object, **kwargs: object) -> MemoryLimitError:
        # MemoryError.__new__ comes first in the MRO but refuses this class (its C base is
        # Exception), and unpicklers that call cls.__new__ (tblib, which Dask installs) use it.
        return Exception.__new__(cls, *args)

    def __init__(
        self, *args: object, needed: int = 0, available: int = 0, option: str | None = None
    ) -> None:
        super().__init__(*args, option=option)
        self.needed, self.available = needed, available


class ScaleError(InputError):
    """An image's pixel size is too far from the model's (more than 8x either way) to be
    taken from its file without being stated (see :mod:`unet_edge.scale`)."""


class ImageReadError(UnetEdgeError, OSError):
    """A file could not be read as an image (missing, empty, truncated, not an image)."""


class OutputExistsError(UnetEdgeError, FileExistsError):
    """An output file exists and overwriting was not allowed."""


class OutputError(UnetEdgeError, OSError):
    """An output could not be written (folder missing or vanished, no permission)."""


class ModelError(UnetEdgeError, ValueError):
    """A model file is not a unet-edge ONNX graph or its metadata is invalid."""


class ProbeError(ModelError):
    """An ONNX graph without metadata is not a dense, local image-to-image network that
    unet-edge can tile exactly (see :mod:`unet_edge.models.probe`)."""


class CheckpointError(UnetEdgeError, ValueError):
    """A file is not a unet-edge checkpoint, or the checkpoint is incomplete."""


class ExportError(UnetEdgeError, RuntimeError):
    """Exporting to ONNX failed, or the exported graph disagrees with PyTorch."""


class ProviderError(UnetEdgeError, RuntimeError):
    """An execution provider was asked for but cannot run here."""


class ConfigError(UnetEdgeError, ValueError):
    """A configuration value (tile size, option name, mode) is not valid."""


class DataError(UnetEdgeError, ValueError):
    """A training or evaluation data folder is unusable (missing pairs, bad labels)."""


class DroppedFrameError(UnetEdgeError, RuntimeError):
    """A streamed frame was discarded (``drop="oldest"``) before it was processed."""


class RequestError(UnetEdgeError, ValueError):
    """An HTTP request to ``unet-edge serve`` is malformed (shape, dtype, body, size);
    ``status`` is the HTTP status code to answer with (400, 411, 413, 415...)."""

    def __init__(self, *args: object, status: int = 400, option: str | None = None) -> None:
        super().__init__(*args, option=option)
        self.status = status
