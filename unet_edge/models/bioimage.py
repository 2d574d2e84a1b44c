"""Reading bioimage.io model packages (spec 0.5) as untrusted input, to run them exactly.

:func:`open_package` turns a package (``.zip`` or its ``rdf.yaml``) into a
:class:`~unet_edge.models.source.ModelSource`, reading it like an image:

1. its files through :class:`~unet_edge.models.package_files.PackageFiles`
   (sizes from the zip's directory before anything is inflated; files only
   from inside the package, never a download; SHA-256 checked);
2. its ``rdf.yaml`` through :func:`~unet_edge.models.package_yaml.load_rdf`
   (size, depth and aliases bounded before the YAML is expanded), then
   validated by ``bioimageio.spec`` without any file or network access
   (nothing is written to its cache);
3. what it says about its network (:mod:`unet_edge.models.package_check`):
   a package written by unet-edge keeps the unet-edge description and the
   :class:`Layout` of its graph in ``config.unet_edge`` (:data:`CONFIG_KEY`)
   or, when a tool dropped that, in its weights' metadata; the shipped
   model's package is recognised by its weights; such a package runs with
   that geometry after the load-time graph check. Any other package with
   ONNX weights is probed (:mod:`unet_edge.models.probe`) and uses the
   larger of its declared halo and the probed margin;
4. its own test input is run and compared with its test output.

Every refusal is a one-line :class:`~unet_edge.errors.ModelError` naming the
package. Reading needs ``bioimageio.spec`` (imported lazily; extra
``[bioimageio]``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..capture import first_line
from ..config import Normalization
from ..engines.select import open_session
from ..errors import ModelError
from ..geometry import TileGeometry
from ..metadata import PixelSize
from . import package_check as pc
from .package_check import CONFIG_KEY, PACKAGE_KEY, Layout
from .package_files import MAX_TENSOR_BYTES, MAX_WEIGHTS_BYTES, PackageFiles
from .package_yaml import load_rdf
from .source import ModelSource, probed_source

__all__ = ["CONFIG_KEY", "PACKAGE_KEY", "Layout", "need_spec", "open_package"]


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


def _normalization_of(steps: list[Any]) -> Normalization | None:
    """The preprocessing of a package as a unet-edge Normalization (the forms it can
    express), or None."""
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
        return None
    try:
        return Normalization(**args)
    except ValueError:  # ConfigError: values unet-edge refuses (infinite, a zero std)
        return None


def _describe(content: dict[str, Any], files: PackageFiles) -> Any:
    """The rdf's content as a spec-0.5 model description (one input, ONNX weights), validated
    by bioimageio.spec without file or network access, or a one-line ModelError."""
    need_spec()
    from bioimageio.spec import ValidationContext, build_description
    from bioimageio.spec.model import v0_5

    ctx = ValidationContext(
        root=files.root,
        file_name=files.rdf_name,
        perform_io_checks=False,
        disable_cache=True,
        log_warnings=False,
        progressbar=False,
    )
    try:
        descr = build_description(content, context=ctx)
    except Exception as e:  # the spec's own failures on odd content
        why = first_line(str(e)) or type(e).__name__
        raise ModelError(f"{files.name} is not a valid bioimage.io model ({why})") from None
    if not isinstance(descr, v0_5.ModelDescr):
        errors = [
            f"{'.'.join(map(str, err.loc))}: {err.msg}"
            for d in getattr(getattr(descr, "validation_summary", None), "details", [])
            for err in d.errors
        ]
        if errors:
            more = f" (and {len(errors) - 2} more)" if len(errors) > 2 else ""
            why = first_line("; ".join(errors[:2])) + more
            raise ModelError(f"{files.name} is not a valid bioimage.io model: {why}")
        raise ModelError(
            f"{files.name} is a {getattr(descr, 'type', '?')} description of format "
            f"{getattr(descr, 'format_version', '?')}; unet-edge runs bioimage.io models of "
            "format 0.5 (update it with `bioimageio update-format`)"
        )
    if descr.weights.onnx is None or len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ModelError(
            f"{files.name} has no ONNX weights or more than one input or output; unet-edge runs "
            "single-input ONNX models (convert the weights with `bioimageio.core`'s converters)"
        )
    return descr


def _graph(files: PackageFiles, content: dict[str, Any]) -> tuple[bytes, Any]:
    """The ONNX weights' bytes (inside the package, bounded, digest checked) and their parse."""
    import onnx

    w = content["weights"]["onnx"]
    if w.get("external_data"):
        raise ModelError(
            f"{files.name}: its ONNX weights keep data in separate files; unet-edge runs "
            "packages whose weights are one ONNX file"
        )
    graph = files.read(w.get("source"), w.get("sha256"), "ONNX weights file", MAX_WEIGHTS_BYTES)
    try:
        model = onnx.load_model_from_string(graph)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{files.name}: its ONNX weights are not an ONNX model ({e})") from None
    ext = onnx.TensorProto.EXTERNAL
    external = [t.name for t in model.graph.initializer if t.data_location == ext]
    if external:
        raise ModelError(
            f"{files.name}: its ONNX weights keep tensor {external[0]!r} in an external file; "
            "unet-edge runs package weights that hold all their tensors"
        )
    return graph, model


def _tests(files: PackageFiles, content: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The package's (test input, test output) arrays, or None when it declares none."""
    pair = []
    for key, what in (("inputs", "test input"), ("outputs", "test output")):
        t = content[key][0].get("test_tensor")
        if not isinstance(t, dict):
            return None
        data = files.read(t.get("source"), t.get("sha256"), what, MAX_TENSOR_BYTES)
        pair.append(pc.load_npy(data, what, files.name))
    return pair[0], pair[1]


def open_package(path: Path, normalization: Normalization | None = None) -> ModelSource:
    """A bioimage.io package (``.zip`` or its rdf.yaml) as a model the Segmenter runs exactly.

    ``normalization`` replaces the package's own (needed when its
    preprocessing has no unet-edge equivalent). Raises a one-line ModelError
    (a ProbeError for a foreign graph that cannot be tiled) naming ``path``.
    """
    try:
        with PackageFiles(Path(path)) as files:
            content = load_rdf(files.rdf_text(), files.name)
            descr = _describe(content, files)
            graph, model = _graph(files, content)
            tests = _tests(files, content)
        config = (content.get("config") or {}).get(CONFIG_KEY)
        where = f"rdf's config.{CONFIG_KEY}"
        if config is None:
            config, where = pc.in_weights(model, str(path)), f"weights' {PACKAGE_KEY} metadata"
        if config is None:
            config, where = pc.shipped(model), "shipped model's description"
        if config is not None:
            return _ours(graph, config, where, descr, tests, normalization, str(path))
        return _foreign(graph, descr, tests, normalization, str(path))
    except ModelError as e:
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}", option=e.option) from None


def _ours(
    graph: bytes,
    config: object,
    where: str,
    descr: Any,
    tests: tuple[np.ndarray, np.ndarray] | None,
    normalization: Normalization | None,
    name: str,
) -> ModelSource:
    """A package that describes its network (:mod:`~unet_edge.models.package_check`),
    checked against its graph and its test tensors."""
    info, layout = pc.declared(config, where, name)
    pc.check_axes(descr, layout, name)
    theirs = _normalization_of(list(descr.inputs[0].preprocessing))
    pc.check_preprocessing(theirs, info.normalization, name)
    s = open_session(graph, "cpu")
    pc.check_graph(s, info, layout, name)
    if tests is not None:
        pc.check_tests(s, tests, info, info.normalization, name)
    if normalization is not None:
        info = replace(info, normalization=normalization)
    if info.pixel_size is None:
        info = replace(info, pixel_size=axes_pixel_size(descr))
    return ModelSource(graph, info, layout.geometry, origin="bioimage.io")


def _foreign(
    graph: bytes,
    descr: Any,
    tests: tuple[np.ndarray, np.ndarray] | None,
    normalization: Normalization | None,
    name: str,
) -> ModelSource:
    """Any other package: probed, with the larger of its declared and its probed halo; its
    test tensors compared when its own preprocessing is one unet-edge can express."""
    pc.check_axes(descr, None, name)
    own = _normalization_of(list(descr.inputs[0].preprocessing))
    norm = normalization if normalization is not None else own
    if norm is None:
        steps = [str(s.id) for s in descr.inputs[0].preprocessing]
        raise ModelError(
            f"{name}: its preprocessing {steps} has no unet-edge equivalent (supported: "
            "scale_range or scale_linear, then clip to 0..1 and scale_linear); give the "
            "normalisation explicitly",
            option="normalization",
        )
    label = f"{name} (its ONNX weights)"
    src = probed_source(graph, norm, str(descr.name), origin="bioimage.io", label=label)
    if tests is not None and own is not None:
        pc.check_tests(open_session(graph, "cpu"), tests, src.info, own, name)
    axes_names = [getattr(a, "channel_names", None) for a in descr.outputs[0].axes]
    names = [str(c) for c in next((n for n in axes_names if n), [])]
    if len(names) == src.info.classes:
        src = replace(src, info=replace(src.info, class_names=tuple(names)))
    src = replace(src, info=replace(src.info, pixel_size=axes_pixel_size(descr)))
    halo = max([getattr(a, "halo", 0) for a in descr.outputs[0].axes] + [0])
    assert src.probe is not None
    pg = src.probe.geometry
    if halo > pg.halo:  # honour a larger declared halo
        g = TileGeometry(pg.min_size, pg.step, pg.alignment, pg.shrink, halo - pg.shrink)
        return replace(src, geometry=g)
    return src


#: Micrometres per unit of the length units a package's space axes may state.
_AXIS_UNITS = {"picometer": 1e-6, "angstrom": 1e-4, "nanometer": 1e-3, "micrometer": 1.0}
_AXIS_UNITS |= {"millimeter": 1e3, "centimeter": 1e4}


def axes_pixel_size(descr: Any) -> PixelSize | None:
    """The pixel size a package's input states: its y and x axes' ``scale`` in their
    ``unit`` (a length), as micrometres; None when they state none (or no length)."""
    axes = {str(getattr(a, "id", "")): a for a in descr.inputs[0].axes}
    sizes = []
    for a in (axes.get("y"), axes.get("x")):
        unit = _AXIS_UNITS.get(str(getattr(a, "unit", None)))
        if unit is None:
            return None
        sizes.append(float(getattr(a, "scale", 1.0)) * unit)
    try:
        return PixelSize(sizes[0], sizes[1])
    except ModelError:  # a scale that is no size (spec allows any positive float)
        return None
