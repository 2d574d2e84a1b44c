"""Segment at the model's pixel size: the factor, and resampling images and probabilities.

A model trained at 4 nm/px sees a slice imaged at 8 nm/px as cells half their
size and merges them. When both pixel sizes are known (the model's
:attr:`~unet_edge.metadata.ModelInfo.pixel_size`; the input's
:class:`~unet_edge.imagemeta.Calibration`, or one the caller states),
:func:`resolve` gives a :class:`Rescale`; for an image of a given size its
:class:`Grid` resamples the raw image to the model's pixel size (the kernel
then runs on that grid as on any image) and resamples the class
probabilities back to the input's grid, before classes are taken.

How pixels are resampled (separable, per axis, the rule cv2 documents):

- shrinking (more input pixels than model pixels): area averaging, each
  output pixel the mean of the input pixels it covers, fractions weighted
  (``cv2.INTER_AREA``);
- enlarging (or the same size): linear interpolation between the two nearest
  pixel centres, half-pixel centres, edges repeated (``cv2.INTER_LINEAR``).

So an image imaged at 8 nm/px is enlarged linearly for a 4 nm/px model and
its probabilities are area-averaged back; at 2 nm/px it is area-averaged and
its probabilities enlarged linearly. Both run in float32.

Every output pixel is a sum over a fixed list of taps (:func:`taps`),
added in the same order whatever window it is computed in, so a window of
the resampled image (:meth:`Grid.reader`) equals the same rectangle of the
whole resampled image bit for bit, and so do the probabilities resampled
back (:meth:`Grid.run_region`): the windowed and Dask paths equal the
in-memory one exactly.

A factor beyond :data:`MAX_FACTOR` either way is refused
(:class:`~unet_edge.errors.ScaleError`) unless the caller stated the pixel
size: that far apart, the calibration is more likely wrong than the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, ScaleError
from .imagemeta import Calibration
from .metadata import PixelSize
from .tiling import Region, WindowReader

__all__ = ["MAX_FACTOR", "NATIVE", "Grid", "Rescale", "parse", "resolve", "taps"]

#: The largest factor (either way) taken from a file's calibration without being stated.
MAX_FACTOR = 8.0
#: The ``pixel_size`` that turns rescaling off.
NATIVE = "native"
# Factors this close to 1 are 1: a calibration rounded in a file is not a reason to resample.
_SAME = 1e-6

PixelSizeArg = float | str | Calibration | None
"""What callers pass as ``pixel_size``: None (from the file), ``"native"`` (off), a number
of micrometres per pixel, or a :class:`~unet_edge.imagemeta.Calibration`."""


def parse(value: Any) -> float | str | Calibration | None:
    """A ``pixel_size`` argument checked: None, ``"native"``, µm > 0 or a Calibration.

    Text is taken as the command line gives it (``"0.008"``, ``"native"``).
    Raises :class:`~unet_edge.InputError` for anything else.
    """
    if value is None or isinstance(value, Calibration):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == NATIVE:
            return NATIVE
        try:
            value = float(text)
        except ValueError:
            value = text
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and 1e-6 <= value <= 1e6:
        return float(value)
    raise InputError(
        f"pixel size {str(value)[:40]!r} is neither a number of micrometres per pixel "
        f"(1e-6..1e6) nor {NATIVE!r}; give e.g. 0.008 for 8 nm per pixel, or {NATIVE!r} "
        "to segment at the image's own pixel size",
        option="pixel_size",
    )


@dataclass(frozen=True)
class Rescale:
    """How an input is resampled for a model: ``factor`` = input pixel size / model pixel
    size per axis (y, x; 2.0: enlarged twice), both sizes in micrometres, and whether the
    caller stated the input's (``stated``) rather than its file."""

    factor: tuple[float, float]
    input_um: tuple[float, float]
    model_um: tuple[float, float]
    stated: bool = False

    def grid(self, shape: tuple[int, int]) -> Grid:
        """The resampling of an (H, W) image (its model-grid size and taps)."""
        return Grid(self, (int(shape[0]), int(shape[1])))

    def window(self, sides: tuple[int, int]) -> tuple[int, int]:
        """Sides on the input's grid (multiples of 16) of a window of ``sides`` on the model's."""
        fy, fx = self.factor
        return (max(16, round(sides[0] / fy / 16) * 16), max(16, round(sides[1] / fx / 16) * 16))

    def to_dict(self) -> dict[str, Any]:
        """For provenance: the factor, both pixel sizes and the resampling used."""
        shrink = min(self.factor) < 1
        return {
            "factor": [round(f, 6) for f in self.factor],
            "input_pixel_size_um": list(self.input_um),
            "model_pixel_size_um": list(self.model_um),
            "pixel_size_stated": self.stated,
            "image": "area" if shrink else "linear",
            "probabilities": "linear" if shrink else "area",
        }


def resolve(model: PixelSize | None, stated: Any, found: Calibration | None) -> Rescale | None:
    """The rescaling of an input for a model, or None to run it as it is.

    ``model``: the model's pixel size (None: unknown, run as today); ``stated``:
    what the caller passed as ``pixel_size`` (:func:`parse`); ``found``: the
    input file's calibration (None: uncalibrated). None also when the factor
    is 1. Raises :class:`~unet_edge.errors.ScaleError` for a factor from the
    file beyond :data:`MAX_FACTOR` either way, and
    :class:`~unet_edge.InputError` when a pixel size is stated for a model
    that does not know its own.
    """
    stated = parse(stated)
    if stated == NATIVE:
        return None
    if model is None:
        if stated is not None:
            raise InputError(
                f"a pixel size ({_shown(stated)}) was given but the model does not record the "
                "pixel size it was trained at, so there is nothing to rescale to; leave the "
                "pixel size out (or re-export the model with its training pixel size)"
            )
        return None
    given = stated if stated is not None else found
    if given is None:
        return None
    inp = _um(given)
    factor = (inp[0] / model.y, inp[1] / model.x)
    if all(abs(f - 1) < _SAME for f in factor):
        return None
    far = [f for f in factor if not 1 / MAX_FACTOR <= f <= MAX_FACTOR]
    if far and stated is None:
        times = f"{far[0]:.3g}x" if far[0] > 1 else f"1/{1 / far[0]:.3g} of"
        raise ScaleError(
            f"the image's pixel size, {_pair(inp)} µm, is {times} the model's, "
            f"{_pair((model.y, model.x))} µm: more than {MAX_FACTOR:g}x either way, so its "
            "calibration is more likely wrong than the image; state the pixel size to "
            "rescale anyway (or turn rescaling off)",
            option="pixel_size",
        )
    return Rescale(factor, inp, (model.y, model.x), stated is not None)


def _um(value: float | str | Calibration) -> tuple[float, float]:
    """(y, x) micrometres of a stated number or a calibration."""
    if isinstance(value, Calibration):
        um = value.in_micrometres()
        if um is None:
            raise InputError(f"pixel size unit {value.unit!r} cannot be converted to µm")
        return (um.y, um.x)
    return (float(value), float(value))


def _pair(v: tuple[float, float]) -> str:
    return f"{v[0]:.4g}" if v[0] == v[1] else f"{v[0]:.4g} x {v[1]:.4g}"


def _shown(v: Any) -> str:
    return f"{_pair(_um(v))} µm" if v != NATIVE else NATIVE


# -- resampling ----------------------------------------------------------------
Taps = tuple[np.ndarray, np.ndarray]
"""(index int64 (n_out, T), weight float32 (n_out, T)) of one axis."""


def taps(n_in: int, n_out: int) -> Taps:
    """Which input pixels (and weights) make each of ``n_out`` output pixels of an axis.

    Fewer outputs than inputs: area averaging (``cv2.INTER_AREA``); otherwise
    linear interpolation at half-pixel centres, edges repeated
    (``cv2.INTER_LINEAR``). Unused taps have weight 0 and a valid index.
    """
    s = n_in / n_out  # input pixels per output pixel
    i = np.arange(n_out, dtype=np.float64)
    if n_out < n_in:
        lo, hi = i * s, (i + 1) * s
        first = np.floor(lo).astype(np.int64)
        count = int(np.max(np.ceil(hi).astype(np.int64) - first))
        idx = first[:, None] + np.arange(count)[None, :]
        cover = np.minimum(idx + 1, hi[:, None]) - np.maximum(idx, lo[:, None])
        w = np.clip(cover, 0, None) / s
        return np.minimum(idx, n_in - 1), w.astype(np.float32)
    x = np.clip((i + 0.5) * s - 0.5, 0, n_in - 1)
    j0 = np.floor(x).astype(np.int64)
    j1 = np.minimum(j0 + 1, n_in - 1)
    w1 = x - j0
    return np.stack([j0, j1], 1), np.stack([1 - w1, w1], 1).astype(np.float32)


def _apply(a: np.ndarray, t: Taps, axis: int, offset: int = 0) -> np.ndarray:
    """``a`` resampled along ``axis`` by the taps ``t`` (indices minus ``offset``), float32."""
    idx, w = t
    shape = [1] * a.ndim
    shape[axis] = len(idx)
    out: np.ndarray | None = None
    for k in range(idx.shape[1]):  # one tap at a time, in order: the same sum in any window
        term = np.take(a, idx[:, k] - offset, axis=axis).astype(np.float32, copy=False)
        term = term * w[:, k].reshape(shape)
        out = term if out is None else out + term
    assert out is not None
    return out


def _span(t: Taps, start: int, stop: int) -> tuple[int, int]:
    """The input pixels [lo, hi) that outputs [start, stop) of an axis read."""
    idx = t[0][start:stop]
    return int(idx.min()), int(idx.max()) + 1


@dataclass(frozen=True, init=False)
class Grid:
    """One image's resampling: ``shape`` (H, W) on the input's grid, ``model_shape`` on the
    model's, and the taps both ways."""

    rescale: Rescale
    shape: tuple[int, int]
    model_shape: tuple[int, int]

    def __init__(self, rescale: Rescale, shape: tuple[int, int]) -> None:
        model = tuple(max(1, round(n * f)) for n, f in zip(shape, rescale.factor, strict=True))
        object.__setattr__(self, "rescale", rescale)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "model_shape", model)
        object.__setattr__(self, "_to", [taps(n, m) for n, m in zip(shape, model, strict=True)])
        object.__setattr__(self, "_back", [taps(m, n) for n, m in zip(shape, model, strict=True)])

    def reader(self, read: WindowReader) -> WindowReader:
        """A window reader on the model's grid from one (``read``) on the input's: each
        window resampled from the input pixels its taps need, float32 (h, w[, C])."""
        ty, tx = self._to  # type: ignore[attr-defined]

        def resampled(top: int, left: int, height: int, width: int) -> np.ndarray:
            (r0, r1), (c0, c1) = _span(ty, top, top + height), _span(tx, left, left + width)
            raw = read(r0, c0, r1 - r0, c1 - c0)
            rows = _apply(raw, (ty[0][top : top + height], ty[1][top : top + height]), 0, r0)
            return _apply(rows, (tx[0][left : left + width], tx[1][left : left + width]), 1, c0)

        return resampled

    def image(self, frame: np.ndarray) -> np.ndarray:
        """The whole (H, W[, C]) frame on the model's grid, float32."""
        return self.reader(lambda t, lf, h, w: frame[t : t + h, lf : lf + w])(
            0, 0, *self.model_shape
        )

    def model_region(self, region: Region) -> Region:
        """The rectangle of the model's grid whose probabilities ``region`` (input grid) reads."""
        top, left, h, w = region
        by, bx = self._back  # type: ignore[attr-defined]
        (r0, r1), (c0, c1) = _span(by, top, top + h), _span(bx, left, left + w)
        return (r0, c0, r1 - r0, c1 - c0)

    def back(self, probs: np.ndarray, region: Region | None = None) -> np.ndarray:
        """Probabilities (K, h, w) of ``region`` (input grid; None: all) from those of its
        :meth:`model_region` (K, h', w'), float32."""
        region = region or (0, 0, *self.shape)
        top, left, h, w = region
        m0, m1, _, _ = self.model_region(region)
        by, bx = self._back  # type: ignore[attr-defined]
        rows = _apply(probs, (by[0][top : top + h], by[1][top : top + h]), 1, m0)
        return _apply(rows, (bx[0][left : left + w], bx[1][left : left + w]), 2, m1)

    def depth(self, model_px: int) -> int:
        """Input pixels around a region that hold every input pixel read by the model-grid
        pixels within ``model_px`` of its :meth:`model_region` (a Dask chunk's overlap)."""
        return math.ceil((model_px + 2) / min(self.rescale.factor)) + 4

    def chunks(self, target: int, depth: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Chunk sizes (rows, columns) of the input's grid near ``target``; a last chunk
        thinner than ``depth`` joins the one before (Dask's overlap needs them deeper)."""
        target, out = max(target, depth), []
        for size in self.shape:
            sizes = [target] * (size // target) + ([size % target] if size % target else [])
            if len(sizes) > 1 and sizes[-1] < depth:
                sizes[-2:] = [sizes[-2] + sizes[-1]]
            out.append(tuple(sizes))
        return out[0], out[1]

    def run_region(
        self, run: Callable[[WindowReader, Region], np.ndarray], read: WindowReader, region: Region
    ) -> np.ndarray:
        """Probabilities (K, h, w) of ``region`` of the input's grid: the kernel ``run(reader,
        model region)`` on the model's grid, over :meth:`reader` of ``read``, resampled back."""
        return self.back(run(self.reader(read), self.model_region(region)), region)


def frame_grid(model: PixelSize | None, pixel_size: Any, shape: tuple[int, int]) -> Grid | None:
    """The resampling of (H, W) frames given as arrays (no file: ``pixel_size`` None means
    as they are) or by a :class:`Rescale` already resolved; None to run them as they are."""
    if isinstance(pixel_size, Rescale):
        return pixel_size.grid(shape)
    rescale = resolve(model, pixel_size, None)
    return None if rescale is None else rescale.grid(shape)


def output_calibration(stated: Any, found: Calibration | None) -> Calibration | None:
    """The calibration written into outputs: a pixel size the caller stated (µm, or a
    Calibration), else the file's (``"native"`` and None keep the file's)."""
    stated = parse(stated)
    if isinstance(stated, Calibration):
        return stated
    if isinstance(stated, float):
        if found is None:
            return Calibration(stated, stated, "µm")
        return Calibration(stated, stated, "µm", _z_um(found), found.t, found.t_unit)
    return found


def _z_um(found: Calibration) -> float | None:
    um = found.in_micrometres()
    return None if um is None else um.z
