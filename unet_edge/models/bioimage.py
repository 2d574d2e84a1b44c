"""Reading bioimage.io model packages (spec 0.5), to run them exactly.

:func:`open_package` turns a package (``.zip`` or its ``rdf.yaml``) into a
:class:`~unet_edge.models.source.ModelSource`. A package written by
unet-edge (:mod:`unet_edge.training.package`) keeps the unet-edge
description of its network in the rdf's ``config.unet_edge``
(:data:`CONFIG_KEY`) and the :class:`Layout` that wraps it, and runs with
that geometry; any other package with ONNX weights is probed
(:mod:`unet_edge.models.probe`) and uses the larger of its declared halo and
the probed margin, so tiled == whole image. Its preprocessing becomes a
unet-edge :class:`~unet_edge.config.Normalization` where it can be one.
Reading needs ``bioimageio.spec`` (imported lazily; extra ``[bioimageio]``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import metadata
from ..config import Normalization
from ..errors import ConfigError, ModelError
from ..geometry import Geometry, TileGeometry
from .source import ModelSource, probed_source

#: Where unet-edge keeps its own description inside the rdf's ``config``.
CONFIG_KEY = "unet_edge"


def need_spec() -> Any:
    """The ``bioimageio.spec`` module, or a ModelError that says how to install it."""
    try:
        import bioimageio.spec as spec
    except ModuleNotFoundError as e:
        raise ModelError(
            "bioimage.io packages need the bioimageio.spec package; install it with "
            "pip install 'unet-edge[bioimageio]'"
        ) from e
    return spec


@dataclass(frozen=True)
class Layout:
    """How a package's graph and description wrap a network (see :mod:`unet_edge.training.package`).

    Blocks of ``min_block + step * k`` pixels lose ``crop`` pixels at their
    top/left, run the network, and get ``pad_before``/``pad_after`` zero
    pixels back, so the output has the block's size with ``halo`` pixels per
    side to drop; ``alignment`` is the network's translation period.
    """

    crop: int  # pixels cropped at the top/left of each block before the network
    halo: int  # declared output halo
    pad_before: int  # zero rows/columns added before the network's output
    pad_after: int
    min_block: int  # smallest legal block
    step: int  # block step
    alignment: int  # the network's translation period

    @classmethod
    def of(cls, g: Geometry | TileGeometry) -> Layout:
        """The layout that keeps every block stride a multiple of ``g``'s alignment."""
        shrink = (g.min_input - g.network_output_size(g.min_input)) // 2
        margin, a, m = g.crop, g.alignment, g.min_input
        if not g.step or g.step % a:
            raise ConfigError(
                f"a bioimage.io package needs a network with legal inputs every multiple of its "
                f"alignment; this one has {g.legal_text} with alignment {a}"
            )
        crop = (m - 2 * shrink - 2 * margin) % a
        halo = crop + shrink + margin
        block = m + crop
        while block - 2 * halo < a:
            block += g.step
        return cls(crop, halo, crop + shrink, shrink, block, g.step, a)

    def to_dict(self) -> dict[str, int]:
        """The fields by name, as the rdf's ``config.unet_edge.layout`` stores them."""
        return dict(self.__dict__)


def _normalization_of(steps: list[Any]) -> Normalization:
    """The preprocessing of a package as a unet-edge Normalization (the forms it can express)."""
    todo = [(s.id, s.kwargs) for s in steps if s.id != "ensure_dtype"]
    args: dict[str, Any] = {}

    def affine(kw: Any) -> tuple[float, float] | None:
        """(shift, scale) with ``x * gain + offset == (x - shift) / scale``, per tensor, or None."""
        ok = isinstance(kw.gain, float) and isinstance(kw.offset, float) and kw.gain > 0
        return (-kw.offset / kw.gain, 1.0 / kw.gain) if ok else None

    first: tuple[str, Any] = todo.pop(0) if todo else ("none", None)
    if first[0] == "scale_range":
        args.update(mode="percentile", low=first[1].min_percentile, high=first[1].max_percentile)
    elif first[0] == "scale_linear" and (lin := affine(first[1])) is not None:
        args.update(mode="fixed_range", low=lin[0], high=lin[0] + lin[1])
    if todo and todo[0][0] == "clip" and (todo[0][1].min, todo[0][1].max) == (0.0, 1.0):
        args["clip"] = bool(todo.pop(0))
    if todo and todo[0][0] == "scale_linear" and (lin := affine(todo[0][1])) is not None:
        args.update(mean=lin[0], std=lin[1])
        todo.pop(0)
    if todo or "mode" not in args:
        raise ModelError(
            f"the package's preprocessing {[s.id for s in steps]} has no unet-edge equivalent "
            "(supported: scale_range or scale_linear, then clip to 0..1 and scale_linear); "
            "give the normalisation explicitly",
            option="normalization",
        )
    return Normalization(**args)


def _load(path: Path) -> Any:
    """The package's description (spec 0.5, one input, ONNX weights), or a ModelError."""
    need_spec()
    from bioimageio.spec import load_model_description
    from bioimageio.spec.model import v0_5

    try:
        descr = load_model_description(path, perform_io_checks=False)
    except Exception as e:  # the spec raises ValueError and friends for invalid packages
        raise ModelError(f"{path} is not a valid bioimage.io model ({e})") from None
    if not isinstance(descr, v0_5.ModelDescr):
        raise ModelError(
            f"{path} is a {getattr(descr, 'type', '?')} description of format "
            f"{getattr(descr, 'format_version', '?')}; unet-edge runs bioimage.io models of "
            "format 0.5 (update it with `bioimageio update-format`)"
        )
    if descr.weights.onnx is None or len(descr.inputs) != 1:
        raise ModelError(
            f"{path} has no ONNX weights or more than one input; unet-edge runs single-input "
            "ONNX models (convert the weights with `bioimageio.core`'s weight converters)"
        )
    return descr


def open_package(path: Path, normalization: Normalization | None = None) -> ModelSource:
    """A bioimage.io package (``.zip`` or its rdf.yaml) as a model the Segmenter runs exactly."""
    descr = _load(path)
    graph: bytes = descr.weights.onnx.get_reader().read()
    ours = (descr.config.model_dump().get(CONFIG_KEY) or {}) if descr.config else {}
    if ours:
        info = metadata.from_dict(ours["model"])
        layout = Layout(**ours["layout"])
        if normalization is not None:
            info = replace(info, normalization=normalization)
        g = TileGeometry(layout.min_block, layout.step, layout.alignment, 0, layout.halo)
        return ModelSource(graph, info, g, origin="bioimage.io")
    norm = normalization or _normalization_of(list(descr.inputs[0].preprocessing))
    src = probed_source(graph, norm, str(descr.name), origin="bioimage.io")
    axes_names = [getattr(a, "channel_names", None) for a in descr.outputs[0].axes]
    names = [str(c) for c in next((n for n in axes_names if n), [])]
    if len(names) == src.info.classes:
        src = replace(src, info=replace(src.info, class_names=tuple(names)))
    halo = max([getattr(a, "halo", 0) for a in descr.outputs[0].axes] + [0])
    assert src.probe is not None
    pg = src.probe.geometry
    if halo > pg.halo:  # honour a larger declared halo
        g = TileGeometry(pg.min_size, pg.step, pg.alignment, pg.shrink, halo - pg.shrink)
        return replace(src, geometry=g)
    return src
