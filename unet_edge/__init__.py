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
    "UNetConfig",
    "UnetEdgeError",
    "__version__",
]
