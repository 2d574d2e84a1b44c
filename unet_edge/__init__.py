"""unet-edge: a U-Net from training to the microscope.

The runtime (this package minus :mod:`unet_edge.training`) needs numpy,
OpenCV, ONNX Runtime, onnx and tifffile, never torch.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .config import BorderMode, Normalization, NormMode, Padding, Precision, UNetConfig
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    ExportError,
    ImageReadError,
    InputError,
    ModelError,
    OutputError,
    OutputExistsError,
    ProviderError,
    UnetEdgeError,
)
from .geometry import Geometry
from .metadata import ModelInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .runtime import Segmenter


def __getattr__(name: str) -> object:
    # Segmenter pulls in onnxruntime; import it on first use so `import unet_edge` stays light.
    if name == "Segmenter":
        from .runtime import Segmenter

        return Segmenter
    raise AttributeError(f"module 'unet_edge' has no attribute {name!r}")


def load(model: str | None = None, **kwargs: object) -> Segmenter:
    """Open a model (default: the shipped ISBI 2012 model); same arguments as :class:`Segmenter`."""
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
    "ExportError",
    "Geometry",
    "ImageReadError",
    "InputError",
    "ModelError",
    "ModelInfo",
    "NormMode",
    "Normalization",
    "OutputError",
    "OutputExistsError",
    "Padding",
    "Precision",
    "ProviderError",
    "Segmenter",
    "UNetConfig",
    "UnetEdgeError",
    "__version__",
    "load",
]
