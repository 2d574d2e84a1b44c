"""The agreement gate: an int8 graph's masks against the fp32 graph's, on the same tiles."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import cpu, processing
from ..errors import ExportError
from ..models.check import Int8Warning

if TYPE_CHECKING:
    from ..runtime import Segmenter

__all__ = ["AGREEMENT_THRESHOLD", "agreement", "checked_agreement"]

#: Share of pixels whose class must be unchanged (int8 vs fp32) for a quantised model to be kept.
AGREEMENT_THRESHOLD = 0.995


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
    from ..runtime import Segmenter

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
    from ..runtime import Segmenter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8Warning)
        return Segmenter(model, provider, tile)


def checked_agreement(
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
