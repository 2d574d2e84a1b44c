"""Reduced-precision graphs: fp16 for GPUs, static int8 (QDQ) calibrated on real images.

Torch-free: quantisation works on an exported fp32 graph and runs wherever
the runtime runs.

**fp16** (:func:`to_fp16`): weights and activations in half precision with
float32 inputs and outputs (``keep_io_types``), so the runtime feeds the same
float32 tiles. Meant for CUDA and TensorRT; ONNX Runtime's CPU provider runs
such a graph only through slow fallback kernels and casts, so on a CPU use the
fp32 or int8 graph.

**int8** (:func:`quantize`): ONNX Runtime's static quantisation in QDQ
format, uint8 activations and per-channel int8 weights (on AVX-512 VNNI CPUs
this pair is the fast one; int8/int8 is not). Activation ranges come from a
:class:`TileReader` that feeds real, normalised tiles cut from the calibration
images with the model's own tiling (mirror padding included), so the ranges
are those the runtime will see. The 1x1 head convolution (the logits) and the
softmax stay in float, so the output is still a float32 probability. The
quantised graph is kept only if its masks agree with the fp32 model's on the
calibration images: at least
:data:`AGREEMENT_THRESHOLD` of all pixels must get the same class; otherwise
nothing is written and :class:`~unet_edge.errors.ExportError` says by how
much it missed. The check runs on the provider that will run the file
(``provider``, default ONNX Runtime's cpu): OpenVINO executes the same QDQ
graph with its own int8 kernels, and its masks can agree with fp32 where
onnxruntime's do not (or the other way round). The metadata records which,
and on which CPU.

**Weights in 7 bits for onnxruntime.** On x86 CPUs without VNNI, onnxruntime's
u8 x s8 kernels add pairs of products in 16-bit integers, which saturate with
8-bit weights (:mod:`unet_edge.cpu`): a file that passes the gate on a VNNI
CPU can change 3% of the pixels on an AVX2-only one. So files meant for the
``cpu`` provider get 7-bit weights (onnxruntime's ``reduce_range``, which no
pair can saturate) and their agreement holds on every x86 CPU; files meant
for ``openvino``, whose kernels do not saturate, keep 8 bits (``weight_bits``
overrides either). A :class:`~unet_edge.Segmenter` that runs an 8-bit file on
onnxruntime on a CPU that saturates says so in its notes and warns.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from . import cpu, io, kernel, metadata, processing, tiling
from .config import Precision
from .errors import ExportError, InputError, ModelError, OutputExistsError
from .metadata import ModelInfo
from .models.check import Int8Warning
from .tiling import DEFAULT_MAX_TILE

if TYPE_CHECKING:
    import onnx

    from .runtime import Segmenter

__all__ = [
    "AGREEMENT_THRESHOLD",
    "QuantizeReport",
    "TileReader",
    "agreement",
    "calibration_tiles",
    "quantize",
    "to_fp16",
]

#: Share of pixels whose class must be unchanged (int8 vs fp32) for a quantised model to be kept.
AGREEMENT_THRESHOLD = 0.995
#: Calibration tiles used at most; more are subsampled evenly over the images.
MAX_CALIBRATION_TILES = 32
#: MinMax calibration folds the ranges every this many tiles (bounds its memory).
_CALIB_CHUNK = 4
#: Bits of the int8 weights by the provider a file is meant for (7: cannot saturate, above).
WEIGHT_BITS = {"cpu": 7, "openvino": 8}


# ---------------------------------------------------------------------------
# fp16


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of an fp32 unet-edge graph, float32 inputs/outputs, precision "fp16".

    Uses ``onnxruntime.transformers.float16`` (the same conversion as
    onnxconverter-common). The metadata is restamped with precision ``fp16``.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    info = metadata.read(model)
    if info.precision is not Precision.FP32:
        raise ModelError(
            f"the model is already {info.precision.value}; convert the fp32 model to fp16"
        )
    out = convert_float_to_float16(model, keep_io_types=True)
    # The converter appends the input/output Casts at the end of the node list;
    # onnxruntime does not mind, but onnx.checker (and other runtimes) want
    # the nodes in topological order.
    _topological_sort(out.graph)
    metadata.write(out, info.with_precision(Precision.FP16))
    return out


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ModelError(
                f"the graph has a cycle or a dangling input near node {rest[0].name!r}"
            )
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


# ---------------------------------------------------------------------------
# int8 calibration data


def calibration_tiles(
    info: ModelInfo,
    frames: Sequence[np.ndarray],
    tile: int | tuple[int, int] | None = None,
    max_tiles: int = MAX_CALIBRATION_TILES,
    max_tile: int = DEFAULT_MAX_TILE,
) -> list[np.ndarray]:
    """Normalised float32 (1, C, th, tw) tiles cut from ``frames`` as the runtime cuts them.

    Each frame (or each frame of a stack, by :func:`unet_edge.processing.as_frames`)
    is normalised per the model's metadata with its own statistics, planned
    with ``tile`` (``None``: :func:`unet_edge.tiling.choose_tile`, as
    :class:`Segmenter` does), and cut by the kernel
    (:class:`unet_edge.tiling.TileRun`). At most ``max_tiles`` are returned,
    spread evenly over all tiles of all frames.
    """
    if max_tiles < 1:
        raise InputError(f"max_tiles must be >= 1, got {max_tiles}")
    found: list[np.ndarray] = []
    for image in frames:
        for frame, scaling in kernel.prepare_frames(image, info)[0]:
            shape = (frame.shape[0], frame.shape[1])
            t = tile if tile is not None else tiling.choose_tile(shape, info.geometry, max_tile)
            run = kernel.for_frame(info, frame, tiling.plan(shape, info.geometry, t), scaling)
            found.extend(batch for _, batch in run.batches(reuse=False))
    if not found:
        raise InputError("no calibration images were given")
    keep = np.unique(np.linspace(0, len(found) - 1, min(max_tiles, len(found))).round().astype(int))
    return [found[i] for i in keep]


class TileReader(CalibrationDataReader):
    """Feeds calibration tiles to onnxruntime's calibrator, one (1, C, th, tw) tile per call."""

    def __init__(self, input_name: str, tiles: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self.tiles = list(tiles)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.tiles):
            return None
        self._next += 1
        return {self.input_name: self.tiles[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.tiles)


# ---------------------------------------------------------------------------
# Agreement


def agreement(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    frames: Sequence[np.ndarray],
    tile: int | tuple[int, int] | None = None,
    provider: str = "cpu",
) -> dict[str, Any]:
    """Compare two models' outputs on ``frames`` (same tiling).

    The reference runs on ONNX Runtime's CPU provider (fp32), the candidate
    on ``provider`` (``"cpu"`` or ``"openvino"``).

    Returns ``pixel_agreement`` (share of all pixels with the same class),
    ``per_image`` agreements, ``min_image_agreement``, ``max_abs_prob_diff``,
    ``pixels``, ``provider``, and the CPU it was measured on (``cpu``,
    ``cpu_int8_saturates``: :func:`unet_edge.cpu.int8_saturates`).
    """
    from .runtime import Segmenter

    per: list[float] = []
    same = total = 0
    worst = 0.0
    with Segmenter(reference, "cpu", tile) as ref, _candidate(candidate, provider, tile) as cand:
        used = cand.provider
        for f in frames:
            a, b = ref.predict(f), cand.predict(f)
            ma, mb = processing.to_mask(a), processing.to_mask(b)
            s = int(np.count_nonzero(ma == mb))
            same += s
            total += ma.size
            per.append(s / ma.size)
            worst = max(worst, float(np.max(np.abs(a - b))))
    return {
        "pixel_agreement": same / total,
        "min_image_agreement": min(per),
        "per_image": per,
        "max_abs_prob_diff": worst,
        "pixels": total,
        "provider": used,
        "cpu": cpu.name(),
        "cpu_int8_saturates": cpu.int8_saturates(),
    }


def _candidate(
    model: str | os.PathLike[str], provider: str, tile: int | tuple[int, int] | None
) -> Segmenter:
    """A Segmenter on the file :func:`agreement` measures, without its Int8Warning (which
    doubts the agreement the file records: the one being measured)."""
    from .runtime import Segmenter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8Warning)
        return Segmenter(model, provider, tile)


# ---------------------------------------------------------------------------
# int8


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


def _float_nodes(model_path: Path) -> list[str]:
    """Nodes kept in float: the softmax and the 1x1 head convolution that makes the logits.

    The class of a pixel is the sign of a logit difference; quantising the
    logits themselves to 256 levels flipped ~0.2% more pixels on ISBI slices
    20-24 (99.38% -> 99.59% agreement with the head in float) for ~0.1% of
    the FLOPs.
    """
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    producer = {o: n for n in m.graph.node for o in n.output}
    names = []
    for n in m.graph.node:
        if n.op_type == "Softmax":
            names.append(n.name)
            head = producer.get(n.input[0])
            if head is not None and head.op_type == "Conv":
                names.append(head.name)
    return names


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
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
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
        nodes_to_exclude=_float_nodes(pre),
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


def _checked_agreement(
    src: Path,
    q: Path,
    frames: Sequence[np.ndarray],
    tile: int | tuple[int, int] | None,
    threshold: float,
    out: Path,
    provider: str = "cpu",
) -> dict[str, Any]:
    """:func:`agreement` of ``q`` with ``src``, with ``threshold``; raises if below it."""
    agree = agreement(src, q, frames, tile, provider)
    agree["threshold"] = threshold
    if not agree["pixel_agreement"] >= threshold:
        raise ExportError(
            f"the int8 model's masks ({agree['provider']}) agree with fp32 on "
            f"{100 * agree['pixel_agreement']:.3f}% "
            f"of the calibration pixels, below the threshold {100 * threshold:.2f}%; "
            f"{out} was not written. Calibrate on more representative images or keep fp32"
        )
    return agree


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
    and to check the result. ``output`` is written only if the int8 masks
    agree with the fp32 masks on at least ``threshold`` of all pixels, with
    the int8 file run on ``provider`` (``"cpu"``: ONNX Runtime, or
    ``"openvino"``: OpenVINO's int8 kernels); the file is meant for that
    provider, and its metadata says so. ``weight_bits``: 7 or 8 (default
    :data:`WEIGHT_BITS`: 7 for ``cpu``, 8 for ``openvino``; see above).

    Raises:
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
        ModelError: ``model`` is not an fp32 unet-edge graph.
        ExportError: the agreement is below ``threshold`` (nothing written).
    """
    t0 = time.perf_counter()
    src, out = Path(model), Path(output)
    info = _fp32_source(src, out, threshold, overwrite)
    bits = _weight_bits(weight_bits, provider)
    paths, frames = _calibration_images(calibrate)
    tiles = calibration_tiles(info, frames, tile, max_tiles)
    import onnx

    with tempfile.TemporaryDirectory(prefix="unet-edge-quant-") as tmpd:
        pre, q = Path(tmpd) / "pre.onnx", Path(tmpd) / "int8.onnx"
        _quantize_static(src, pre, q, TileReader(info.input_name, tiles), bits)
        proto = onnx.load(str(q))
        prov = _int8_provenance(info, src, paths, len(frames), tiles, bits)
        metadata.write(proto, _replace_info(info, prov, {}))
        onnx.save_model(proto, str(q), save_as_external_data=False)
        agree = _checked_agreement(src, q, frames, tile, threshold, out, provider)
        summary = {k: v for k, v in agree.items() if k != "per_image"}
        metadata.write(proto, _replace_info(info, prov, {**info.metrics, "int8_vs_fp32": summary}))
        with io.atomic_path(out) as tmp:
            onnx.save_model(proto, str(tmp), save_as_external_data=False)
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
    from dataclasses import replace

    return replace(
        info.with_precision(Precision.INT8),
        provenance=provenance,
        metrics=metrics or dict(info.metrics),
    )
