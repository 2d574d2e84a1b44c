"""unet-edge: a U-Net from training to the microscope.

The runtime (this package minus :mod:`unet_edge.training`) needs numpy,
OpenCV, ONNX Runtime, onnx and tifffile, never torch.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .config import (
    BorderMode,
    DropPolicy,
    Normalization,
    NormMode,
    Padding,
    Precision,
    UNetConfig,
)
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DroppedFrameError,
    ExportError,
    ImageReadError,
    InputError,
    MemoryLimitError,
    ModelError,
    NonFiniteError,
    OutputError,
    OutputExistsError,
    ProbeError,
    ProviderError,
    RequestError,
    ScaleError,
    UnetEdgeError,
)
from .geometry import Geometry
from .metadata import ModelInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .paths.files import FileResult, plan_files, segment_file
    from .runtime import Segmenter

# Imported on first use: runtime pulls in onnxruntime, files OpenCV and tifffile.
_LAZY = {
    "Segmenter": "runtime",
    "FileResult": "paths.files",
    "plan_files": "paths.files",
    "segment_file": "paths.files",
}


def __getattr__(name: str) -> object:
    # Heavy modules are imported on first use so `import unet_edge` stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'unet_edge' has no attribute {name!r}")


def load(model: str | None = None, **kwargs: object) -> Segmenter:
    """Open a model (default: the shipped ISBI 2012 model); same arguments as :class:`Segmenter`.

    Returns an open :class:`Segmenter` (close it, or use it in a ``with`` block). Raises
    :class:`ModelError` for a file that is not a usable model and :class:`ProviderError`
    for a provider that cannot run here.
    """
    from .runtime import Segmenter

    return Segmenter(model, **kwargs)  # type: ignore[arg-type]


try:
    __version__ = _metadata.version("unet-edge")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "BorderMode",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DropPolicy",
    "DroppedFrameError",
    "ExportError",
    "FileResult",
    "Geometry",
    "ImageReadError",
    "InputError",
    "MemoryLimitError",
    "ModelError",
    "ModelInfo",
    "NonFiniteError",
    "NormMode",
    "Normalization",
    "OutputError",
    "OutputExistsError",
    "Padding",
    "Precision",
    "ProbeError",
    "ProviderError",
    "RequestError",
    "ScaleError",
    "Segmenter",
    "UNetConfig",
    "UnetEdgeError",
    "__version__",
    "load",
    "plan_files",
    "segment_file",
]
