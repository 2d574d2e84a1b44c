"""What the probe checks besides measuring: a graph it accepts behaves like a U-Net everywhere.

Measuring on uniform noise finds a geometry for any graph; these checks
refuse the graphs for which that geometry would be wrong on real images
(each a one-line :class:`~unet_edge.errors.ProbeError` naming the model):

- :func:`check_behaviour`: two runs on the same input give the same output
  (no random operators), the output is finite and depends on the input;
- :func:`influence`: how far, and in which direction, a changed input pixel
  changes the output, averaged over the phases of the pooling grid: the
  receptive-field radius, and the shift between input and output (a net
  whose mask lies 3 px off its image is refused, not cropped);
- :func:`check_structure`: on a natural-looking image the output shifts with
  the input by the probed period (not only on noise);
- :func:`check_tiling`: on a second, independent image, the probed geometry
  tiles exactly: tiled == whole image (a fixed-size graph: two tilings of
  shifted crops agree), which refuses a graph that switches on a global
  statistic of its input, whose tiles see other statistics than the whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import tiling
from ..errors import ProbeError
from ..geometry import TileGeometry, round_up_size
from .probe_run import Runner, close, difference, natural, noise

__all__ = ["Influence", "check_behaviour", "check_structure", "check_tiling", "influence"]

#: Tiled vs whole image, relative to the outputs' magnitude: differently sized runs may round
#: differently (~1e-7); a geometry that is wrong, or a global branch, differs by far more.
TILE_TOL = 1e-5
#: Shift between input and output (px) from which a graph is refused.
MAX_SHIFT = 1.5
#: Largest side of the images the checks run the graph on.
MAX_CHECK_SIZE = 1024


def check_behaviour(run: Runner, size: int) -> None:
    """Refuse a graph whose output on a legal ``size`` x ``size`` input is random, not
    finite, or does not depend on the input."""
    x = natural(run.c, size, size, seed=11)
    a, b = run(x), run(x)
    if a is None or b is None:
        raise ProbeError(f"{run.label}: the graph failed on a legal {size}x{size} input")
    if not np.isfinite(a).all():
        raise ProbeError(
            f"{run.label}: the graph's output holds {int(np.count_nonzero(~np.isfinite(a)))} "
            f"non-finite values on a {size}x{size} input with values in "
            f"{float(x.min()):.1f}..{float(x.max()):.1f}; it cannot be tiled into a mask"
        )
    if not close(a, b):
        raise ProbeError(
            f"{run.label}: two runs on the same {size}x{size} input gave outputs differing "
            f"by {difference(a, b):.3g} (relative): the graph is not deterministic (a random "
            "operator such as RandomUniformLike or Dropout in training mode?), so no tile "
            "can be computed twice the same; export it for inference"
        )
    c = run(noise((run.c, size, size), seed=12))
    if c is not None and c.shape == a.shape and close(a, c):
        raise ProbeError(
            f"{run.label}: its output does not depend on its input (two different "
            f"{size}x{size} images gave the same output, {_range(a)}): a constant graph, "
            "not a segmentation network"
        )


def _range(y: np.ndarray) -> str:
    return f"values {float(y.min()):.3g}..{float(y.max()):.3g}"


@dataclass(frozen=True)
class Influence:
    """How a changed input pixel changes the output, in input pixels."""

    radius: int  # farthest output pixel changed
    shift: tuple[float, float]  # mean (row, column) offset of the changed box's centre


def influence(
    run: Runner, size: int, shrink: int, offsets: range | tuple[int, ...], border: int = 0
) -> Influence:
    """Change one input pixel at each of ``offsets`` (diagonally, from the centre of a ``size``
    x ``size`` input) and see which output pixels change (exactly: untouched ones repeat).

    The box of changed pixels is centred on the changed pixel for an unshifted
    network once averaged over a full period of positions (pooling makes each
    position's box lopsided by its phase on the pooling grid). ``border``: the
    output's dead border (which no input changes); changes must stay inside it.
    """
    x = noise((run.c, size, size), seed=2)
    y0 = run.must(x)
    radius, centres, centre = 0, [], size // 2
    for d in offsets:
        p = centre + d
        xp = x.copy()
        xp[:, p, p] += 10.0
        yp = run.must(xp)
        changed = np.argwhere(np.abs(yp - y0).max(axis=0) > 0)
        if changed.size == 0:
            continue
        last = y0.shape[1] - 1
        if changed.min() <= border or changed.max() >= last - border:
            raise ProbeError(
                f"{run.label}: changing one input pixel changes the output {size // 2} px away "
                f"(at the edge of a {size}x{size} probe): not a local convolutional network, so "
                "it cannot be tiled exactly (a global operation such as attention or global "
                "pooling?)"
            )
        lo, hi = changed.min(axis=0) + shrink - p, changed.max(axis=0) + shrink - p
        radius = max(radius, int(np.abs(lo).max()), int(np.abs(hi).max()))
        centres.append((lo + hi) / 2)
    if not centres:
        raise ProbeError(
            f"{run.label}: changing input pixels changes no output pixel: its output does not "
            "depend on its input"
        )
    mean = np.mean(centres, axis=0)
    return Influence(radius, (float(mean[0]), float(mean[1])))


def check_shift(run: Runner, geometry: TileGeometry, radius: int, border: int = 0) -> Influence:
    """Measure the input-output shift over a period of positions; refuse one of 1.5 px or more
    (unshifted U-Nets measure up to ~0.6 px: even kernels, ReLUs that leave a pixel unchanged).

    Periods over 8 are sampled every other position, which can leave half a
    pixel of apparent shift: the bound grows by as much (2 px).
    """
    a, shrink = geometry.alignment, geometry.shrink
    step = 1 if a <= 8 else 2
    n = 2 * (shrink + border + radius) + 3 * a + 8
    size = round_up_size(geometry.min_size, geometry.step, n)
    inf = influence(run, size, shrink, range(0, a, step), border)
    worst = max(abs(inf.shift[0]), abs(inf.shift[1]))
    if worst >= MAX_SHIFT + (step - 1) / 2:
        dy, dx = inf.shift
        raise ProbeError(
            f"{run.label}: its output is shifted against its input by {dy:+.1f} px down and "
            f"{dx:+.1f} px right (a changed input pixel changes the output around another "
            "place, averaged over a pooling period): the mask would not lie on the image. A "
            "segmentation network's output is centred on its input"
        )
    return inf


def check_structure(run: Runner, geometry: TileGeometry) -> None:
    """On a natural-looking image, shifting the input by the period (and by three) shifts
    the output alike, outside the margin where padding reaches."""
    a, m = geometry.alignment, geometry.margin
    n = round_up_size(geometry.min_size, geometry.step, 2 * geometry.halo + 8 * a + 16)
    x = natural(run.c, n + 3 * a, n + 3 * a, seed=21)
    y0 = run.must(x[:, :n, :n])
    out = y0.shape[1]
    for s in (a, 3 * a):
        ys = run(x[:, s : s + n, s : s + n])
        if ys is None or out - s - 2 * m < 1:
            continue
        got, want = ys[:, m : out - s - m, m : out - s - m], y0[:, m + s : out - m, m + s : out - m]
        if not close(got, want, TILE_TOL):
            raise ProbeError(
                f"{run.label}: on a natural-looking {n}x{n} image, shifting the input by {s} px "
                f"does not shift the output alike (they differ by {difference(got, want):.3g}, "
                f"relative), though it does on noise: the graph is not a translation-equivariant "
                "network on real images (does it branch on the image's statistics?)"
            )


def check_tiling(run: Runner, geometry: TileGeometry, classes: int) -> None:
    """On an independent natural-looking image, the kernel's tiles with ``geometry`` give the
    whole image's output (a fixed-size graph: two tilings of shifted crops agree)."""
    g = geometry
    cap = g.legal_inputs(MAX_CHECK_SIZE) or [g.min_input]
    tile = next((t for t in cap if t >= 2 * g.halo + 2 * g.alignment + 64), cap[-1])
    stride = max(g.stride(tile), 1)
    fits = [t for t in cap if g.stride(t) > 0]
    most = g.output_size(fits[-1]) if fits and g.step else 3 * stride + 5  # whole <= the cap
    h, w = min(3 * stride + 5, most), min(2 * stride + 9, most)
    image = natural(run.c, h + g.alignment, w + g.alignment, seed=31)
    tiled = tiling.run_tiled(image[:, :h, :w], tiling.plan((h, w), g, tile), run.predict, classes)
    if g.step:
        ref = tiling.run_tiled(
            image[:, :h, :w], tiling.whole_image_plan((h, w), g), run.predict, classes
        )
        what = "the whole image's"
    else:  # one legal size: compare with the tiles of the image shifted by a period
        s, r = g.alignment, g.halo
        shifted = tiling.plan((h, w), g, tile)
        ref = tiling.run_tiled(image[:, s : s + h, s : s + w], shifted, run.predict, classes)
        tiled, ref = tiled[:, s + r : h - r, s + r : w - r], ref[:, r : h - s - r, r : w - s - r]
        what = f"the tiles of the image shifted by {s} px"
    if tiled.size and not close(tiled, ref, TILE_TOL):
        bad = float(np.mean(np.abs(tiled - ref).max(axis=0) > TILE_TOL * (1 + np.abs(ref).max())))
        raise ProbeError(
            f"{run.label}: the probed geometry ({g.describe()}) does not tile exactly: on a "
            f"natural-looking {h}x{w} image its {tile}x{tile} tiles differ from {what} on "
            f"{100 * bad:.1f}% of the pixels (by up to {difference(tiled, ref):.3g}, relative); "
            "the graph is not a local, translation-equivariant network (does it branch on "
            "the image's statistics?)"
        )
