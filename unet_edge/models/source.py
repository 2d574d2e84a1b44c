"""The record of a model ready to run (:class:`ModelSource`), whatever file it came from.

A :class:`ModelSource` holds the ONNX graph to run, a validated
:class:`~unet_edge.metadata.ModelInfo`, the tile geometry the kernel uses and
the step that turns the graph's output into class probabilities.
:func:`unet_edge.models.open.open_model` makes one from a unet-edge ONNX
file (its metadata), any other ONNX U-Net (:func:`probed_source`, by
:mod:`unet_edge.models.probe`) or a bioimage.io package
(:mod:`unet_edge.models.bioimage`). :func:`model_hash` names a model file in
provenance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Normalization, Padding, UNetConfig
from ..metadata import ModelInfo

if TYPE_CHECKING:
    from ..geometry import Geometry, TileGeometry
    from .probe import Probe

Postprocess = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ModelSource:
    """A model ready for the Segmenter (made by :func:`unet_edge.models.open.open_model`)."""

    onnx: Path | bytes  # the graph ONNX Runtime loads (a file, or its bytes)
    info: ModelInfo
    geometry: Geometry | TileGeometry
    postprocess: Postprocess | None = None  # graph output -> class probabilities (None: as is)
    probe: Probe | None = None  # what probing found (None: described by metadata)
    batch: int | None = None  # the graph's fixed batch size, None when dynamic
    origin: str = "unet-edge"  # "unet-edge", "probed" or "bioimage.io"

    def describe(self) -> str:
        """The tile geometry in words: what probing measured, or what the metadata says."""
        if self.probe is not None:
            return self.probe.describe()
        return self.geometry.describe()


def probed_info(p: Probe, normalization: Normalization, name: str) -> ModelInfo:
    """A ModelInfo for a probed graph (the architecture holds only what was measured)."""
    a = p.geometry.alignment
    depth = int(math.log2(a)) if a & (a - 1) == 0 and a <= 256 else 0
    names = ("background", "foreground") if p.out_channels == 1 else None
    return ModelInfo(
        architecture=UNetConfig(
            in_channels=p.channels,
            classes=p.classes,
            depth=depth,
            padding=Padding.VALID if p.geometry.shrink else Padding.SAME,
            extra={"probed": p.to_dict()},
        ),
        normalization=normalization,
        class_names=names or tuple(f"class_{i}" for i in range(p.classes)),
        name=name,
        input_name=p.input_name,
        output_name=p.output_name,
    )


def probed_source(
    path: Path | bytes,
    normalization: Normalization,
    name: str,
    origin: str = "probed",
    label: str | None = None,
) -> ModelSource:
    """Probe the graph at ``path`` (see :mod:`unet_edge.models.probe`) and describe it.

    ``label`` names the model in the probe's errors (default: the path, or
    ``name``'s weights for a graph given as bytes, e.g. a package's).
    """
    from . import probe

    own = f"{name} (its ONNX weights)" if isinstance(path, bytes) else str(path)
    p = probe.probe(path, name=label or own)
    return ModelSource(
        path,
        probed_info(p, normalization, name),
        p.geometry,
        probe.postprocess(p.kind, p.out_channels),
        p,
        p.batch,
        origin,
    )


def model_hash(path: Path, _cache: dict[tuple[str, float], str] = {}) -> str:  # noqa: B006
    """SHA-256 of a model file (cached by path and modification time)."""
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _cache[key] = h.hexdigest()
    return _cache[key]
