"""What a bioimage.io package says about its network, checked before it runs.

A package written by unet-edge (:mod:`unet_edge.training.package`) wraps its
network in a :class:`Layout` and keeps the unet-edge description of both in
the rdf's ``config.unet_edge`` (:data:`CONFIG_KEY`) and in its ONNX weights'
metadata (:data:`PACKAGE_KEY`, which survives a tool that rewrites the rdf).
Before such a package runs:

- :func:`declared` validates that description (known keys only, integers in
  range; the model part as strictly as an ONNX file's metadata) and
  requires the layout to be the one its network's geometry gives;
- :func:`check_axes` requires the rdf's axes, block sizes and halo to agree
  with the layout, and :func:`check_preprocessing` its preprocessing with
  the model's normalisation (other tools run the rdf, unet-edge the config);
- :func:`check_graph` runs the graph once with the load-time check every
  unet-edge model gets (:func:`unet_edge.models.check.check_session`), here
  with the layout's zero borders, so a layout that lies about the graph is
  refused;
- :func:`check_tests` runs the package's own test input and compares the
  result with its test output (every package, probed ones included).

:func:`shipped` recognises the shipped model's package by its weights when
it carries no description at all, so it is never probed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metadata, processing
from ..capture import first_line
from ..config import Normalization, NormMode
from ..engines.session import run_quietly
from ..errors import ConfigError, InputError, ModelError
from ..geometry import Geometry, TileGeometry
from .check import PROBABILITY_TOLERANCE, check_session

if TYPE_CHECKING:
    import onnx

    from ..engines.session import SessionInfo

#: Where unet-edge keeps its own description inside the rdf's ``config``.
CONFIG_KEY = "unet_edge"
#: The ONNX metadata key of the same description inside a package's weights.
PACKAGE_KEY = "unet_edge.package"
#: What a package's graph check and test comparison tell the user to do.
FIX = "write the package again with unet-edge"


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

    @property
    def geometry(self) -> TileGeometry:
        """The blocks as the kernel tiles them: the graph's output has the block's size."""
        return TileGeometry(self.min_block, self.step, self.alignment, 0, self.halo)


def network_geometry(info: metadata.ModelInfo) -> Geometry | TileGeometry:
    """The geometry of the network a package wraps: from its architecture, or, for a probed
    network, what probing measured (kept in ``architecture.extra["probed"]``)."""
    probed = info.architecture.extra.get("probed")
    if not isinstance(probed, dict):
        return info.geometry
    g = probed.get("geometry")
    keys = ("min_size", "step", "alignment", "shrink", "margin")
    if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in keys):
        raise ModelError(f"its probed geometry {str(g)[:120]} lacks {', '.join(keys)}")
    return TileGeometry(*(g[k] for k in keys))


def declared(config: object, where: str, name: str) -> tuple[metadata.ModelInfo, Layout]:
    """The model description and layout a package declares (``where``: which part of the
    package said so), validated; a one-line ModelError naming the package ``name`` else."""
    if not isinstance(config, dict) or set(config) != {"model", "layout"}:
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ModelError(f"{name}: its {where} must hold exactly model and layout, got {got}")
    raw, known = config["layout"], [f.name for f in fields(Layout)]
    if not isinstance(raw, dict) or set(raw) != set(known):
        got = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise ModelError(
            f"{name}: its {where} layout must have exactly the keys {', '.join(known)}; got {got}"
        )
    bad = {k: v for k, v in raw.items() if type(v) is not int or not 0 <= v <= 1 << 16}
    if bad:
        raise ModelError(f"{name}: its {where} layout has values that are not sizes: {bad}")
    layout = Layout(**raw)
    if not isinstance(config["model"], dict):
        raise ModelError(f"{name}: its {where} model must be a mapping")
    try:
        info = metadata.from_dict(config["model"])
        expected = Layout.of(network_geometry(info))
    except (ModelError, ConfigError) as e:
        raise ModelError(f"{name}: its {where} model: {e}") from None
    if layout != expected:
        diff = {k: (v, getattr(expected, k)) for k, v in raw.items() if v != getattr(expected, k)}
        text = ", ".join(f"{k} {a} (the network gives {b})" for k, (a, b) in diff.items())
        raise ModelError(f"{name}: its {where} layout contradicts its network: {text}; {FIX}")
    return info, layout


def in_weights(model: onnx.ModelProto, name: str) -> dict[str, Any] | None:
    """The description a package's ONNX weights carry (:data:`PACKAGE_KEY`), or None."""
    text = next((p.value for p in model.metadata_props if p.key == PACKAGE_KEY), None)
    if text is None:
        return None
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelError(f"{name}: its weights' {PACKAGE_KEY} metadata is not JSON ({e})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{name}: its weights' {PACKAGE_KEY} metadata is not a JSON object")
    return d


def _fingerprint(model: onnx.ModelProto) -> str:
    """SHA-256 of a graph's weights (initializers by name), without a package's own
    constants (``__*``: the crop, the padding): the network's identity."""
    h = hashlib.sha256()
    for t in sorted(model.graph.initializer, key=lambda t: t.name):
        if not t.name.startswith("__"):
            h.update(t.SerializeToString())
    return h.hexdigest()


@functools.cache
def _shipped() -> tuple[str, dict[str, Any]] | None:
    """(fingerprint, description) of the shipped model, or None where it is not installed."""
    import onnx

    path = Path(str(resources.files("unet_edge") / "data" / "default.onnx"))
    if not path.is_file():
        return None
    model = onnx.load(str(path))
    info = metadata.read(model)
    layout = Layout.of(info.geometry).to_dict()
    return _fingerprint(model), {"model": info.to_dict(), "layout": layout}


def shipped(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The description of the shipped model's package when ``model`` (a package's graph)
    holds exactly the shipped model's weights, else None."""
    known = _shipped()
    return known[1] if known is not None and _fingerprint(model) == known[0] else None


def check_axes(descr: Any, layout: Layout | None, name: str) -> None:
    """The rdf's tensors must be (batch, channel, y, x); with a layout, its block sizes and
    output halo must be the layout's (what other bioimage.io tools tile by)."""
    for kind, t in (("input", descr.inputs[0]), ("output", descr.outputs[0])):
        ids = [str(a.id) for a in t.axes]
        if ids != ["batch", "channel", "y", "x"]:
            raise ModelError(
                f"{name}: its {kind} axes are {ids}; unet-edge runs 2-D models with axes "
                "(batch, channel, y, x)"
            )
    if layout is None:
        return
    space = descr.inputs[0].axes[2:]
    sizes = {(getattr(a.size, "min", 0), getattr(a.size, "step", 0)) for a in space}
    halos = {getattr(a, "halo", 0) for a in descr.outputs[0].axes[2:]}
    if sizes != {(layout.min_block, layout.step)} or halos != {layout.halo}:
        said = ", ".join(f"{m} + {s}k" for m, s in sorted(sizes, key=str))
        raise ModelError(
            f"{name}: its rdf declares blocks {said} with halo {sorted(halos, key=str)}, its "
            f"layout {layout.min_block} + {layout.step}k with halo {layout.halo}; other tools "
            f"would tile it differently: {FIX}"
        )


def _as_tuple(n: Normalization) -> tuple[Any, ...]:
    """A normalisation as comparable values (8-bit dtype range written as 0..255, as the
    package writer writes it)."""
    mode, lo, hi = n.mode, n.low, n.high
    if mode is NormMode.DTYPE_RANGE:
        mode, lo, hi = NormMode.FIXED_RANGE, 0.0, 255.0
    return (mode, n.clip, lo, hi, n.mean, n.std)


def check_preprocessing(theirs: Normalization | None, ours: Normalization, name: str) -> None:
    """The rdf's preprocessing (as a Normalization; None: none unet-edge can express) must be
    the model's normalisation: tools that run the rdf then give unet-edge's mask."""
    a, b = _as_tuple(ours), None if theirs is None else _as_tuple(theirs)
    same = (
        b is not None
        and a[:2] == b[:2]
        and all(
            math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
            for x, y in zip(a[2:], b[2:], strict=True)
        )
    )
    if not same:
        said = theirs.to_dict() if theirs is not None else "none unet-edge can express"
        raise ModelError(
            f"{name}: its rdf's preprocessing ({said}) is not its model's normalisation "
            f"{ours.to_dict()}, so other tools would give other masks; {FIX}"
        )


def check_graph(s: SessionInfo, info: metadata.ModelInfo, layout: Layout, name: str) -> None:
    """The load-time graph check, with the layout's zero borders (see the module's docstring)."""
    pads = (layout.pad_before, layout.pad_after)
    said = (
        f"package layout: blocks {layout.min_block} + {layout.step}k, halo {layout.halo}, zero "
        f"borders {pads[0]} and {pads[1]} px"
    )
    check_session(s, info, layout.geometry, name, pads=pads, fix=FIX, described=said)


def load_npy(data: bytes, what: str, name: str) -> np.ndarray:
    """A test tensor from the bytes of a ``.npy`` file: no pickles, and a header that claims
    no more data than the file holds (so nothing larger than the file is allocated)."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(f)
        if dtype.hasobject or math.prod(shape) * dtype.itemsize > len(data) - f.tell():
            raise ValueError(f"its header claims {shape} {dtype}, not what the file holds")
        f.seek(0)
        return np.asarray(np.load(f, allow_pickle=False))
    except ValueError as e:
        raise ModelError(f"{name}: its {what} is not a plain .npy array ({e})") from None


def check_tests(
    s: SessionInfo,
    tests: tuple[np.ndarray, np.ndarray],
    info: metadata.ModelInfo,
    norm: Normalization,
    name: str,
) -> None:
    """Run the package's test input (raw (1, C, H, W), normalised with ``norm``) through
    session ``s``; the graph's raw output must equal the test output within the tolerance
    of the load-time check (:data:`~unet_edge.models.check.PROBABILITY_TOLERANCE`)."""
    x, want = tests
    if x.ndim != 4 or x.shape[:2] != (1, info.channels):
        raise ModelError(
            f"{name}: its test input has shape {x.shape}, expected (1, {info.channels}, H, W)"
        )
    frame = x[0, 0] if info.channels == 1 else np.moveaxis(x[0], 0, -1)
    try:
        batch = processing.normalize(frame, norm, info.channels)[None]
    except InputError as e:
        raise ModelError(f"{name}: its own test input cannot be normalised ({e})") from None
    try:
        got = run_quietly(s, info.input_name, info.output_name, batch)
    except Exception as e:  # the engine's own errors: a graph that fails on its test input
        why = first_line(str(e)) or type(e).__name__
        raise ModelError(f"{name}: its graph fails on its own test input ({why}); {FIX}") from None
    tol = PROBABILITY_TOLERANCE[info.precision.value] * max(1.0, float(np.abs(want).max(initial=0)))
    if got.shape != want.shape:
        raise ModelError(
            f"{name}: its graph gives shape {got.shape} on its test input, its test output "
            f"has {want.shape}; {FIX}"
        )
    worst = float(np.abs(got.astype(np.float64) - want).max(initial=0))
    if not worst <= tol:  # NaN fails too
        raise ModelError(
            f"{name}: its graph's output on its own test input differs from its test output by "
            f"up to {worst:.3g} (tolerance {tol:.3g}); the weights or the layout are not the "
            f"ones it was tested with: {FIX}"
        )
