"""Static int8 (QDQ) copies of fp32 unet-edge graphs, kept only when they pass the gate.

:func:`quantize` calibrates on the runtime's own tiles
(:mod:`~unet_edge.precision.calibrate`), keeps the head 1x1 convolution and
the softmax in float (found by identity: nodes without a name, or sharing
one, are named first, so an exclusion list can never name every node), refuses
a graph in which no operator was quantised, and writes the file only if its
masks agree with fp32 (:mod:`~unet_edge.precision.gate`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from .. import io, metadata
from ..config import Precision
from ..errors import ExportError, InputError, ModelError, OutputExistsError
from ..metadata import ModelInfo
from .calibrate import MAX_CALIBRATION_TILES, TileReader, calibration_tiles
from .gate import AGREEMENT_THRESHOLD, checked_agreement

if TYPE_CHECKING:
    import onnx

__all__ = ["WEIGHT_BITS", "QuantizeReport", "quantize", "quantized_operators"]

#: MinMax calibration folds the ranges every this many tiles (bounds its memory).
_CALIB_CHUNK = 4
#: Bits of the int8 weights by the provider a file is meant for (7: cannot saturate).
WEIGHT_BITS = {"cpu": 7, "openvino": 8}
#: Operators whose weights a quantised graph holds in int8 (behind a DequantizeLinear).
_WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class QuantizeReport:
    """What :func:`quantize` did."""

    path: Path
    source: Path
    calibration_images: list[str]
    calibration_tiles: int
    tile_shape: tuple[int, int]
    threshold: float
    agreement: dict[str, Any] = field(default_factory=dict)
    file_bytes: int = 0
    seconds: float = 0.0
    weight_bits: int = 8

    def summary(self) -> str:
        """One line: the file, its calibration and its measured agreement with fp32."""
        a = self.agreement
        return (
            f"wrote {self.path} ({self.file_bytes / 1e6:.2f} MB, int8 QDQ u8/s8 per-channel, "
            f"{self.weight_bits}-bit weights): "
            f"calibrated on {self.calibration_tiles} {self.tile_shape[0]}x{self.tile_shape[1]} "
            f"tiles from {len(self.calibration_images)} image(s); masks agree with fp32 on "
            f"{100 * a['pixel_agreement']:.3f}% of pixels on {a.get('provider', 'cpu')} (threshold "
            f"{100 * self.threshold:.1f}%, worst image {100 * a['min_image_agreement']:.3f}%), "
            f"max probability difference {a['max_abs_prob_diff']:.3f}"
        )


def name_nodes(graph: onnx.GraphProto) -> int:
    """Give every node of ``graph`` that has no name, or a name another node has, a unique one.

    onnxruntime's quantiser excludes nodes by name: an exclusion list naming
    an unnamed node (``""``) excluded every unnamed node, and a duplicated
    name both. Returns how many nodes were renamed.
    """
    seen: set[str] = set()
    taken = {n.name for n in graph.node}
    renamed = 0
    for i, n in enumerate(graph.node):
        if n.name and n.name not in seen:
            seen.add(n.name)
            continue
        k, base = 0, f"{n.op_type or 'node'}_{i}"
        while (name := base if k == 0 else f"{base}_{k}") in taken:
            k += 1
        n.name = name
        taken.add(name)
        seen.add(name)
        renamed += 1
    return renamed


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """Nodes kept in float: each softmax and the convolution that makes its logits (by name,
    which :func:`name_nodes` made unique).

    The class of a pixel is the sign of a logit difference; quantising the
    logits themselves to 256 levels flipped ~0.2% more pixels on ISBI slices
    20-24 (99.38% -> 99.59% agreement with the head in float) for ~0.1% of
    the FLOPs.
    """
    producer = {o: n for n in graph.node for o in n.output}
    keep = []
    for n in graph.node:
        if n.op_type == "Softmax":
            keep.append(n)
            head = producer.get(n.input[0])
            if head is not None and head.op_type == "Conv":
                keep.append(head)
    names = [n.name for n in keep]
    if len(set(names)) != len(names) or "" in names:  # name_nodes ran: a bug if this fails
        raise ExportError(f"nodes to keep in float have no unique names: {names}")
    return names


def quantized_operators(model: onnx.ModelProto) -> list[str]:
    """Names of the operators of ``model`` that compute in int8.

    A QDQ graph's quantised operator takes its weight from a
    ``DequantizeLinear``; the QOperator format has ``QLinear*`` and
    ``*Integer`` operators. An empty list: the graph is float throughout,
    whatever its metadata says.
    """
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    found = []
    for n in model.graph.node:
        qdq = n.op_type in _WEIGHTED and len(n.input) > 1
        dequantized = qdq and producer.get(n.input[1]) == "DequantizeLinear"
        if dequantized or n.op_type.startswith("QLinear") or n.op_type.endswith("Integer"):
            found.append(n.name or n.op_type)
    return found


def _fp32_source(src: Path, out: Path, threshold: float, overwrite: bool) -> ModelInfo:
    """The metadata of the fp32 model ``src``, after the checks :func:`quantize` makes first."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold}")
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"{out} exists and overwriting was not asked for", option="overwrite"
        )
    if out.resolve() == src.resolve():
        raise OutputExistsError(
            f"{out} is the input model; choose another output file", option="output"
        )
    if not src.is_file():
        raise ModelError(f"model file {src} does not exist")
    info = metadata.read(src)
    if info.precision is not Precision.FP32:
        raise ModelError(
            f"{src} is already {info.precision.value}; quantize the fp32 model from "
            "`unet-edge export`"
        )
    return info


def _quantize_static(src: Path, pre: Path, q: Path, reader: TileReader, bits: int) -> None:
    """Write to ``q`` the QDQ u8/s8 per-channel graph of ``src`` (``pre``: its pre-processing).

    ``bits``: 8, or 7 (onnxruntime's ``reduce_range``: weights in -64..64).
    """
    import onnx

    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    if name_nodes(model.graph):
        onnx.save_model(model, str(pre), save_as_external_data=False)
    quantize_static(
        str(pre),
        str(q),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=bits == 7,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=float_nodes(model.graph),
        extra_options={"CalibMaxIntermediateOutputs": _CALIB_CHUNK},
    )


def _int8_provenance(
    info: ModelInfo, src: Path, paths: list[Path], frames: int, tiles: list[np.ndarray], bits: int
) -> dict[str, Any]:
    """``info``'s provenance plus how the int8 graph was made and calibrated."""
    import onnxruntime as ort

    calib = {
        "method": "MinMax",
        "images": [p.name for p in paths],
        "frames": frames,
        "tiles": len(tiles),
        "tile": list(tiles[0].shape[2:]),
    }
    return {
        **dict(info.provenance),
        "quantized_from": src.name,
        "quantization": {
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8 per-channel",
            "weight_bits": bits,
            "float": "head 1x1 convolution and softmax",
            "onnxruntime": ort.__version__,
            "calibration": calib,
        },
    }


def _some_operator_quantized(proto: onnx.ModelProto, src: Path, out: Path) -> None:
    """Refuse a "quantised" graph that computes nothing in int8 (its metadata would lie)."""
    if quantized_operators(proto):
        return
    ops = sorted({n.op_type for n in proto.graph.node} - {"QuantizeLinear", "DequantizeLinear"})
    raise ExportError(
        f"quantising {src} left no operator computing in int8 (its operators {ops} all "
        f"stayed in float: only the head convolution and the softmax, which stay in float, "
        f"have weights?); {out} was not written. Keep the fp32 model"
    )


def _save(proto: onnx.ModelProto, path: Path) -> None:
    import onnx

    onnx.save_model(proto, str(path), save_as_external_data=False)


def _stamped(q: Path, src: Path, out: Path, info: ModelInfo) -> onnx.ModelProto:
    """The quantised graph at ``q``, refused without an int8 operator, else stamped with
    ``info`` there (so that the gate's Segmenter reads it) and returned."""
    import onnx

    proto = onnx.load(str(q))
    _some_operator_quantized(proto, src, out)
    metadata.write(proto, info)
    _save(proto, q)
    return proto


def quantize(
    model: str | os.PathLike[str],
    calibrate: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    threshold: float = AGREEMENT_THRESHOLD,
    tile: int | tuple[int, int] | None = None,
    max_tiles: int = MAX_CALIBRATION_TILES,
    overwrite: bool = False,
    provider: str = "cpu",
    weight_bits: int | None = None,
) -> QuantizeReport:
    """Write a static int8 QDQ copy of the fp32 ``model`` calibrated on the ``calibrate`` images.

    The images (any format :func:`unet_edge.io.read_image` reads; stacks give
    one frame per slice) are used twice: to calibrate the activation ranges
    and to check the result. ``output`` is written only if some operator was
    quantised and the int8 masks agree with the fp32 masks on at least
    ``threshold`` of all pixels, with the int8 file run on ``provider``
    (``"cpu"``: ONNX Runtime, or ``"openvino"``: OpenVINO's int8 kernels);
    the file is meant for that provider, and its metadata says so.
    ``weight_bits``: 7 or 8 (default :data:`WEIGHT_BITS`: 7 for ``cpu``, 8
    for ``openvino``; see :mod:`unet_edge.precision`).

    Raises:
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
        ModelError: ``model`` is not an fp32 unet-edge graph.
        ExportError: no operator was quantised, or the agreement is below
            ``threshold`` (nothing written).
    """
    t0 = time.perf_counter()
    src, out = Path(model), Path(output)
    info = _fp32_source(src, out, threshold, overwrite)
    bits = _weight_bits(weight_bits, provider)
    paths, frames = _calibration_images(calibrate)
    tiles = calibration_tiles(info, frames, tile, max_tiles)
    prov = _int8_provenance(info, src, paths, len(frames), tiles, bits)
    with tempfile.TemporaryDirectory(prefix="unet-edge-quant-") as tmpd:
        pre, q = Path(tmpd) / "pre.onnx", Path(tmpd) / "int8.onnx"
        _quantize_static(src, pre, q, TileReader(info.input_name, tiles), bits)
        proto = _stamped(q, src, out, _replace_info(info, prov, {}))
        agree = checked_agreement(src, q, frames, tile, threshold, out, provider)
        summary = {k: v for k, v in agree.items() if k != "per_image"}
        metadata.write(proto, _replace_info(info, prov, {**info.metrics, "int8_vs_fp32": summary}))
        with io.atomic_path(out) as tmp:
            _save(proto, tmp)
    return QuantizeReport(
        path=out,
        source=src,
        calibration_images=[p.name for p in paths],
        calibration_tiles=len(tiles),
        tile_shape=(int(tiles[0].shape[2]), int(tiles[0].shape[3])),
        threshold=threshold,
        agreement=agree,
        file_bytes=out.stat().st_size,
        seconds=time.perf_counter() - t0,
        weight_bits=bits,
    )


def _calibration_images(
    calibrate: Sequence[str | os.PathLike[str]],
) -> tuple[list[Path], list[np.ndarray]]:
    """The calibration images' paths and pixels; at least one is needed."""
    paths = [Path(p) for p in calibrate]
    if not paths:
        raise InputError("no calibration images given; pass image files", option="calibrate")
    return paths, [io.read_image(p) for p in paths]


def _weight_bits(bits: int | None, provider: str) -> int:
    """``bits`` checked (7 or 8), or the default of the provider the file is meant for.

    Only OpenVINO gets 8 bits by default; onnxruntime on any provider gets 7.
    """
    if bits is None:
        return WEIGHT_BITS.get(provider, 7)
    if isinstance(bits, bool) or bits not in (7, 8):
        raise InputError(f"weight_bits must be 7 or 8, got {bits!r}", option="weight_bits")
    return int(bits)


def _replace_info(
    info: ModelInfo, provenance: dict[str, Any], metrics: dict[str, Any]
) -> ModelInfo:
    """``info`` as int8 with ``provenance`` and ``metrics`` (empty: ``info``'s own metrics)."""
    return replace(
        info.with_precision(Precision.INT8),
        provenance=provenance,
        metrics=metrics or dict(info.metrics),
    )
