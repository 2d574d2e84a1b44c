"""The models inside the package, by name: ``-m isbi2012`` (the default) and ``-m nuclei``.

:data:`SHIPPED` maps each name to its file in ``unet_edge/data/`` and a line
saying what it segments. :func:`resolve_model` turns what a user typed
(``-m``, ``Segmenter(model=...)``) into a path: an existing file wins over a
name, a shipped name gives its file, and a bare word that is neither gets a
:class:`~unet_edge.errors.ModelError` listing the names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ModelError

__all__ = ["DEFAULT", "SHIPPED", "ShippedModel", "describe", "resolve_model", "shipped_path"]


@dataclass(frozen=True)
class ShippedModel:
    """One model in the wheel: its file name in ``unet_edge/data`` and what it is for."""

    name: str
    file: str
    summary: str
    training_data: str = ""  # when the model's own metadata does not say


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            "isbi2012",
            "default.onnx",
            "electron microscopy: membranes and cells (ISBI 2012 neuronal EM stacks)",
            "ISBI 2012 EM segmentation challenge, training slices 00-19 (serial-section TEM "
            "of the Drosophila larva ventral nerve cord)",
        ),
        ShippedModel(
            "nuclei",
            "nuclei.onnx",
            "fluorescent nuclei (DAPI/Hoechst-like), touching nuclei split (trained on generated "
            "images only)",
        ),
    )
}
DEFAULT = "isbi2012"
_MODEL_SUFFIXES = (".onnx", ".zip", ".yaml", ".yml")


def shipped_path(name: str = DEFAULT) -> Path:
    """The file of shipped model ``name``; :class:`ModelError` if the name or file is unknown."""
    if name not in SHIPPED:
        raise ModelError(
            f"unknown model name {name!r}; the shipped models are {', '.join(SHIPPED)} "
            "(or give the path of a model file)"
        )
    path = Path(str(resources.files("unet_edge") / "data" / SHIPPED[name].file))
    if not path.is_file():
        raise ModelError(
            f"the shipped model {name!r} is not installed at {path}; reinstall unet-edge or "
            "give the path of a model file"
        )
    return path


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """The model file meant by ``model``: None -> the default model; an existing path -> it;
    a shipped name -> its file; anything that looks like a path -> that path (opening it
    says what is wrong); any other bare word -> :class:`ModelError` listing the names."""
    if model is None:
        return shipped_path(DEFAULT)
    path = Path(model)
    if path.exists():
        return path
    text = os.fspath(model)
    if text in SHIPPED:
        return shipped_path(text)
    looks_like_path = (
        path.suffix.lower() in _MODEL_SUFFIXES or os.sep in text or "/" in text or path.suffix
    )
    if looks_like_path:
        return path
    raise ModelError(
        f"{text!r} is neither a model file nor a shipped model name; the shipped models are "
        f"{', '.join(SHIPPED)} (`unet-edge models` lists them)"
    )


def describe(name: str) -> dict[str, object]:
    """What shipped model ``name`` is, from its own metadata: ``name``, ``file``, ``summary``,
    ``classes``, ``objects`` (the classes ``label()`` numbers), ``pixel_size`` (``"y x µm"`` or
    None when the model does not state it), ``labelling`` (its rule for ``label()``, ``{}``:
    connected regions) and ``training_data``."""
    from ..metadata import read

    path = shipped_path(name)
    info = read(path)
    ps = info.pixel_size
    objects = [info.class_names[i] for i in info.object_classes]
    return {
        "name": name,
        "file": str(path),
        "summary": SHIPPED[name].summary,
        "classes": list(info.class_names),
        "objects": objects,
        "pixel_size": None if ps is None else f"{ps.y:g} x {ps.x:g} µm",
        "labelling": dict(info.labelling),
        "training_data": str(info.provenance.get("training_data", SHIPPED[name].training_data)),
    }
