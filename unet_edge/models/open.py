"""Opening a model file by what it is: unet-edge ONNX, foreign ONNX, bioimage.io package.

:func:`open_model` turns any of them into a
:class:`~unet_edge.models.source.ModelSource`. A graph exported by unet-edge
describes itself (its metadata); any other ONNX U-Net is probed once
(:mod:`unet_edge.models.probe`); a bioimage.io package (``.zip`` or its
``rdf.yaml``) is read by :mod:`unet_edge.models.bioimage`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .. import metadata
from ..config import Normalization
from ..errors import ModelError
from .source import ModelSource, probed_source

__all__ = ["is_package", "open_model"]


def is_package(path: Path) -> bool:
    """A bioimage.io package: a ``.zip`` or a ``*.yaml`` description."""
    return path.suffix.lower() in (".zip", ".yaml", ".yml")


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
    if path.stat().st_size == 0:  # an empty protobuf parses as a graph without metadata
        raise ModelError(f"model file {path} is empty (0 bytes); re-copy or re-export it")
    if is_package(path):
        from .bioimage import open_package

        return open_package(path, normalization)
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
