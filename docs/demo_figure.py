"""Draw docs/assets/demo_overlay.png: the packaged ISBI sample beside the shipped model's overlay.

    python docs/demo_figure.py            # what `make demo` shows, as one picture for the docs

The overlay is the one `unet-edge run --overlay` writes (``processing.overlay``), so the
picture is the demo's output, not a drawing of it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

import unet_edge
from unet_edge.bench import sample_path

SIDE = 400  # px per half: small enough for the repository, large enough to see membranes
OUT = Path(__file__).resolve().parent / "assets" / "demo_overlay.png"


def main() -> None:
    """Segment the sample with the shipped model and write input | overlay, SIDE px each."""
    sample = sample_path()
    with tempfile.TemporaryDirectory() as tmp, unet_edge.Segmenter() as seg:
        result = unet_edge.segment_file(seg, sample, tmp, overlay=True)
        overlay = cv2.imread(str(result.outputs["overlay"]), cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(cv2.imread(str(sample), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
    gap = np.full((gray.shape[0], 8, 3), 255, np.uint8)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    side = (SIDE, SIDE)
    both = [cv2.resize(a, side, interpolation=cv2.INTER_AREA) for a in (gray, overlay)]
    picture = np.hstack([both[0], gap[:SIDE], both[1]])
    cv2.imwrite(str(OUT), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
