"""Data augmentation as in the U-Net paper: elastic deformation, plus the usual.

Elastic deformation (Ronneberger et al. 2015, section 3.1): random
displacement vectors on a coarse 3x3 grid, drawn from a Gaussian with 10 px
standard deviation, interpolated bicubically to a per-pixel field. The grid's
corner points sit on the corner pixels of the tile. Image, labels and loss
weights are resampled through the *same* field with ``cv2.remap`` (image and
weights bilinear, labels nearest neighbour), and samples falling outside the
source image are mirrored with ``cv2.BORDER_REFLECT``, the project's single
border convention ("symmetric", edge pixel repeated), so a tile near the
border looks exactly like the mirror-padded tiles seen at inference.

Also: random shifts (folded into the same field), flips, 90-degree rotations
and gray-value changes (gamma, contrast, brightness). Everything draws from a
``numpy.random.Generator``; no global random state. Numpy + OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, InputError

BORDER = cv2.BORDER_REFLECT


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentations; ``AugmentConfig.none()`` switches all off."""

    elastic_sigma: float = 10.0  # std (px) of the displacements on the coarse grid
    elastic_grid: int = 3  # coarse grid points per axis
    shift: float = 0.0  # max |shift| (px), uniform, same for the whole tile
    flip: bool = True
    rotate90: bool = True
    gamma: float = 0.2  # gamma = exp(U(-g, g)) on [0, 1]-scaled intensities
    contrast: float = 0.1  # factor 1 + U(-c, c) around 0.5
    brightness: float = 0.05  # offset U(-b, b)
    # Camera exposure, applied to the *raw* values before the image's percentile scaling is
    # measured again (what a brighter/darker acquisition looks like after normalisation):
    # raw' = clip(g * raw + o * full_scale), g ~ U(1 - gain, 1 + gain), o ~ U(-offset, offset),
    # with probability `exposure`.
    exposure: float = 0.5
    gain: float = 0.5
    offset: float = 0.15

    def __post_init__(self) -> None:
        if self.elastic_grid < 2:
            raise ConfigError(f"elastic_grid must be >= 2, got {self.elastic_grid}")
        if not 0.0 <= self.exposure <= 1.0 or not 0.0 <= self.gain < 1.0:
            raise ConfigError(
                f"exposure must be a probability and gain in [0, 1), got {self.exposure}, "
                f"{self.gain}"
            )
        for name in ("elastic_sigma", "shift", "gamma", "contrast", "brightness", "offset"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(0.0, 3, 0.0, False, False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _keys(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (bicubic, a = -0.5) at offsets ``t``."""
    t = np.abs(t)
    return np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )


@lru_cache(maxsize=32)
def cubic_matrix(points: int, size: int) -> np.ndarray:
    """Bicubic interpolation weights (size, points), float64, corner-aligned.

    Row ``i`` interpolates ``points`` samples placed at ``linspace(0, size - 1,
    points)`` at pixel ``i``; edge samples are replicated. Rows sum to 1, so a
    constant coarse field stays constant.
    """
    pos = np.linspace(0, points - 1, size) if size > 1 else np.zeros(1)
    base = np.floor(pos).astype(int)
    m = np.zeros((size, points))
    for tap in range(-1, 3):
        j = base + tap
        w = _keys(pos - j)
        np.add.at(m, (np.arange(size), np.clip(j, 0, points - 1)), w)
    m.setflags(write=False)
    return m


def upsample_field(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic, corner-aligned upsampling of a coarse (g, g) field to ``shape``: float32 (H, W)."""
    coarse = np.asarray(coarse, np.float64)
    my = cubic_matrix(coarse.shape[0], shape[0])
    mx = cubic_matrix(coarse.shape[1], shape[1])
    return (my @ coarse @ mx.T).astype(np.float32)


def elastic_field(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float = 10.0, grid: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth displacement ``(dy, dx)``, each float32 (H, W), in pixels."""
    if sigma == 0:
        z = np.zeros(shape, np.float32)
        return z, z.copy()
    dy = upsample_field(rng.normal(0.0, sigma, (grid, grid)), shape)
    dx = upsample_field(rng.normal(0.0, sigma, (grid, grid)), shape)
    return dy, dx


def sampling_maps(
    origin: tuple[float, float], dy: np.ndarray, dx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates for ``cv2.remap``: output pixel (r, c) reads source
    ``(origin_y + r + dy[r, c], origin_x + c + dx[r, c])``. Returns (map_x, map_y) float32."""
    h, w = dy.shape
    rows = np.arange(h, dtype=np.float32)[:, None] + np.float32(origin[0])
    cols = np.arange(w, dtype=np.float32)[None, :] + np.float32(origin[1])
    return (cols + dx).astype(np.float32), (rows + dy).astype(np.float32)


def remap(src: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, nearest: bool) -> np.ndarray:
    """Resample ``src`` (H, W) or (H, W, C) at the maps, mirroring outside (BORDER_REFLECT)."""
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(src, map_x, map_y, interp, borderMode=BORDER)


def gray_values(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random gamma, contrast and brightness on an image scaled to about [0, 1]; float32.

    Values above 1 (percentile scaling) keep their order under the gamma.
    """
    out = image
    if cfg.gamma > 0:
        # scaled images may exceed 1 (percentile scaling is not clipped): only negatives go
        out = np.maximum(out, 0.0) ** np.float32(np.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
    if cfg.contrast > 0 or cfg.brightness > 0:
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        b = rng.uniform(-cfg.brightness, cfg.brightness)
        out = (out - 0.5) * np.float32(c) + np.float32(0.5 + b)
    return np.asarray(out, np.float32)


def exposure(
    image: np.ndarray,
    raw_range: tuple[Any, Any, float],
    rng: np.random.Generator,
    cfg: AugmentConfig,
) -> np.ndarray:
    """A random camera gain and offset, seen through per-image percentile scaling.

    ``image`` (H, W, C) is scaled as ``(raw - lo) / (hi - lo)`` with
    ``raw_range`` = (lo, hi, full scale of the dtype); lo and hi are numbers
    or one per channel. The raw values get ``g * raw + o * full``, clipped to
    ``[0, full]`` as a camera saturates; since that map is monotone, the
    image's percentiles move with it, so the rescaled image is
    ``(raw' - lo') / (hi' - lo')`` with ``lo', hi'`` the mapped percentiles.
    """
    if cfg.exposure <= 0 or rng.random() >= cfg.exposure:
        return image
    lo, hi = (np.asarray(v, np.float64) for v in raw_range[:2])
    full = raw_range[2]
    g = np.float32(rng.uniform(1.0 - cfg.gain, 1.0 + cfg.gain))
    o = np.float32(rng.uniform(-cfg.offset, cfg.offset) * full)

    def camera(v: np.ndarray) -> np.ndarray:
        return np.asarray(np.clip(np.float32(g) * v + o, 0.0, np.float32(full)))

    raw = lo.astype(np.float32) + image * (hi - lo).astype(np.float32)
    lo2 = camera(lo.astype(np.float32)).astype(np.float64)
    hi2 = camera(hi.astype(np.float32)).astype(np.float64)
    span = np.maximum(hi2 - lo2, 1e-6).astype(np.float32)
    return ((camera(raw) - lo2.astype(np.float32)) / span).astype(np.float32)


def flip_rotate(
    arrays: list[np.ndarray], rng: np.random.Generator, cfg: AugmentConfig
) -> list[np.ndarray]:
    """Apply one random flip / 90-degree rotation to every (H, W[, C]) array alike.

    Arrays must be square and share their centre (a tile and its central
    output region), so the rotation about each centre is the same transform.
    """
    k = int(rng.integers(4)) if cfg.rotate90 else 0
    flip = bool(rng.integers(2)) if cfg.flip else False
    out = []
    for a in arrays:
        if a.shape[0] != a.shape[1] and k % 2:
            raise InputError(f"90-degree rotation needs square tiles, got {a.shape[:2]}")
        b = np.rot90(a, k, axes=(0, 1))
        if flip:
            b = b[:, ::-1]
        out.append(np.ascontiguousarray(b))
    return out
