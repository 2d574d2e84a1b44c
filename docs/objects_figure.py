"""The README's picture of objects: the shipped model's instance labels on the ISBI sample.

Left: the sample slice; right: each object (a connected region of the ``cell``
class, ``Segmenter().label``) in its own colour over the slice, its outline
(the polygon of the ROI set and the GeoJSON) in white.

    python docs/objects_figure.py            # writes docs/objects_labels.png
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from unet_edge import Segmenter, io
from unet_edge.objects.outlines import outlines

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "unet_edge" / "data" / "sample_isbi2012.png"


def render(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB (H, 2W, 3) uint8: the image, and the labels in colour over it with outlines."""
    rng = np.random.default_rng(19)
    colours = rng.integers(60, 256, (int(labels.max()) + 1, 3), np.uint8)
    colours[0] = 0
    grey = np.repeat(image[..., None], 3, axis=2)
    tinted = np.where(labels[..., None] > 0, grey // 2 + colours[labels] // 2, grey // 3)
    tinted = np.ascontiguousarray(tinted, np.uint8)
    for o in outlines(labels):  # pixel-corner polygons, drawn onto the pixels they touch
        for ring in (o.exterior, *o.holes):
            cv2.polylines(tinted, [ring.astype(np.int32)], True, (255, 255, 255), 1)
    return np.hstack([grey, tinted])


def main() -> None:
    image = io.read_image(SAMPLE)
    with Segmenter() as seg:
        labels = seg.label(image, min_size=20)
    out = ROOT / "docs" / "objects_labels.png"
    io.write_png(out, render(image, labels))
    print(f"wrote {out}: {int(labels.max())} objects")


if __name__ == "__main__":
    main()
