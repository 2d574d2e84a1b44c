"""Draw docs/assets/tiling.png: how the shipped model tiles the ISBI sample, from the real plan.

    python docs/tiling_figure.py

The sample (512 x 512) mirrored by the halo (92 px), with a 444-px tile plan: each tile's
input window (thin) and the part of the image it writes (filled), so the halo overlap and
the stride (a multiple of 16, not the 260-px output) are visible. Coordinates come from
``unet_edge.tiling.plan``; nothing is drawn by hand.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from unet_edge import metadata, tiling
from unet_edge.bench import sample_path
from unet_edge.runtime import default_model_path

OUT = Path(__file__).resolve().parent / "assets" / "tiling.png"
COLOURS = [(230, 120, 40), (40, 160, 230), (60, 190, 90), (200, 80, 200)]  # BGR


def main() -> None:
    """Plan 444-px tiles over the mirrored sample and draw windows and owned regions."""
    geometry = metadata.read(default_model_path()).geometry
    image = cv2.imread(str(sample_path()), cv2.IMREAD_GRAYSCALE)
    p = tiling.plan(image.shape, geometry, 444)
    h = p.halo
    padded = cv2.copyMakeBorder(image, h, h, h, h, cv2.BORDER_REFLECT)
    canvas = cv2.cvtColor(padded // 2 + 64, cv2.COLOR_GRAY2BGR)
    canvas[h : h + image.shape[0], h : h + image.shape[1]] = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    fill = canvas.copy()
    for t in p.tiles():
        colour = COLOURS[t.index % len(COLOURS)]
        (y0, y1), (x0, x1) = t.out_y, t.out_x
        cv2.rectangle(fill, (x0 + h, y0 + h), (x1 + h - 1, y1 + h - 1), colour, -1)
    canvas = cv2.addWeighted(fill, 0.35, canvas, 0.65, 0)
    for t in p.tiles():
        colour = COLOURS[t.index % len(COLOURS)]
        th, tw = p.tile_shape
        shift = 3 * t.index  # windows overlap exactly: offset the outlines to show each
        top_left = (t.x + shift, t.y + shift)
        cv2.rectangle(canvas, top_left, (t.x + tw - 1 - shift, t.y + th - 1 - shift), colour, 3)
    cv2.rectangle(canvas, (h, h), (h + image.shape[1] - 1, h + image.shape[0] - 1), (255,) * 3, 2)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT), canvas, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {OUT}: {p!r}")


if __name__ == "__main__":
    main()
