"""Checks made once when a model is loaded: does its graph do what its metadata says, and
will this CPU run its int8 weights as they were measured.

:func:`check_graph` runs the graph of a unet-edge file once on the smallest
legal tile and refuses it (:class:`~unet_edge.errors.ModelError`) when the
output's shape or values contradict the metadata. :func:`int8_note` says when
an int8 file may agree with fp32 on fewer pixels on this CPU than its
metadata records; the Segmenter adds it to its notes and warns with
:class:`Int8Warning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import cpu
from ..capture import first_line
from ..config import Precision
from ..engines.options import Provider
from ..engines.select import open_session
from ..engines.session import SessionInfo, run_quietly
from ..errors import ModelError
from ..geometry import Geometry, TileGeometry
from ..metadata import ModelInfo

if TYPE_CHECKING:
    from ..runtime import Segmenter

__all__ = [
    "PROBABILITY_TOLERANCE",
    "Int8Warning",
    "check_graph",
    "check_session",
    "int8_note",
    "output_problem",
]

#: How far a probability may stray from [0, 1], and a pixel's sum from 1, per precision.
PROBABILITY_TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 5e-2}


class Int8Warning(RuntimeWarning):
    """An int8 file whose masks this CPU may change (the text is :func:`int8_note`'s)."""


def check_graph(seg: Segmenter) -> None:
    """Run the graph once on the smallest legal tile; refuse it if it disagrees with its metadata.

    See :func:`check_session`. A TensorRT session is not used for it (a new
    shape builds an engine): a CPU one is. Probed graphs are not checked here:
    their geometry and output kind were measured by running the graph
    (:mod:`unet_edge.models.probe`); bioimage.io packages were checked when
    they were opened (:mod:`unet_edge.models.package_check`, which calls
    :func:`check_session` with the package's layout).
    """
    if seg.source.origin != "unet-edge":
        return
    s = seg._live()
    if s.provider is Provider.TENSORRT:
        s = open_session(seg.source.onnx, "cpu")
    check_session(s, seg.info, seg.geometry, str(seg.model_path))


def check_session(
    s: SessionInfo,
    info: ModelInfo,
    g: Geometry | TileGeometry,
    name: str,
    pads: tuple[int, int] = (0, 0),
    fix: str = "re-export the model",
    described: str | None = None,
) -> None:
    """Run session ``s`` once on the smallest legal tile of ``g``; refuse (a ModelError naming
    ``name``) a graph that disagrees with its description ``info``.

    A (1, C, n, n + alignment) tile (two legal sizes, so a transposed output
    shows) of fixed pseudo-random values must give (1, K, out(n), out(n +
    alignment)) probabilities: finite, within [0, 1] and summing to 1 per pixel.
    Catches a halo or depth that the graph does not have, a wrong class
    count, a 1-channel head, logits instead of probabilities. ``pads``: rows
    and columns of zeros a bioimage.io package's graph adds before and after
    its network's output (its layout): they must be zero, and the rest
    probabilities, so a layout that lies about the graph is caught;
    ``described`` says in messages what the description is (default: ``g``).
    """
    about = described or g.describe()
    n = (g.min_input, g.min_input + g.alignment)
    x = np.random.default_rng(0).standard_normal((1, info.channels, *n)).astype(np.float32)
    want = (1, info.classes, *(g.network_output_size(t) for t in n))
    try:
        out = run_quietly(s, info.input_name, info.output_name, x)
    except Exception as e:
        raise ModelError(
            f"{name}: the graph fails on the smallest legal tile {x.shape} that its "
            f"metadata ({about}) gives: {first_line(str(e)) or type(e).__name__}; {fix}"
        ) from None
    tol = PROBABILITY_TOLERANCE[info.precision.value]
    if pads != (0, 0) and out.shape == want:  # the zero borders first, then the rest
        inner = out[:, :, pads[0] : n[0] - pads[1], pads[0] : n[1] - pads[1]]
        size = (1, info.classes, n[0] - sum(pads), n[1] - sum(pads))
        problem = _bands_problem(out, pads) or output_problem(inner, size, tol)
    else:
        problem = output_problem(out, want, tol)
    if problem:
        raise ModelError(
            f"{name}: its graph does not match its metadata: on a tile of shape "
            f"{x.shape}, {problem} (metadata: {info.classes} classes, {about}); {fix}"
        )


def _bands_problem(out: np.ndarray, pads: tuple[int, int]) -> str | None:
    """Whether (N, K, H, W) ``out`` is zero exactly in ``pads`` (before, after) rows and
    columns at its borders, as a package's layout says; None when it is."""
    zero = np.all(out == 0, axis=(0, 1))  # (H, W): every class zero there

    def run_of(flags: np.ndarray) -> int:  # leading all-zero lines
        return int(np.argmin(flags)) if not flags.all() else len(flags)

    rows, cols = zero.all(axis=1), zero.all(axis=0)
    found = (run_of(rows), run_of(rows[::-1]), run_of(cols), run_of(cols[::-1]))
    if found == (pads[0], pads[1], pads[0], pads[1]):
        return None
    return (
        f"its output's zero border is {found[0]}/{found[2]} px before and {found[1]}/{found[3]} "
        f"px after (rows/columns), where its layout says {pads[0]} and {pads[1]}"
    )


def output_problem(out: np.ndarray, want: tuple[int, ...], tol: float) -> str | None:
    """What is wrong with a probe output of shape ``want`` expected to hold probabilities.

    ``out`` is the graph's (N, K, H, W) output, any float dtype; None when it
    has shape ``want``, is finite, and its values lie in [0, 1] and sum to 1
    over the class axis (1) within ``tol``.
    """
    if out.shape != want:
        why = []
        if out.ndim != 4:
            why.append(f"{out.ndim} axes instead of 4 (N, classes, H, W)")
        else:
            if out.shape[1] != want[1]:
                why.append(f"{out.shape[1]} classes instead of {want[1]}")
            if out.shape[2:] != want[2:]:
                why.append("another output size: the graph's halo or depth is not the stated one")
        return f"its output has shape {out.shape}, expected {want} ({'; '.join(why)})"
    if not np.isfinite(out).all():
        return f"its output holds {int(np.count_nonzero(~np.isfinite(out)))} non-finite values"
    lo, hi = float(out.min()), float(out.max())
    worst = float(np.abs(out.sum(axis=1) - 1).max())
    if lo < -tol or hi > 1 + tol or worst > tol:
        return (
            f"probabilities expected (values in 0..1 summing to 1 per pixel), came values "
            f"{lo:.3g}..{hi:.3g} whose per-pixel sums are off by up to {worst:.3g}"
        )
    return None


def int8_note(info: ModelInfo, provider: str) -> str | None:
    """Why an int8 file may agree less with fp32 on this CPU than its metadata says, or None.

    That is the case for a file with 8-bit weights run on onnxruntime's CPU
    provider on an x86 CPU whose int8 kernels saturate
    (:func:`unet_edge.cpu.int8_saturates`), unless its agreement was measured
    on such a CPU with onnxruntime. Files from before ``weight_bits`` was
    recorded had 8-bit weights.
    """
    if info.precision is not Precision.INT8 or provider != "cpu" or not cpu.int8_saturates():
        return None
    q = info.provenance.get("quantization")
    bits = q.get("weight_bits", 8) if isinstance(q, dict) else 8
    measured = info.metrics.get("int8_vs_fp32")
    measured = measured if isinstance(measured, dict) else {}
    if bits != 8 or (measured.get("provider") == "cpu" and measured.get("cpu_int8_saturates")):
        return None
    return (
        f"int8: this CPU ({cpu.name()}) has no VNNI, so onnxruntime's int8 kernels saturate "
        f"with this file's 8-bit weights, and its masks can agree with fp32 on fewer pixels "
        f"than {_recorded_agreement(measured)}; run it on the openvino provider, or "
        "quantise the fp32 model again for the cpu provider (7-bit weights)"
    )


def _recorded_agreement(measured: dict[str, Any]) -> str:
    """The agreement an int8 file's metadata records (``int8_vs_fp32``), as the end of a
    sentence: ``"the 99.62% measured with cpu on <CPU>"``, or what it is compared with when
    no number is recorded (the provider and CPU of a measurement matter only with its number)."""
    agree = measured.get("pixel_agreement")
    if isinstance(agree, bool) or not isinstance(agree, (int, float)):
        return "on a CPU with VNNI (the file records no measured agreement)"
    provider = measured.get("provider")
    where = _printable(provider) if provider else "an unknown provider"
    if measured.get("cpu"):
        where += f" on {_printable(measured['cpu'])}"
    return f"the {100 * agree:.2f}% measured with {where}"


def _printable(value: object, limit: int = 100) -> str:
    """``value`` as text without control characters, at most ``limit`` long (from metadata)."""
    return "".join(c for c in str(value) if c.isprintable())[:limit]
