"""What a model file is and how to run it: unet-edge ONNX, foreign ONNX, bioimage.io package.

:func:`open_model` turns any of them into a :class:`ModelSource`: the ONNX
graph to run, a validated :class:`~unet_edge.metadata.ModelInfo`, the tile
geometry the kernel uses and the step that turns the graph's output into
class probabilities. A graph exported by unet-edge describes itself (its
metadata); any other ONNX U-Net is probed once (:mod:`unet_edge.probe`); a
bioimage.io package (``.zip`` or its ``rdf.yaml``) is read by
:mod:`unet_edge.bioimage`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import metadata
from ..config import Normalization, Padding, UNetConfig
from ..errors import ModelError
from ..metadata import ModelInfo

if TYPE_CHECKING:
    from ..geometry import Geometry, TileGeometry
    from .probe import Probe

Postprocess = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ModelSource:
    """A model ready for the Segmenter."""

    onnx: Path | bytes  # the graph ONNX Runtime loads (a file, or its bytes)
    info: ModelInfo
    geometry: Geometry | TileGeometry
    postprocess: Postprocess | None = None  # graph output -> class probabilities (None: as is)
    probe: Probe | None = None  # what probing found (None: described by metadata)
    batch: int | None = None  # the graph's fixed batch size, None when dynamic
    origin: str = "unet-edge"  # "unet-edge", "probed" or "bioimage.io"

    def describe(self) -> str:
        if self.probe is not None:
            return self.probe.describe()
        return self.geometry.describe()


def is_package(path: Path) -> bool:
    """A bioimage.io package: a ``.zip`` or a ``*.yaml`` description."""
    return path.suffix.lower() in (".zip", ".yaml", ".yml")


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
    path: Path | bytes, normalization: Normalization, name: str, origin: str = "probed"
) -> ModelSource:
    """Probe the graph at ``path`` (see :mod:`unet_edge.probe`) and describe it."""
    from . import probe

    p = probe.probe(path)
    return ModelSource(
        path,
        probed_info(p, normalization, name),
        p.geometry,
        probe.postprocess(p.kind, p.out_channels),
        p,
        p.batch,
        origin,
    )


def open_model(
    path: str | os.PathLike[str],
    normalization: Normalization | None = None,
    probe_only: bool = False,
) -> ModelSource:
    """Describe the model at ``path`` for the Segmenter.

    ``normalization`` replaces the model's own; a graph without unet-edge
    metadata (and not a bioimage.io package) needs it, since nothing in the
    graph says how pixel values were scaled in training (``probe_only``: a
    description without it, the normalisation left at the default).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    if is_package(path):
        from . import bioimage

        return bioimage.open_package(path, normalization)
    props = metadata.load_props(path)
    if metadata.KEY in props:
        info = metadata.from_props(props, str(path))
        if normalization is not None:
            info = replace(info, normalization=normalization)
        return ModelSource(path, info, info.geometry)
    if normalization is None and probe_only:
        normalization = Normalization()
    if normalization is None:
        raise ModelError(
            f"{path} has no unet-edge metadata, so nothing says how its training images were "
            "normalised; give the normalisation (e.g. Normalization(mode='percentile', low=1, "
            "high=99.8)) and unet-edge probes the graph's geometry",
            option="normalization",
        )
    return probed_source(path, normalization, path.stem)
