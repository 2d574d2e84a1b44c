"""Writing bioimage.io model packages (spec 0.5) from a unet-edge model or a probed ONNX U-Net.

bioimage.io consumers (bioimageio.core, deepImageJ, ilastik) tile a model by
its input sizes and output ``halo``: they cut blocks ``min + step * k``
wide, reflect-pad the image edges and keep each block's output minus
``halo`` pixels per side. The valid U-Net's own description (output = input
- 184) is not something they tile correctly, so the package holds a variant
graph (:func:`variant_graph`) that

- crops ``c`` pixels at the top and left of its input (``c`` chosen so that
  every block stride ``block - 2 * halo`` is a multiple of the alignment,
  i.e. every block sees the max-pooling grid of the whole image),
- runs the network, and
- zero-pads the output back to the block size (``c + shrink`` before,
  ``shrink`` after),

declared with ``halo = c + shrink + margin``
(:class:`~unet_edge.models.bioimage.Layout`). For the shipped model (halo
92, alignment 16) that is a crop of 4, blocks ``208 + 16k`` and ``halo:
96``; consumers then get unet-edge's exact answer. Preprocessing mirrors the
model's normalisation (``scale_range`` percentiles or ``scale_linear``,
``clip``, ``scale_linear`` for mean and std), the softmax is inside the
graph, and the unet-edge metadata is kept in ``config.unet_edge``, so
:func:`unet_edge.models.bioimage.open_package` runs the package with the
model's own geometry. Built with ``bioimageio.spec``'s classes (imported
lazily; extra ``[bioimageio]``).

Torch-free except :func:`package_checkpoint` (its export and TorchScript
trace import torch when called), so ``unet-edge package model.onnx`` works in
a runtime-only install.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import io, metadata, processing
from ..config import Normalization, NormMode
from ..errors import ConfigError, ModelError
from ..models.bioimage import CONFIG_KEY, PACKAGE_KEY, Layout, need_spec
from ..models.open import is_package, open_model
from ..models.source import ModelSource

if TYPE_CHECKING:
    import onnx

#: The ids of the package's input and output tensors in the rdf.
INPUT_ID, OUTPUT_ID = "raw", "probabilities"
#: (citation, DOI) of the U-Net paper, and of the ISBI 2012 data the shipped model learnt from.
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


#: ``provenance["recipe"]`` of the shipped EM model: the one model whose data is ISBI 2012.
ISBI_RECIPE = "export/isbi2012-default"
ISBI_DATA = (
    "the ISBI 2012 EM segmentation challenge (serial-section TEM of the Drosophila ventral "
    f"nerve cord; Arganda-Carreras et al. 2015, doi:{ISBI[1]})"
)
UNRECORDED = "not recorded"


@dataclass(frozen=True)
class About:
    """What a package says about its model; ``None`` fields come from the model's metadata.

    ``authors`` are (name, affiliation or None). ``tags`` are added to the
    defaults. See :func:`describe` for the defaults.
    """

    name: str | None = None
    description: str | None = None
    authors: tuple[tuple[str, str | None], ...] = ()
    training_data: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Described:
    """:class:`About` with every default filled in (see :func:`describe`)."""

    name: str
    description: str
    authors: tuple[tuple[str, str | None], ...]
    training_data: str  # UNRECORDED when nobody said
    tags: tuple[str, ...]
    isbi: bool  # the shipped ISBI model: cite the data, EM tags


def parse_author(text: str) -> tuple[str, str | None]:
    """``"NAME[:AFFILIATION]"`` -> (name, affiliation or None); raises :class:`ConfigError`."""
    name, _, affiliation = (t.strip() for t in text.partition(":"))
    if not name or "/" in name:
        raise ConfigError(
            f"author {text!r}: expected NAME or NAME:AFFILIATION with a non-empty name "
            "without '/', e.g. 'Ada Lovelace:University of London'"
        )
    return name, affiliation or None


def describe(info: metadata.ModelInfo, about: About | None, foreign: bool) -> Described:
    """The package's name, description, authors, training data and tags.

    Defaults: the model's name; its training data from ``provenance["training_data"]``
    (recorded by ``unet-edge train``), ISBI 2012 only for the shipped model
    (``provenance["recipe"] == ISBI_RECIPE``) and nothing for a ``foreign``
    (probed) graph; author "unet-edge developers" for the shipped model, else
    "unknown (packaged with unet-edge)".
    """
    a = about or About()
    isbi = not foreign and info.provenance.get("recipe") == ISBI_RECIPE
    recorded = None if foreign else info.provenance.get("training_data")
    data = a.training_data or (ISBI_DATA if isbi else str(recorded or UNRECORDED))
    classes = ", ".join(info.class_names)
    short = "ISBI 2012 serial-section EM slices" if data == ISBI_DATA else data
    trained = "" if data == UNRECORDED else f", trained on {short}"
    description = a.description or (
        f"2-D U-Net predicting {classes} probabilities{trained} (unet-edge export, tiled "
        "exactly by its declared halo)."
    )
    default_author = "unet-edge developers" if isbi else "unknown (packaged with unet-edge)"
    authors = a.authors or ((default_author, None),)
    tags = ["unet", "unet2d", "onnx", "segmentation", "2d"]
    tags += ["electron-microscopy", "isbi2012"] if isbi and not a.training_data else []
    tags += [t for t in a.tags if t not in tags]
    return Described(
        (a.name or f"unet-edge {info.name}")[:128], description, authors, data, tuple(tags), isbi
    )


def _sample_image() -> Path:
    """The ISBI 2012 slice shipped with the package (the default test image and cover)."""
    return Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))


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


def _readme(
    info: metadata.ModelInfo, layout: Layout, tiles: str, foreign: bool, about: Described
) -> str:
    """The package's README.md (its model card); ``foreign``: a probed graph unet-edge did not
    train, so nothing is claimed about its training data unless ``about`` says it."""
    n = info.normalization
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in info.metrics.items() if isinstance(v, float))
    origin = (
        "packaged with unet-edge from an ONNX U-Net it did not train: the geometry below was "
        "measured by running the graph (`unet_edge.models.probe`)."
        if foreign
        else "trained and packaged with unet-edge."
    )
    held_out = "held-out ISBI 2012 slices" if about.isbi else "held-out images of its training data"
    return f"""# {about.name}

{about.description}

A 2-D U-Net (Ronneberger et al. 2015, doi:{PAPER[1]}) for {", ".join(info.class_names)}
segmentation, {origin}

Training data: {about.training_data}.{_recipe(info)}

Authors: {"; ".join(nm + (f" ({af})" if af else "") for nm, af in about.authors)}.

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
{f"{metrics} (unet-edge's validation on {held_out})" if metrics else "No metrics recorded."}
"""


def _recipe(info: metadata.ModelInfo) -> str:
    """`` Training: N steps (recipe R).`` from the provenance, or ``""`` when not recorded."""
    steps, recipe = info.provenance.get("training_steps"), info.provenance.get("recipe")
    parts = [f"{steps} steps" if steps is not None else "", f"recipe {recipe}" if recipe else ""]
    return f" Training: {', '.join(p for p in parts if p)}." if any(parts) else ""


def _axes(
    v: Any, names: tuple[str, ...], layout: Layout, output: bool, px: Any = None
) -> list[Any]:
    """The (batch, channel, y, x) axes of the input (sizes ``min_block + step * k``) or of the
    output (the input's sizes, ``halo`` per side), as spec ``v0_5`` classes ``v``; the space
    axes' scale and unit are the model's pixel size ``px`` (micrometres) when it has one."""
    channel = v.ChannelAxis(channel_names=[v.Identifier(c) for c in names])
    sizes = {"y": px.y, "x": px.x} if px is not None else {}
    um = {a: {"scale": sizes[a], "unit": "micrometer"} if sizes else {} for a in ("y", "x")}
    if output:
        space = [
            v.SpaceOutputAxisWithHalo(
                id=v.AxisId(a),
                halo=layout.halo,
                size=v.SizeReference(tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a)),
                **um[a],
            )
            for a in ("y", "x")
        ]
    else:
        size = v.ParameterizedSize(min=layout.min_block, step=layout.step)
        space = [v.SpaceInputAxis(id=v.AxisId(a), size=size, **um[a]) for a in ("y", "x")]
    return [v.BatchAxis(), channel, *space]


def _description(
    info: metadata.ModelInfo, layout: Layout, d: Path, torchscript: bool, about: Described
) -> Any:
    """The rdf as bioimageio.spec's ``ModelDescr``, from the files in folder ``d``."""
    from bioimageio.spec.model import v0_5 as v

    channels = tuple(f"channel{i}" for i in range(info.channels)) if info.channels > 1 else ("raw",)
    inp = v.InputTensorDescr(
        id=v.TensorId(INPUT_ID),
        axes=_axes(v, channels, layout, output=False, px=info.pixel_size),
        test_tensor=v.FileDescr(source=d / "test_input.npy"),
        preprocessing=_preprocessing(info.normalization, v),
        data=v.IntervalOrRatioDataDescr(type="float32"),
    )
    out = v.OutputTensorDescr(
        id=v.TensorId(OUTPUT_ID),
        axes=_axes(v, info.class_names, layout, output=True, px=info.pixel_size),
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
        name=about.name,
        description=about.description,
        authors=[v.Author(name=nm, affiliation=af) for nm, af in about.authors],
        cite=[
            v.CiteEntry(text=t, doi=v.Doi(doi))
            for t, doi in ((PAPER, ISBI) if about.isbi else (PAPER,))
        ],
        license=v.LicenseId("MIT"),
        documentation=v.FileDescr(source=d / "README.md"),
        tags=list(about.tags),
        covers=[v.FileDescr(source=d / "cover.png")],
        inputs=[inp],
        outputs=[out],
        weights=v.WeightsDescr(onnx=onnx_weights, torchscript=script_weights),
        config=v.Config(**config),
    )


def _activation_of(src: ModelSource) -> str | None:
    """What :func:`variant_graph` appends to make ``src``'s output probabilities (None: nothing)."""
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
    about: About | None = None,
) -> Path:
    """Write a bioimage.io model package (``.zip``) for the ONNX ``model``.

    ``model`` is a unet-edge ONNX file, or any ONNX U-Net with its
    ``normalization`` (probed, see :mod:`unet_edge.models.probe`; its logits or
    sigmoid become probabilities inside the packaged graph). ``image``, an (H, W)
    or (H, W, C) frame of raw values (default: the shipped ISBI sample, uint8),
    gives the test tensors and the cover; ``torchscript``,
    a TorchScript file of the same variant graph
    (:func:`unet_edge.training.export.variant_torchscript`), adds those weights.
    ``about`` overrides the name, description, authors, training data and adds
    tags (defaults: :func:`describe`).
    """
    import onnx

    spec = need_spec()
    model, output = Path(model), Path(output)
    io.check_output(output, overwrite, [model])
    if is_package(model):
        raise ModelError(f"{model} is a bioimage.io package already; give its ONNX weights")
    src = open_model(model, normalization)
    info, foreign = src.info, src.probe is not None
    described = describe(info, about, foreign)
    layout = Layout.of(src.geometry)
    variant = variant_graph(onnx.load(str(model)), layout, _activation_of(src))
    # the weights describe themselves too: a tool that rewrites the rdf drops config.unet_edge
    ours = {"model": info.to_dict(), "layout": layout.to_dict()}
    variant.metadata_props.add(key=PACKAGE_KEY, value=json.dumps(ours))
    graph = variant.SerializeToString()
    if image is None:
        image = io.read_image(_sample_image())
    raw, probs = _test_tensors(graph, info, layout, image)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "weights.onnx").write_bytes(graph)
        np.save(d / "test_input.npy", raw)
        np.save(d / "test_output.npy", probs)
        io.write_png(d / "cover.png", _cover(raw, probs, layout.halo))
        (d / "README.md").write_text(_readme(info, layout, src.describe(), foreign, described))
        if torchscript is not None:
            (d / "weights.pt").write_bytes(Path(torchscript).read_bytes())
        descr = _description(info, layout, d, torchscript is not None, described)
        with io.atomic_path(output) as tmp_zip:
            spec.save_bioimageio_package(descr, output_path=tmp_zip)
    return output


def package_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    image: np.ndarray | None = None,
    overwrite: bool = False,
    about: About | None = None,
) -> Path:
    """:func:`write_package` for a training checkpoint: ONNX and TorchScript weights, with the
    domain statistics of the training images it records when they are still there."""
    from .domain_data import export_with_domain
    from .export import variant_torchscript  # torch: only when called

    checkpoint, output = Path(checkpoint), Path(output)
    io.check_output(output, overwrite, [checkpoint])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_with_domain(checkpoint, onnx_path)  # unet_edge.training.domain_data
        layout = Layout.of(metadata.read(onnx_path).geometry)
        ts = variant_torchscript(
            checkpoint,
            layout.crop,
            layout.pad_before,
            layout.pad_after,
            layout.min_block + layout.step,
            Path(tmp) / "weights.pt",
        )
        return write_package(
            onnx_path, output, image=image, torchscript=ts, overwrite=overwrite, about=about
        )
