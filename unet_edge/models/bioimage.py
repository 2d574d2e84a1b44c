"""bioimage.io model packages (spec 0.5): written from a unet-edge model, and run.

**Writing** (:func:`write_package`). bioimage.io consumers (bioimageio.core,
deepImageJ, ilastik) tile a model by its input sizes and output ``halo``:
they cut blocks ``min + step * k`` wide, reflect-pad the image edges and
keep each block's output minus ``halo`` pixels per side. The valid U-Net's
own description (output = input - 184) is not something they tile
correctly, so the package holds a variant graph that

- crops ``c`` pixels at the top and left of its input (``c`` chosen so that
  every block stride ``block - 2 * halo`` is a multiple of the alignment,
  i.e. every block sees the max-pooling grid of the whole image),
- runs the network, and
- zero-pads the output back to the block size (``c + shrink`` before,
  ``shrink`` after),

declared with ``halo = c + shrink + margin``. For the shipped model
(halo 92, alignment 16) that is a crop of 4, blocks ``208 + 16k`` and
``halo: 96``; consumers then get unet-edge's exact answer. Preprocessing
mirrors the model's normalisation (``scale_range`` percentiles or
``scale_linear``, ``clip``, ``scale_linear`` for mean and std), the softmax
is inside the graph, and the unet-edge metadata is kept in
``config.unet_edge``, so :func:`open_package` runs the package with the
model's own geometry. Built with ``bioimageio.spec``'s classes (imported
lazily; extra ``[bioimageio]``).

**Running** (:func:`open_package`). A package written by unet-edge runs
with the geometry in its ``config``; any other package with ONNX weights is
probed (:mod:`unet_edge.probe`) and uses the larger of its declared halo
and the probed margin, so tiled == whole image.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, metadata, processing
from ..config import Normalization, NormMode
from ..errors import ConfigError, ModelError
from ..geometry import Geometry, TileGeometry
from . import source as sources

if TYPE_CHECKING:
    import onnx

#: Where unet-edge keeps its own description inside the rdf's ``config``.
CONFIG_KEY = "unet_edge"
INPUT_ID, OUTPUT_ID = "raw", "probabilities"
PAPER = (
    "Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation. MICCAI 2015.",
    "10.1007/978-3-319-24574-4_28",
)
ISBI = (
    "Arganda-Carreras, I. et al. Crowdsourcing the creation of image segmentation algorithms "
    "for connectomics (ISBI 2012 EM segmentation challenge). Front. Neuroanat. 2015.",
    "10.3389/fnana.2015.00142",
)


def _need_spec() -> Any:
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
    """How the package's graph and description wrap a network of geometry ``g``."""

    crop: int  # pixels cropped at the top/left of each block before the network
    halo: int  # declared output halo
    pad_before: int  # zero rows/columns added before the network's output
    pad_after: int
    min_block: int  # smallest legal block
    step: int  # block step
    alignment: int  # the network's translation period

    @classmethod
    def of(cls, g: Geometry | TileGeometry) -> Layout:
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
        return dict(self.__dict__)


def _activation(kind: str | None, x: str, y: str) -> list[Any]:
    """Nodes turning a probed graph's output ``x`` into class probabilities ``y``."""
    from onnx import helper

    if kind == "softmax":
        return [helper.make_node("Softmax", [x], [y], axis=1)]
    nodes = [helper.make_node("Sigmoid", [x], [f"{x}__p"])] if kind == "logit" else []
    p = f"{x}__p" if nodes else x
    return [
        *nodes,
        helper.make_node("Sub", ["__one", p], [f"{x}__q"]),
        helper.make_node("Concat", [f"{x}__q", p], [y], axis=1),
    ]


def variant_graph(
    model: onnx.ModelProto, layout: Layout, activation: str | None = None
) -> onnx.ModelProto:
    """The package's graph: crop the input's top/left, run ``model``, zero-pad the output.

    ``activation`` (``"softmax"``, ``"sigmoid"``: one probability channel made
    two, ``"logit"``: sigmoid first) makes a probed graph's output probabilities.
    ``model``'s unet-edge metadata is dropped (the variant has another geometry).
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.metadata_props[:]
    g = m.graph
    inp, out = g.input[0].name, g.output[0].name
    inner_in, inner_out = f"{inp}__cropped", f"{out}__network"
    for node in g.node:
        node.input[:] = [inner_in if n == inp else n for n in node.input]
        node.output[:] = [inner_out if n == out else n for n in node.output]
    c, pb, pa = layout.crop, layout.pad_before, layout.pad_after
    consts = {
        "__starts": [c, c],
        "__ends": [2**62, 2**62],
        "__axes": [2, 3],
        "__pads": [0, 0, pb, pb, 0, 0, pa, pa],
    }
    g.initializer.extend(
        numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()
    )
    g.node.insert(0, helper.make_node("Slice", [inp, "__starts", "__ends", "__axes"], [inner_in]))
    if activation is not None:
        g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "__one"))
        g.node.extend(_activation(activation, inner_out, f"{out}__probabilities"))
        inner_out = f"{out}__probabilities"
    g.node.append(helper.make_node("Pad", [inner_out, "__pads"], [out], mode="constant"))
    for vi in (*g.input, *g.output):  # keep batch and input channels, the rest symbolic
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if i >= 2 or (i == 1 and vi in g.output):
                d.dim_param = ("batch", "classes", "height", "width")[i]
    onnx.checker.check_model(m)
    return m


def _preprocessing(norm: Normalization, v: Any) -> list[Any]:
    """The model's normalisation as bioimage.io preprocessing steps (``v``: spec's v0_5)."""
    steps: list[Any] = []
    if norm.mode is NormMode.PERCENTILE:
        kw = v.ScaleRangeKwargs(axes=["y", "x"], min_percentile=norm.low, max_percentile=norm.high)
        steps.append(v.ScaleRangeDescr(kwargs=kw))
    else:  # dtype_range: 8-bit data (see the README); fixed_range: the model's range
        lo, hi = (0.0, 255.0) if norm.mode is NormMode.DTYPE_RANGE else (norm.low, norm.high)
        kw = v.ScaleLinearKwargs(gain=1.0 / (hi - lo), offset=-lo / (hi - lo))
        steps.append(v.ScaleLinearDescr(kwargs=kw))
    if norm.clip:
        steps.append(v.ClipDescr(kwargs=v.ClipKwargs(min=0.0, max=1.0)))
    if norm.mean != 0.0 or norm.std != 1.0:
        kw = v.ScaleLinearKwargs(gain=1.0 / norm.std, offset=-norm.mean / norm.std)
        steps.append(v.ScaleLinearDescr(kwargs=kw))
    return steps


def expected_input(norm: Normalization) -> str:
    """What the package's preprocessing assumes of the raw pixel values, in words."""
    if norm.mode is NormMode.PERCENTILE:
        return (
            f"any bit depth (8- or 16-bit): each image is scaled by its own {norm.low:g}th and "
            f"{norm.high:g}th percentiles"
        )
    if norm.mode is NormMode.DTYPE_RANGE:
        return "8-bit images (0..255); scale 16-bit data to 0..255 first"
    return f"raw values in {norm.low:g}..{norm.high:g}"


def _test_tensors(
    graph: bytes, info: metadata.ModelInfo, layout: Layout, image: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(raw input (1, C, s, s), the package graph's output on its preprocessed values)."""
    import onnxruntime as ort

    s = layout.min_block + 3 * layout.step
    if min(image.shape[:2]) < s:
        raise ModelError(f"the sample image {image.shape[:2]} is smaller than one test block {s}")
    top, left = (image.shape[0] - s) // 2, (image.shape[1] - s) // 2
    crop = image[top : top + s, left : left + s]
    x = processing.normalize(crop, info.normalization, info.channels)[None]
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    raw = processing.frame_to_chw(crop, info.channels).astype(np.float32)[None]
    return raw, np.asarray(y, np.float32)


def _cover(raw: np.ndarray, probs: np.ndarray, halo: int) -> np.ndarray:
    """Image | overlay of the mask, side by side (2:1), cropped to the block's kept part."""
    inner = (slice(halo, -halo), slice(halo, -halo))
    frame = raw[0, 0][inner]
    view = processing.to_display(frame)
    over = processing.overlay(frame, processing.to_mask(probs[0])[inner])
    return np.concatenate([np.repeat(view[..., None], 3, axis=2), over], axis=1)


def _readme(info: metadata.ModelInfo, layout: Layout, tiles: str, foreign: bool) -> str:
    n = info.normalization
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in info.metrics.items() if isinstance(v, float))
    origin = (
        "packaged with [unet-edge](https://github.com/unet-edge) from an ONNX U-Net it did not "
        "train: the geometry below was measured by running the graph (`unet_edge.probe`)."
        if foreign
        else "trained and packaged with [unet-edge](https://github.com/unet-edge).\n"
        "Training data: the ISBI 2012 EM segmentation challenge (serial-section TEM of the\n"
        f"Drosophila ventral nerve cord; Arganda-Carreras et al. 2015, doi:{ISBI[1]})."
    )
    return f"""# {info.name}

A 2-D U-Net (Ronneberger et al. 2015, doi:{PAPER[1]}) for {", ".join(info.class_names)}
segmentation, {origin}

## Input
One {info.channels}-channel 2-D image, axes (batch, channel, y, x), float32 of raw values.
Expected data: {expected_input(n)}. Preprocessing reproduces unet-edge's normalisation
`{n.to_dict()}`.

## Output
Class probabilities ({", ".join(info.class_names)}), softmax (or sigmoid) inside the graph.

## Tiling
The network ({tiles}) is wrapped so that bioimage.io consumers tile it exactly: the graph
crops {layout.crop} px at the top/left of each block, and pads its output back to the block
size; blocks are {layout.min_block} + {layout.step}k px with halo {layout.halo}, so every
block stride is a multiple of the pooling period and the stitched result equals unet-edge's
(and whole-image inference) up to float rounding. The unet-edge description of the original
network is kept in the rdf's `config.unet_edge`; `unet-edge run --model this.zip` uses it.

## Validation
{metrics or "No metrics recorded."} (unet-edge's validation on held-out ISBI 2012 slices)
"""


def _axes(v: Any, names: tuple[str, ...], layout: Layout, output: bool) -> list[Any]:
    channel = v.ChannelAxis(channel_names=[v.Identifier(c) for c in names])
    if output:
        space = [
            v.SpaceOutputAxisWithHalo(
                id=v.AxisId(a),
                halo=layout.halo,
                size=v.SizeReference(tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a)),
            )
            for a in ("y", "x")
        ]
    else:
        size = v.ParameterizedSize(min=layout.min_block, step=layout.step)
        space = [v.SpaceInputAxis(id=v.AxisId(a), size=size) for a in ("y", "x")]
    return [v.BatchAxis(), channel, *space]


def _description(
    info: metadata.ModelInfo, layout: Layout, d: Path, torchscript: bool, foreign: bool
) -> Any:
    """The rdf as bioimageio.spec's ``ModelDescr``, from the files in folder ``d``."""
    from bioimageio.spec.model import v0_5 as v

    channels = tuple(f"channel{i}" for i in range(info.channels)) if info.channels > 1 else ("raw",)
    inp = v.InputTensorDescr(
        id=v.TensorId(INPUT_ID),
        axes=_axes(v, channels, layout, output=False),
        test_tensor=v.FileDescr(source=d / "test_input.npy"),
        preprocessing=_preprocessing(info.normalization, v),
        data=v.IntervalOrRatioDataDescr(type="float32"),
    )
    out = v.OutputTensorDescr(
        id=v.TensorId(OUTPUT_ID),
        axes=_axes(v, info.class_names, layout, output=True),
        test_tensor=v.FileDescr(source=d / "test_output.npy"),
        data=v.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
    onnx_weights = v.OnnxWeightsDescr(source=d / "weights.onnx", opset_version=17)
    script_weights = None
    if torchscript:
        from importlib.metadata import version

        script_weights = v.TorchscriptWeightsDescr(
            source=d / "weights.pt", pytorch_version=v.Version(version("torch").split("+")[0])
        )
    config: dict[str, Any] = {CONFIG_KEY: {"model": info.to_dict(), "layout": layout.to_dict()}}
    return v.ModelDescr(
        name=f"unet-edge {info.name}"[:128],
        description=f"2-D U-Net predicting {', '.join(info.class_names)} probabilities "
        "(unet-edge export, tiled exactly by its declared halo).",
        authors=[v.Author(name="unet-edge developers")],
        cite=[
            v.CiteEntry(text=t, doi=v.Doi(doi))
            for t, doi in ((PAPER,) if foreign else (PAPER, ISBI))
        ],
        license=v.LicenseId("MIT"),
        documentation=v.FileDescr(source=d / "README.md"),
        tags=["unet", "unet2d", "onnx", "segmentation", "2d"]
        + ([] if foreign else ["electron-microscopy", "isbi2012"]),
        covers=[v.FileDescr(source=d / "cover.png")],
        inputs=[inp],
        outputs=[out],
        weights=v.WeightsDescr(onnx=onnx_weights, torchscript=script_weights),
        config=v.Config(**config),
    )


def _activation_of(src: sources.ModelSource) -> str | None:
    if src.probe is None or src.probe.kind.value == "probabilities":
        return None
    if src.probe.out_channels > 1:
        return "softmax"
    return "sigmoid" if src.probe.kind.value == "sigmoid" else "logit"


def write_package(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    normalization: Normalization | None = None,
    image: np.ndarray | None = None,
    torchscript: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bioimage.io model package (``.zip``) for the ONNX ``model``.

    ``model`` is a unet-edge ONNX file, or any ONNX U-Net with its
    ``normalization`` (probed, see :mod:`unet_edge.probe`; its logits or sigmoid
    become probabilities inside the packaged graph). ``image`` (default: the
    shipped ISBI sample) gives the test tensors and the cover; ``torchscript``,
    a TorchScript file of the same variant graph
    (:func:`unet_edge.training.export.variant_torchscript`), adds those weights.
    """
    import onnx

    spec = _need_spec()
    model, output = Path(model), Path(output)
    io.check_output(output, overwrite, [model])
    if sources.is_package(model):
        raise ModelError(f"{model} is a bioimage.io package already; give its ONNX weights")
    src = sources.open_model(model, normalization)
    info, foreign = src.info, src.probe is not None
    layout = Layout.of(src.geometry)
    graph = variant_graph(onnx.load(str(model)), layout, _activation_of(src)).SerializeToString()
    if image is None:
        image = io.read_image(Path(__file__).parent / "data" / "sample_isbi2012.png")
    raw, probs = _test_tensors(graph, info, layout, image)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "weights.onnx").write_bytes(graph)
        np.save(d / "test_input.npy", raw)
        np.save(d / "test_output.npy", probs)
        io.write_png(d / "cover.png", _cover(raw, probs, layout.halo))
        (d / "README.md").write_text(_readme(info, layout, src.describe(), foreign))
        if torchscript is not None:
            (d / "weights.pt").write_bytes(Path(torchscript).read_bytes())
        descr = _description(info, layout, d, torchscript is not None, foreign)
        with io.atomic_path(output) as tmp_zip:
            spec.save_bioimageio_package(descr, output_path=tmp_zip)
    return output


def _normalization_of(steps: list[Any]) -> Normalization:
    """The preprocessing of a package as a unet-edge Normalization (the forms it can express)."""
    todo = [(s.id, s.kwargs) for s in steps if s.id != "ensure_dtype"]
    args: dict[str, Any] = {}

    def affine(kw: Any) -> tuple[float, float] | None:  # x * gain + offset, per tensor
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
    _need_spec()
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


def open_package(path: Path, normalization: Normalization | None = None) -> sources.ModelSource:
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
        return sources.ModelSource(graph, info, g, origin="bioimage.io")
    norm = normalization or _normalization_of(list(descr.inputs[0].preprocessing))
    src = sources.probed_source(graph, norm, str(descr.name), origin="bioimage.io")
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


def package_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    image: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`write_package` for a training checkpoint: ONNX and TorchScript weights."""
    from ..training.export import export_checkpoint, variant_torchscript

    checkpoint, output = Path(checkpoint), Path(output)
    io.check_output(output, overwrite, [checkpoint])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_checkpoint(checkpoint, onnx_path)
        layout = Layout.of(metadata.read(onnx_path).geometry)
        ts = variant_torchscript(
            checkpoint,
            layout.crop,
            layout.pad_before,
            layout.pad_after,
            layout.min_block + layout.step,
            Path(tmp) / "weights.pt",
        )
        return write_package(onnx_path, output, image=image, torchscript=ts, overwrite=overwrite)
