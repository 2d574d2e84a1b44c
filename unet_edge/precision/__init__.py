"""Reduced-precision graphs: fp16 for GPUs, static int8 (QDQ) calibrated on real images.

Torch-free: quantisation works on an exported fp32 graph and runs wherever
the runtime runs. One module per step:

- :mod:`~unet_edge.precision.fp16` (:func:`to_fp16`): weights and
  activations in half precision with float32 inputs and outputs
  (``keep_io_types``), so the runtime feeds the same float32 tiles. Meant for
  CUDA and TensorRT; ONNX Runtime's CPU provider runs such a graph only
  through slow fallback kernels and casts, so on a CPU use the fp32 or int8
  graph.
- :mod:`~unet_edge.precision.calibrate` (:func:`calibration_tiles`,
  :class:`TileReader`): real, normalised tiles cut from the calibration
  images with the model's own tiling (mirror padding included), so the
  activation ranges are those the runtime will see.
- :mod:`~unet_edge.precision.gate` (:func:`agreement`): the masks of the
  int8 graph against the fp32 graph's, on the provider that will run the file.
- :mod:`~unet_edge.precision.int8` (:func:`quantize`): ONNX Runtime's static
  quantisation in QDQ format, uint8 activations and per-channel int8 weights
  (on AVX-512 VNNI CPUs this pair is the fast one; int8/int8 is not). The 1x1
  head convolution (the logits) and the softmax stay in float, so the output
  is still a float32 probability; those nodes are found by identity (nodes
  without a name, or sharing one, are named first). The quantised graph is
  kept only if it holds a quantised operator and its masks agree with the
  fp32 model's on the calibration images: at least
  :data:`AGREEMENT_THRESHOLD` of all pixels must get the same class;
  otherwise nothing is written and :class:`~unet_edge.errors.ExportError`
  says why. The check runs on the provider that will run the file
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

from .calibrate import MAX_CALIBRATION_TILES, TileReader, calibration_tiles
from .fp16 import to_fp16
from .gate import AGREEMENT_THRESHOLD, agreement
from .int8 import WEIGHT_BITS, QuantizeReport, quantize, quantized_operators

__all__ = [
    "AGREEMENT_THRESHOLD",
    "MAX_CALIBRATION_TILES",
    "WEIGHT_BITS",
    "QuantizeReport",
    "TileReader",
    "agreement",
    "calibration_tiles",
    "quantize",
    "quantized_operators",
    "to_fp16",
]
