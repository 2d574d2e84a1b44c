"""Draw docs/augmentation.png: an ISBI tile, its labels and weight map, and elastic deformations.

    python benchmarks/augmentation_figure.py [DATA_DIR] [OUTPUT_PNG]

Re-runnable and seeded; needs matplotlib and the ISBI data in ../shared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from unet_edge.config import Normalization
from unet_edge.geometry import Geometry
from unet_edge.training.augment import AugmentConfig, elastic_field
from unet_edge.training.data import SegmentationData

ROOT = Path(__file__).resolve().parents[1]
TILE = 444  # legal for depth 4: output 260, halo 92


def main() -> None:
    data_dir = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/isbi2012/train"
    )
    output = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "augmentation.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    data = SegmentationData.from_folder(data_dir, names=["00"])
    geo, identity = Geometry(depth=4), Normalization()
    halo, out = geo.halo, geo.output_size(TILE)
    origin = (0, 126)  # top row of the image: the tile's top is mirrored
    plain = data.sample(np.random.default_rng(0), geo, TILE, identity, None, origin=origin)
    elastic_only = AugmentConfig(flip=False, rotate90=False, gamma=0, contrast=0, brightness=0)

    fig, axes = plt.subplots(2, 4, figsize=(15, 8.6))
    centre = slice(halo, halo + out)
    axes[0, 0].imshow(plain.image[0], cmap="gray")
    axes[0, 0].add_patch(
        plt.Rectangle((halo, halo), out, out, fill=False, edgecolor="yellow", linewidth=1.5)
    )
    axes[0, 0].set_title(
        f"input tile {TILE} px, mirrored at the\nimage border; loss on the {out} px box"
    )
    axes[0, 1].imshow(plain.labels, cmap="gray")
    axes[0, 1].set_title("labels: cell (white), membrane (black)")
    im = axes[0, 2].imshow(plain.weights, cmap="magma")
    fig.colorbar(im, ax=axes[0, 2], fraction=0.046)
    axes[0, 2].set_title("weight map w(x): class balance +\n10 exp(-(d1+d2)^2 / 50)")
    rng = np.random.default_rng(3)
    dy, dx = elastic_field(rng, (TILE, TILE), sigma=10.0)
    step = 24
    yy, xx = np.mgrid[0:TILE:step, 0:TILE:step]
    axes[0, 3].quiver(
        xx,
        yy,
        dx[::step, ::step],
        dy[::step, ::step],
        angles="xy",
        scale_units="xy",
        scale=0.5,
        color="tab:blue",
    )
    axes[0, 3].set_xlim(0, TILE)
    axes[0, 3].set_ylim(TILE, 0)
    axes[0, 3].set_aspect("equal")
    axes[0, 3].set_title("displacements (x2): 3x3 grid,\nstd 10 px, bicubic per pixel")
    for k, ax in enumerate(axes[1]):
        s = data.sample(
            np.random.default_rng(100 + k), geo, TILE, identity, elastic_only, origin=origin
        )
        ax.imshow(s.image[0, centre, centre], cmap="gray")
        ax.contour(s.labels, levels=[0.5], colors="tab:red", linewidths=0.6)
        ax.set_title(f"elastic deformation, seed {100 + k}\n(red: warped label borders)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("ISBI 2012 slice 00: training tile, labels, loss weights, elastic deformations")
    fig.tight_layout(h_pad=2.5)
    fig.savefig(output, dpi=64)
    plt.close(fig)
    # A 256-colour palette keeps the README figure small with no visible loss.
    from PIL import Image

    with Image.open(output) as img:
        img.convert("RGB").quantize(256).save(output, optimize=True)


if __name__ == "__main__":
    main()
