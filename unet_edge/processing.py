"""Pixel values in and out: layout checks, normalisation, probabilities -> masks.

Pure numpy/OpenCV. Axis order conventions used across unet-edge:
frames are (H, W) or channel-last (H, W, C) as cameras and image files give
them; the network sees channel-first float32 (C, H, W); outputs are
(classes, H, W) probabilities and (H, W) uint8 label masks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .config import Normalization, NormMode
from .errors import InputError, NonFiniteError

#: Signed integers (int16 from some cameras, CT and older software) are scaled like the
#: others: percentiles as measured, or, for fixed-range models, 0..the type's maximum
#: (:func:`_fixed_scaling`).
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.int8, np.int16, np.int32, np.float32, np.float64)


def as_image(image: Any) -> Any:
    """The one check of an image argument of the public API, before anything reads it.

    Array-likes with a shape and dtype (numpy arrays, memory maps, Dask and
    zarr arrays, TIFF windows) pass unchanged; nested Python lists of numbers
    become a numpy array; anything else, an image with no pixels (a 0 in its
    (H, W) or (Z, H, W) shape) or one with fewer than 2 or more than 4 axes is
    refused with :class:`InputError`.
    """
    if isinstance(image, (list, tuple)):
        try:
            image = np.asarray(image)
        except ValueError:
            raise InputError(
                "got nested lists of unequal lengths; pass a numpy array (H, W), (H, W, C) "
                "or a list of equal-size frames"
            ) from None
    shape = getattr(image, "shape", None)
    if shape is None or not hasattr(image, "dtype"):
        raise InputError(f"expected a numpy array (H, W) or (H, W, C), got {type(image).__name__}")
    shape = tuple(int(n) for n in shape)
    if not 2 <= len(shape) <= 4:
        raise InputError(
            f"expected (H, W), (H, W, C), (Z, H, W) or (Z, H, W, C), got shape {shape}"
        )
    if 0 in shape:
        raise InputError(f"the image is empty: it has shape {shape}, with no pixels")
    return image


def frame_to_chw(frame: np.ndarray, channels: int) -> np.ndarray:
    """View a single (H, W) or (H, W, C) frame as (C, H, W) without copying pixels."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(frame).__name__}")
    if frame.size == 0:
        raise InputError(f"the image is empty: it has shape {frame.shape}, with no pixels")
    if frame.ndim == 2:
        if channels != 1:
            raise InputError(
                f"got a 2-D (H, W) = {frame.shape} frame but the model takes {channels} channels; "
                f"pass an (H, W, {channels}) array"
            )
        return frame[None]
    if frame.ndim == 3:
        if frame.shape[2] != channels:
            raise InputError(
                f"got a frame of shape {frame.shape} (read as H, W, C) with {frame.shape[2]} "
                f"channels but the model takes {channels}; convert the image "
                f"({'to grayscale' if channels == 1 else f'to {channels} channels'}) first"
            )
        return np.moveaxis(frame, 2, 0)
    raise InputError(
        f"expected a 2-D (H, W) or 3-D (H, W, C) frame, got an array of shape {frame.shape}"
    )


#: Largest number of pixels whose statistics decide an image's normalisation. Larger images
#: are subsampled on a regular grid (every ``s``-th row and column), the same grid for the
#: in-memory, windowed and Dask paths, so all of them normalise an image identically.
MAX_STAT_PIXELS = 1 << 22

#: A fixed-range model refuses 16-bit input whose largest value is below this fraction of
#: the expected range (e.g. 12- or 14-bit camera data in 16-bit files): it would come out
#: nearly black to the network. Tell the Segmenter the real range (``input_range``).
MIN_RANGE_USED = 0.25
_RANGE_TOLERANCE = 1e-3


def check_dtype(frame: np.ndarray) -> None:
    if frame.dtype not in SUPPORTED_DTYPES:
        raise InputError(
            f"unsupported pixel type {frame.dtype}; expected uint8, uint16, int8, int16, int32 "
            "or float32 "
            "(convert with array.astype(np.float32) if the values are already scaled)"
        )


def non_finite(x: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(how many, index of the first) NaN or infinite values of a float array; None if none.

    One sum decides the common case (a finite sum means every value is finite), so the check
    costs one pass and no allocation; only a non-finite sum pays for the count.
    """
    if x.dtype.kind != "f" or x.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(x, axis=None)):
            return None
    bad = ~np.isfinite(x)
    count = int(np.count_nonzero(bad))
    if count == 0:  # finite values whose sum overflows
        return None
    return count, tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), x.shape))


def check_finite(frame: np.ndarray, step: int = 1) -> None:
    """Refuse NaN or infinite pixels in a raw (H, W[, C]) frame (sampled every ``step`` px)."""
    found = non_finite(frame)
    if found is not None:
        n, first = found
        some = "" if step == 1 else f" (sampling every {step} rows and columns)"
        row, col = first[0] * step, first[1] * step
        raise NonFiniteError(
            f"the image contains {n} NaN or infinite pixel(s){some}, the first at row {row}, "
            f"column {col}; replace them (e.g. np.nan_to_num) before segmenting",
            count=n,
            first=(first[2] if len(first) > 2 else 0, row, col),
        )


def stat_step(shape: tuple[int, ...]) -> int:
    """The subsampling step for an image of ``shape`` (H, W[, C]): 1 up to ~4 Mpx."""
    n = int(shape[0]) * int(shape[1])
    return max(1, math.ceil(math.sqrt(n / MAX_STAT_PIXELS)))


def stat_sample(image: Any) -> np.ndarray:
    """The pixels an image's normalisation statistics come from (H', W'[, C]).

    ``image`` is anything sliceable with steps: a numpy array or memory map,
    a Dask or zarr array. One strided read, whatever the image size.
    """
    s = stat_step(tuple(image.shape))
    sample = image if isinstance(image, np.ndarray) and s == 1 else image[::s, ::s]
    compute = getattr(sample, "compute", None)
    return np.asarray(compute() if callable(compute) else sample)


def camera_range(
    input_range: tuple[float, float] | None, bit_depth: int | None
) -> tuple[float, float] | None:
    """The raw value range from ``input_range`` or ``bit_depth`` (at most one of them)."""
    if input_range is not None and bit_depth is not None:
        raise InputError(
            f"give input_range or bit_depth, not both (got {input_range!r} and {bit_depth!r})"
        )
    if bit_depth is not None:
        if (
            isinstance(bit_depth, bool)
            or not isinstance(bit_depth, int)
            or not 1 <= bit_depth <= 32
        ):
            raise InputError(f"bit_depth must be an integer in 1..32, got {bit_depth!r}")
        return 0.0, float(2**bit_depth - 1)
    if input_range is None:
        return None
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InputError(f"input_range must be (low, high) numbers, got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise InputError(f"input_range needs finite low < high, got {input_range!r}")
    return lo, hi


@dataclass(frozen=True)
class Scaling:
    """How one image's raw values map to 0..1, per channel: ``(raw - low) / (high - low)``.

    ``source`` says where the numbers come from: ``"dtype"`` (the dtype's
    range, or 0..1 for floats), ``"model"`` (the model's fixed range),
    ``"input_range"`` (what the caller said of the camera) or
    ``"percentile"`` (measured on this image). Recorded in provenance.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"low": list(self.low), "high": list(self.high), "source": self.source}


def _fixed_scaling(
    dtype: np.dtype[Any],
    norm: Normalization,
    channels: int,
    input_range: tuple[float, float] | None,
) -> Scaling:
    if input_range is not None:
        lo, hi, source = float(input_range[0]), float(input_range[1]), "input_range"
    elif norm.mode is NormMode.FIXED_RANGE:
        lo, hi, source = norm.low, norm.high, "model"
    elif dtype.kind in "ui":
        # signed: 0..max, a camera's counts in a signed container (int16 holding 0..32767);
        # negative values are refused by check_range, with the fix (input_range)
        lo, hi, source = 0.0, float(np.iinfo(dtype).max), "dtype"
    else:
        lo, hi, source = 0.0, 1.0, "dtype"
    return Scaling((lo,) * channels, (hi,) * channels, source)


def check_range(sample: np.ndarray, scaling: Scaling) -> None:
    """Refuse values a fixed range cannot represent: beyond it, or in a small corner of it.

    A 12-bit camera frame (0..4095) in a uint16 container scaled by 65535 is
    almost black to the network, and the mask silently comes out all one
    class; a float image in 0..255 for a model that expects 0..1 saturates.
    """
    if scaling.source == "percentile" or sample.size == 0:
        return
    lo, hi = scaling.low[0], scaling.high[0]
    vmin, vmax, span = float(sample.min()), float(sample.max()), hi - lo
    what = f"{sample.dtype} values {vmin:g}..{vmax:g}"
    fix = "give the Segmenter the camera's real range (input_range=(low, high) or bit_depth=N)"
    if vmin < lo - _RANGE_TOLERANCE * span or vmax > hi + _RANGE_TOLERANCE * span:
        raise InputError(
            f"{what} exceed the range {lo:g}..{hi:g} this model's normalisation expects "
            f"({scaling.source}); {fix}"
        )
    wide = sample.dtype.kind in "ui" and sample.dtype.itemsize > 1  # a camera's container
    if wide and scaling.source == "dtype" and vmax < lo + MIN_RANGE_USED * span:
        bits = max(1, int(vmax).bit_length())
        raise InputError(
            f"{what} use at most {bits} bits of the {lo:g}..{hi:g} range this model scales "
            f"{sample.dtype} by, so the image would look nearly black to it (e.g. 12-bit "
            f"camera data in 16-bit files); {fix}, e.g. bit_depth={bits}; pass the full range "
            "explicitly if the image really is this dark"
        )


def scaling_for(
    image: Any,
    norm: Normalization,
    channels: int,
    input_range: tuple[float, float] | None = None,
) -> Scaling:
    """The scaling of one image (H, W[, C]), from its statistics sample (:func:`stat_sample`).

    Percentile models measure the image's ``norm.low``-th and ``norm.high``-th
    percentiles per channel (``input_range`` is not needed and not used);
    fixed-range models use ``input_range``, else the model's or the dtype's
    range, and refuse images that do not fit it (:func:`check_range`).
    """
    sample = stat_sample(as_image(image))
    check_dtype(sample)
    check_finite(sample, stat_step(tuple(image.shape)))
    chw = frame_to_chw(sample, channels)
    if norm.mode is not NormMode.PERCENTILE:
        scaling = _fixed_scaling(sample.dtype, norm, channels, input_range)
        check_range(sample, scaling)
        return scaling
    qs = [np.percentile(c, (norm.low, norm.high)) for c in chw]
    return Scaling(tuple(float(q[0]) for q in qs), tuple(float(q[1]) for q in qs), "percentile")


def scale(frame: np.ndarray, scaling: Scaling, channels: int) -> np.ndarray:
    """A raw frame (H, W[, C]) -> float32 (C, H, W) with ``scaling`` applied (0..1 nominally)."""
    check_dtype(frame)
    x = frame_to_chw(frame, channels).astype(np.float32)  # a fresh array, safe to modify
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused by normalize
        for c in range(x.shape[0]):
            lo, span = scaling.low[c], scaling.high[c] - scaling.low[c]
            if lo != 0.0:
                x[c] -= np.float32(lo)
            if span != 1.0:
                x[c] *= np.float32(1.0 / max(span, 1e-12))
    return x


def standardize(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """Scaled float32 values -> the network's input: clip to 0..1 if asked, mean/std; in place."""
    if norm.clip:
        np.clip(x, 0.0, 1.0, out=x)
    if norm.mean != 0.0 or norm.std != 1.0:
        with np.errstate(over="ignore", invalid="ignore"):  # refused by normalize
            x -= np.float32(norm.mean)
            x *= np.float32(1.0 / norm.std)
    return x


def normalize(
    frame: np.ndarray, norm: Normalization, channels: int, scaling: Scaling | None = None
) -> np.ndarray:
    """Convert a frame (H, W) or (H, W, C) of uint8/uint16/float to the network's float32 (C, H, W).

    ``scaling`` is the image's (:func:`scaling_for`); pass it when ``frame``
    is a window of a larger image, so that every window of the image is
    normalised alike. None: measured on ``frame`` itself. Integer frames keep
    their full bit depth (never truncated to 8 bits first).
    """
    s = scaling if scaling is not None else scaling_for(frame, norm, channels)
    x = scale(frame, s, channels)
    if norm.clip:  # clipping would turn an infinity into 1: look before
        _check_normalized(x)
    standardize(x, norm)
    if not norm.clip:
        _check_normalized(x)
    return x


def _check_normalized(x: np.ndarray) -> None:
    """Refuse NaN or infinite network input (C, h, w), from NaN pixels or float32 overflow."""
    found = non_finite(x)
    if found is not None:
        c, r, col = found[1]
        raise NonFiniteError(
            f"{found[0]} value(s) are not finite after normalisation, the first at row {r}, "
            f"column {col}, channel {c}",
            count=found[0],
            first=(c, r, col),
        )


def normalizer(
    norm: Normalization, channels: int, scaling: Scaling
) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`normalize` for the windows of one image: the kernel's prepare step."""
    return functools.partial(normalize, norm=norm, channels=channels, scaling=scaling)


def as_frames(image: Any, channels: int) -> tuple[list[np.ndarray], bool]:
    """The one rule for what is a stack: split input into frames; returns (frames, is_stack).

    (H, W) and (H, W, C) with C == ``channels`` are one frame; (Z, H, W) is a
    stack for a 1-channel model; (Z, H, W, C) and lists/tuples of equal-size
    frames are stacks. An (H, W, 3|4) array for a 1-channel model is a colour
    picture, refused (convert it to grayscale).
    """
    if isinstance(image, (list, tuple)) and not image:
        raise InputError("got an empty list of frames; pass at least one (H, W) frame")
    if isinstance(image, (list, tuple)) and all(isinstance(f, np.ndarray) for f in image):
        frames = list(image)
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise InputError(
                f"stack frames have different shapes {sorted(map(str, shapes))}; segment "
                "them one by one or crop them to one size"
            )
        return frames, True
    image = as_image(image)
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == channels):
        return [image], False
    if image.ndim == 3:
        if channels == 1 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 4:
            raise InputError(
                f"got an array of shape {image.shape}, read as an (H, W, {image.shape[2]}) "
                "colour image, but the model takes 1 channel; convert it to grayscale "
                "(a stack of frames that narrow can be passed as a list)"
            )
        if channels == 1:
            return _stack(image)
        raise InputError(
            f"got an array of shape {image.shape}: not (H, W, {channels}) for this "
            f"{channels}-channel model, and a (Z, H, W) stack needs a 1-channel model; "
            f"pass (Z, H, W, {channels})"
        )
    if image.ndim != 4:
        raise InputError(
            f"expected (H, W), (H, W, C), (Z, H, W) or (Z, H, W, C), got shape {image.shape}"
        )
    return _stack(image)


def _stack(image: np.ndarray) -> tuple[list[np.ndarray], bool]:
    return list(image), True  # as_image has refused an empty one


def to_mask(probabilities: np.ndarray) -> np.ndarray:
    """Class index per pixel: (K, H, W) or (Z, K, H, W) float -> (H, W) or (Z, H, W) uint8.

    The same as ``argmax`` over the class axis (ties go to the lower class),
    computed with one comparison per class: ``np.argmax`` along the leading
    axis of a (K, H, W) array is ~50x slower (0.24 s vs 5 ms for 2 x 4096 x
    4096), which mattered next to the model's own time.
    """
    p = np.asarray(probabilities)
    if p.ndim == 4:
        return (
            np.stack([to_mask(f) for f in p]) if len(p) else np.zeros((0, *p.shape[2:]), np.uint8)
        )
    if p.ndim != 3 or p.shape[0] < 1:
        raise InputError(f"expected (K, H, W) or (Z, K, H, W) probabilities, got shape {p.shape}")
    if p.shape[0] == 2:
        return np.greater(p[1], p[0]).view(np.uint8)
    mask = np.zeros(p.shape[1:], dtype=np.uint8)
    best = p[0].copy()
    for k in range(1, p.shape[0]):
        better = np.greater(p[k], best)
        mask[better] = k
        np.maximum(best, p[k], out=best)
    return mask


def mask_to_image(mask: np.ndarray, classes: int) -> np.ndarray:
    """The mask as it is saved: 0/255 for two classes, class indices otherwise."""
    if classes == 2:
        return (mask * 255).astype(np.uint8)
    return mask.astype(np.uint8)


_PALETTE = np.array(
    [
        [0, 0, 0],
        [255, 64, 64],
        [64, 200, 64],
        [64, 128, 255],
        [255, 200, 0],
        [200, 64, 255],
        [0, 220, 220],
        [255, 128, 0],
    ],
    dtype=np.uint8,
)


def to_display(frame: np.ndarray) -> np.ndarray:
    """A uint8 grayscale or RGB view of any frame, stretched to its 0.5-99.5 percentiles."""
    f = frame if frame.ndim == 2 else frame[..., :3] if frame.shape[2] >= 3 else frame[..., 0]
    if f.dtype == np.uint8:
        return f
    lo, hi = np.percentile(f, (0.5, 99.5))
    scaled = (f.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-12))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 picture for a person: the frame with class colours and class outlines.

    Class 0 is left uncoloured; for two-class EM models that is the membrane,
    drawn as the outline of each foreground region.
    """
    base = to_display(frame)
    rgb = np.repeat(base[..., None], 3, axis=2) if base.ndim == 2 else base.copy()
    colours = _PALETTE[mask.astype(np.intp) % len(_PALETTE)]
    tinted = (rgb * (1 - alpha) + colours * alpha).astype(np.uint8)
    out = np.where(mask[..., None] > 0, tinted, rgb)
    edges = cv2.morphologyEx(
        (mask > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
    )
    out[edges > 0] = (255, 255, 0)
    return out
