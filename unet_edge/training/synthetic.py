"""Seeded images of touching fluorescent nuclei with instance ground truth. Torch-free.

:func:`nuclei_image` draws one image like a widefield/confocal fluorescence
nuclear stain (DAPI/Hoechst): bright nuclei on a dark, uneven background, and
its instance labels (0 background, 1..N one id per nucleus). Everything is
drawn from one ``numpy.random.Generator``, so a seed gives the same pair on
every machine. What varies from image to image (the ranges are
:class:`NucleiStyle`'s fields):

- **size and shape**: a typical nucleus diameter per image (8-44 px), each
  nucleus within +-25 % of it; ellipses (axis ratio 1-1.8) whose outline is
  bent by low harmonics (kidney-like, irregular);
- **clusters that touch**: nuclei are laid in chains from cluster seeds, each
  next to the previous at 0.75-1.0 times the sum of their radii, so they
  touch or overlap. Where two overlap, each pixel goes to the nucleus in
  whose outline it lies deeper (a straight-ish shared border, as touching
  nuclei are annotated); a nucleus left with under half its area is dropped;
- **intensity**: per-image brightness (20-3000 photons at the peak), per
  nucleus a log-normal factor (dim beside bright), a flat or domed profile,
  multiplicative chromatin texture, sometimes a darker line where nuclei
  touch;
- **optics**: a fraction of nuclei out of focus (blurred by 2-4 px), the
  whole image blurred by 0.5-2 px;
- **background**: offset, a linear gradient and a smooth blotch field
  (uneven illumination);
- **noise and storage**: Poisson shot noise plus Gaussian read noise, then
  stored as uint8 or uint16 (12- or 16-bit use), at a random exposure.

Labels are uint16 with consecutive ids. :func:`write_folder` writes a
training folder (``image/`` and ``label/``, instance labels as 16-bit TIFF)
that ``unet-edge train --labels instances`` reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .weights import instance_boxes

__all__ = ["NucleiStyle", "nuclei_image", "nuclei_layout", "write_folder"]


@dataclass(frozen=True)
class NucleiStyle:
    """Ranges the generator draws from (each image draws its own values in them)."""

    diameter: tuple[float, float] = (8.0, 44.0)  # typical nucleus diameter (px), log-uniform
    size_jitter: float = 0.25  # each nucleus's diameter within +-this fraction of the typical
    aspect: tuple[float, float] = (1.0, 1.8)  # long / short axis
    wobble: float = 0.08  # amplitude of the outline's 2nd-4th harmonics (fraction of radius)
    coverage: tuple[float, float] = (0.06, 0.45)  # fraction of the image nuclei try to cover
    cluster_size: tuple[int, int] = (1, 9)  # nuclei per cluster chain
    alone: float = 0.35  # probability that a chain is a single nucleus
    touch: tuple[float, float] = (0.75, 1.0)  # centre distance / sum of radii in a chain
    photons: tuple[float, float] = (20.0, 3000.0)  # peak signal, log-uniform
    dim_spread: float = 0.45  # sigma of the log-normal per-nucleus brightness factor
    background: tuple[float, float] = (0.02, 0.4)  # background level / peak signal
    out_of_focus: tuple[float, float] = (0.0, 0.3)  # fraction of nuclei blurred
    blur: tuple[float, float] = (0.5, 2.0)  # whole-image Gaussian sigma (px)
    read_noise: tuple[float, float] = (0.0, 0.04)  # Gaussian read noise / peak signal
    uint16: float = 0.4  # probability of a uint16 image (else uint8)


@dataclass
class _Nucleus:
    cy: float
    cx: float
    a: float  # semi-axes (px)
    b: float
    angle: float
    harmonics: np.ndarray  # (3, 2): amplitude and phase of harmonics 2, 3, 4


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _new_nucleus(
    rng: np.random.Generator, cy: float, cx: float, radius: float, style: NucleiStyle
) -> _Nucleus:
    aspect = rng.uniform(*style.aspect)
    a = radius * math.sqrt(aspect)  # same area as the circle of ``radius``
    harmonics = np.stack([rng.uniform(0, style.wobble, 3), rng.uniform(0, 2 * math.pi, 3)], axis=1)
    return _Nucleus(cy, cx, a, a / aspect, rng.uniform(0, math.pi), harmonics)


def _depth(n: _Nucleus, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Normalised radius of pixels (yy, xx) in ``n``'s outline: < 1 inside, 0 at the centre."""
    dy, dx = yy - n.cy, xx - n.cx
    c, s = math.cos(n.angle), math.sin(n.angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    rho = np.sqrt((u / n.a) ** 2 + (v / n.b) ** 2)
    theta = np.arctan2(v, u)
    bend = 1.0 + sum(amp * np.cos((k + 2) * theta + ph) for k, (amp, ph) in enumerate(n.harmonics))
    return rho / bend


def _place(
    rng: np.random.Generator, shape: tuple[int, int], diameter: float, style: NucleiStyle
) -> list[_Nucleus]:
    """Nuclei in touching chains until about the drawn coverage of the image is reached."""
    h, w = shape
    target = rng.uniform(*style.coverage) * h * w
    nuclei: list[_Nucleus] = []
    area = 0.0
    for _ in range(10_000):
        if area >= target:
            break
        r = diameter / 2 * rng.uniform(1 - style.size_jitter, 1 + style.size_jitter)
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        lo, hi = style.cluster_size
        members = lo if rng.random() < style.alone else int(rng.integers(lo, hi + 1))
        for _ in range(members):
            n = _new_nucleus(rng, cy, cx, r, style)
            if not any(math.hypot(m.cy - cy, m.cx - cx) < 0.6 * (m.b + n.b) for m in nuclei):
                nuclei.append(n)
                area += math.pi * n.a * n.b
            r2 = diameter / 2 * rng.uniform(1 - style.size_jitter, 1 + style.size_jitter)
            step = (r + r2) * rng.uniform(*style.touch)
            direction = rng.uniform(0, 2 * math.pi)
            cy, cx, r = cy + step * math.sin(direction), cx + step * math.cos(direction), r2
    return nuclei


def _rasterise(nuclei: list[_Nucleus], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids (int32, 0 background) and each pixel's depth in its nucleus (float32)."""
    h, w = shape
    ids = np.zeros(shape, np.int32)
    depth = np.full(shape, np.inf, np.float32)
    for k, n in enumerate(nuclei, start=1):
        reach = n.a * (1 + 3 * float(n.harmonics[:, 0].max())) + 1
        y0, y1 = max(0, int(n.cy - reach)), min(h, int(n.cy + reach) + 1)
        x0, x1 = max(0, int(n.cx - reach)), min(w, int(n.cx + reach) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = _depth(n, yy, xx)
        win = (d < 1.0) & (d < depth[y0:y1, x0:x1])
        ids[y0:y1, x0:x1][win] = k
        depth[y0:y1, x0:x1][win] = d[win]
    return ids, depth


def _clean(ids: np.ndarray, nuclei: list[_Nucleus]) -> np.ndarray:
    """Keep each nucleus's largest piece if it is at least half its drawn area; renumber 1..N."""
    out = np.zeros(ids.shape, np.uint16)
    next_id = 1
    for k, (y0, y1, x0, x1) in instance_boxes(ids).items():
        box = (slice(y0, y1), slice(x0, x1))
        mask = (ids[box] == k).astype(np.uint8)
        _, parts, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        biggest = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
        n = nuclei[k - 1]
        # a nucleus cut by the image edge is judged by the part of it inside the image
        drawn = math.pi * n.a * n.b * _inside_fraction(n, ids.shape)
        if st[biggest, cv2.CC_STAT_AREA] < 0.5 * drawn:
            continue
        out[box][parts == biggest] = next_id
        next_id += 1
    return out


def _inside_fraction(n: _Nucleus, shape: tuple[int, int]) -> float:
    """Roughly the fraction of ``n``'s bounding box inside the image."""
    h, w = shape
    y0, y1 = max(0.0, n.cy - n.a), min(float(h), n.cy + n.a)
    x0, x1 = max(0.0, n.cx - n.a), min(float(w), n.cx + n.a)
    if y1 <= y0 or x1 <= x0:
        return 0.0
    return (y1 - y0) * (x1 - x0) / (4 * n.a * n.a)


def nuclei_layout(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    style: NucleiStyle | None = None,
    diameter: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels uint16 (H, W) of touching nuclei, and each pixel's depth in its
    nucleus float32 (H, W) (0 at the centre, 1 at the outline, inf outside).

    ``diameter``: the typical nucleus diameter in px (None: drawn from ``style``).
    """
    style = style or NucleiStyle()
    if len(shape) != 2 or min(shape) < 8:
        raise InputError(f"image shape must be (H, W) with both >= 8 px, got {shape}")
    d = diameter if diameter is not None else _loguniform(rng, *style.diameter)
    nuclei = _place(rng, (int(shape[0]), int(shape[1])), d, style)
    ids, depth = _rasterise(nuclei, (int(shape[0]), int(shape[1])))
    labels = _clean(ids, nuclei)
    depth[labels == 0] = np.inf
    return labels, depth


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise float32 (H, W)."""
    f = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), max(sigma, 0.3))
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def _touching_lines(labels: np.ndarray) -> np.ndarray:
    """Pixels of a nucleus 4-adjacent to another nucleus: bool (H, W)."""
    lab = labels.astype(np.int32)
    line = np.zeros(labels.shape, bool)
    for a, b in ((lab[1:, :], lab[:-1, :]), (lab[:, 1:], lab[:, :-1])):
        diff = (a != b) & (a > 0) & (b > 0)
        if a.shape[0] != lab.shape[0]:
            line[1:, :] |= diff
            line[:-1, :] |= diff
        else:
            line[:, 1:] |= diff
            line[:, :-1] |= diff
    return line


def _signal(
    rng: np.random.Generator, labels: np.ndarray, depth: np.ndarray, style: NucleiStyle
) -> np.ndarray:
    """Noise-free nuclear signal float32 (H, W), peak about 1, before blur and background."""
    n = int(labels.max())
    bright = np.concatenate([[0.0], np.exp(rng.normal(0, style.dim_spread, n))]).astype(np.float32)
    bright /= max(float(np.percentile(bright[1:], 90)) if n else 1.0, 1e-6)
    dome = rng.uniform(0.0, 0.5)  # 0: flat-topped, 0.5: brighter centre
    inside = np.where(np.isfinite(depth), depth, 1.0).astype(np.float32)
    profile = 1.0 - dome * inside**2
    area = max(int(np.count_nonzero(labels)), 1) / max(n, 1)
    diameter = math.sqrt(area * 4 / math.pi)
    texture = 1.0 + rng.uniform(0.0, 0.35) * _smooth_noise(rng, labels.shape, diameter / 8)
    signal = bright[labels] * profile * np.clip(texture, 0.2, None)
    signal[labels == 0] = 0.0
    if rng.random() < 0.5:  # a dimmer line where nuclei touch (often seen, not always)
        signal[_touching_lines(labels)] *= rng.uniform(0.4, 0.9)
    # some nuclei out of focus: their signal blurred on its own layer
    frac = rng.uniform(*style.out_of_focus)
    if n and frac > 0:
        blurred_ids = np.flatnonzero(rng.random(n) < frac) + 1
        away = np.isin(labels, blurred_ids)
        sharp = np.where(away, signal, 0.0).astype(np.float32)
        layer = np.asarray(cv2.GaussianBlur(sharp, (0, 0), rng.uniform(2.0, 4.0)), np.float32)
        signal = (np.where(away, 0.0, signal) + layer).astype(np.float32)
    return signal.astype(np.float32)


def _background(rng: np.random.Generator, shape: tuple[int, int], level: float) -> np.ndarray:
    """Offset + linear gradient + smooth blotches, float32 (H, W), mean about ``level``."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (math.cos(angle) * xx + math.sin(angle) * yy) / max(h, w)
    ramp -= ramp.mean()
    blotch = _smooth_noise(rng, shape, max(h, w) / rng.uniform(3, 10))
    field = 1.0 + rng.uniform(0, 1.2) * ramp + rng.uniform(0, 0.4) * blotch
    return (level * np.clip(field, 0.2, None)).astype(np.float32)


def _store(rng: np.random.Generator, photons: np.ndarray, style: NucleiStyle) -> np.ndarray:
    """Photon counts -> uint8 or uint16 at a random exposure (bright end at 30-100 % of range)."""
    top = float(np.percentile(photons, 99.9)) or 1.0
    if rng.random() < style.uint16:
        full = 4095.0 if rng.random() < 0.5 else 65535.0
        dtype: type[np.integer] = np.uint16
    else:
        full, dtype = 255.0, np.uint8
    scaled = photons * (full * rng.uniform(0.3, 1.0) / top)
    return np.clip(np.rint(scaled), 0, np.iinfo(dtype).max).astype(dtype)


def nuclei_image(
    rng: np.random.Generator | int,
    shape: tuple[int, int] = (256, 256),
    style: NucleiStyle | None = None,
    diameter: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One fluorescence-like image of touching nuclei and its instance labels.

    ``rng``: a Generator or a seed. Returns ``(image, labels)``: image uint8 or
    uint16 (H, W); labels uint16 (H, W), 0 background, nuclei 1..N. See the
    module docstring for what varies.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    style = style or NucleiStyle()
    labels, depth = nuclei_layout(rng, shape, style, diameter)
    peak = _loguniform(rng, *style.photons)
    signal = _signal(rng, labels, depth, style) * peak
    signal = np.asarray(cv2.GaussianBlur(signal, (0, 0), rng.uniform(*style.blur)), np.float32)
    expected = signal + _background(rng, labels.shape, peak * rng.uniform(*style.background))
    photons = rng.poisson(np.maximum(expected, 0.0)).astype(np.float32)
    photons += rng.normal(0, rng.uniform(*style.read_noise) * peak, labels.shape).astype(np.float32)
    return _store(rng, np.maximum(photons, 0.0), style), labels


def write_folder(
    folder: str | Path,
    count: int,
    seed: int,
    shape: tuple[int, int] = (256, 256),
    style: NucleiStyle | None = None,
) -> list[str]:
    """Write ``count`` generated pairs to ``folder/image/NAME.tif`` and ``folder/label/NAME.tif``.

    Images keep their dtype (uint8 or uint16); labels are uint16 instance ids.
    Image ``i`` is drawn from the seed ``(seed, i)``, so a folder's first images
    do not change when ``count`` grows. Returns the names (``nuclei_0000``, ...).
    Writes through :func:`unet_edge.io.write_tiff` (atomically).
    """
    from ..io import write_tiff

    if count < 1:
        raise InputError(f"count must be a positive number of images, got {count}")
    root = Path(folder)
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        image, labels = nuclei_image(np.random.default_rng([seed, i]), shape, style)
        name = f"nuclei_{i:04d}"
        write_tiff(root / "image" / f"{name}.tif", image)
        write_tiff(root / "label" / f"{name}.tif", labels)
        names.append(name)
    return names
