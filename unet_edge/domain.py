"""Does an image look like the model's training data? Features, statistics, the verdict.

A model trained on EM slices gives a confident mask for anything: a
fluorescence image, a photograph, noise. To say when an image lies outside
what the model knows, every exported model may carry statistics of a few
cheap features over its training images (metadata key ``domain``), and each
frame is scored against them.

The features describe what the *model* sees and how sure it is, so they do not
depend on the camera (the model's own normalisation is applied first):

- ``intensity_q25``, ``intensity_q50``, ``intensity_mean``: the distribution of
  the normalised input values (0..1 when the model clips);
- ``gradient``: mean gradient magnitude of the normalised input at the pixel
  scale, ``gradient_coarse`` the same on 4 x 4 block means (texture at the scale
  of the structures; white noise has the first but not the second) and ``flat``:
  the share of pixels without gradient (drawn shapes, smooth ramps);
- ``class_<name>``: the share of the frame's pixels given each class;
- ``confidence``: the mean largest class probability.

Features are taken on a grid of at most :data:`MAX_PATCHES` windows of
:data:`PATCH` px (the whole frame when smaller), so that scoring costs well
under 2% of inference at any image size. Each feature's z-score against the
training images' mean and spread (the spread never below a floor, see
:data:`FLOORS`, since 20 slices under-estimate it) gives the frame's score,
the largest absolute z; the frame is in the domain when the score is at most
the statistics' ``threshold``.

Metadata (the ``domain`` key of the model description)::

    {"version": 1, "images": int, "threshold": float, "source": str,
     "features": {name: {"mean": float, "std": float,
                         "quantiles": [11 floats: 0, 10, ..., 100th percentile]}}}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import processing
from .config import Normalization
from .errors import InputError, ModelError

WindowReader = Callable[[int, int, int, int], Any]
"""``(top, left, height, width) -> raw pixels`` (:data:`unet_edge.tiling.WindowReader`)."""

#: Version of the ``domain`` metadata section this module reads and writes.
VERSION = 1
#: Side of the square windows features are taken on, and how many at most per frame.
PATCH = 64
MAX_PATCHES = 36
#: The block size of ``gradient_coarse``.
COARSE = 4
#: A pixel whose normalised gradient magnitude is below this counts as flat.
FLAT_BELOW = 0.01
#: Default threshold on the score (largest |z|), chosen on native EM variants and generated
#: foreign images (docs/explanations/domain-guard.md).
THRESHOLD = 6.0
#: The smallest spread a feature's z-score divides by: a few training images under-estimate
#: the spread that crops and cameras give (class fractions vary by a few % from slice to slice).
FLOORS = {
    "intensity_q25": 0.03,
    "intensity_q50": 0.03,
    "intensity_mean": 0.02,
    "gradient": 0.01,
    "gradient_coarse": 0.005,
    "flat": 0.01,
    "confidence": 0.01,
}
CLASS_FLOOR = 0.02
QUANTILES = tuple(range(0, 101, 10))
INPUT_FEATURES = (
    "intensity_q25",
    "intensity_q50",
    "intensity_mean",
    "gradient",
    "gradient_coarse",
    "flat",
)


def feature_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Every feature of a model with these classes, in a fixed order."""
    return (*INPUT_FEATURES, *(f"class_{c}" for c in class_names), "confidence")


def windows(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(top, left, h, w) of the feature windows of an (height, width) frame: a regular grid
    of at most :data:`MAX_PATCHES` windows of :data:`PATCH` px, or the frame when smaller."""
    h, w = min(PATCH, height), min(PATCH, width)
    per_side = math.isqrt(MAX_PATCHES)

    def starts(size: int, win: int) -> list[int]:
        n = min(per_side, max(1, size // win))
        return sorted({round(i * (size - win) / max(n - 1, 1)) for i in range(n)})

    return [(t, left, h, w) for t in starts(height, h) for left in starts(width, w)]


def _gradient(x: np.ndarray) -> np.ndarray:
    """Gradient magnitude of (N, C, h, w) images by forward differences ((N, C, h-1, w-1));
    along the one axis there is for a frame 1 px thin, 0 for a single pixel."""
    h, w = x.shape[2:]
    if h > 1 and w > 1:
        return np.hypot(np.diff(x, axis=2)[..., :-1], np.diff(x, axis=3)[..., :-1, :])
    if h > 1 or w > 1:
        return np.abs(np.diff(x, axis=2 if h > 1 else 3))
    return np.zeros((1,), np.float32)


def _input_features(x: np.ndarray) -> dict[str, float]:
    """Features of normalised windows ``x`` (N, C, h, w) float32."""
    grad = _gradient(x)
    n, c, h, w = x.shape
    hc, wc = h // COARSE, w // COARSE
    if hc > 1 or wc > 1:  # block means, then their gradient
        hc, wc = max(hc, 1), max(wc, 1)
        bh, bw = min(COARSE, h), min(COARSE, w)
        blocks = x[:, :, : hc * bh, : wc * bw].reshape(n, c, hc, bh, wc, bw)
        coarse = float(_gradient(blocks.mean(axis=(3, 5))).mean())
    else:
        coarse = float(grad.mean())
    q25, q50 = np.percentile(x, (25, 50))
    return {
        "intensity_q25": float(q25),
        "intensity_q50": float(q50),
        "intensity_mean": float(x.mean()),
        "gradient": float(grad.mean()),
        "gradient_coarse": coarse,
        "flat": float((grad < FLAT_BELOW).mean()),
    }


def _output_features(p: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Features of probability windows ``p`` (N, K, h, w)."""
    mask = processing.to_mask(p.reshape(-1, *p.shape[1:]))
    counts = np.bincount(mask.ravel(), minlength=len(class_names)) / mask.size
    out = {f"class_{c}": float(counts[i]) for i, c in enumerate(class_names)}
    out["confidence"] = float(p.max(axis=1).mean())
    return out


def frame_features(
    frame: np.ndarray | WindowReader,
    scaling: processing.Scaling,
    normalization: Normalization,
    probabilities: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, float]:
    """The features of one frame.

    ``frame`` is the raw (H, W) or (H, W, C) frame, or a window reader over it
    (``(top, left, height, width) -> raw pixels``, as a kernel's ``read``);
    ``scaling`` its scaling (:func:`unet_edge.processing.scaling_for`),
    ``probabilities`` the model's (K, H, W) float32 output for it. Only the
    feature windows are read.
    """
    if isinstance(frame, np.ndarray):
        if probabilities.ndim != 3 or probabilities.shape[1:] != frame.shape[:2]:
            raise InputError(
                f"probabilities of shape {probabilities.shape} for a frame of shape "
                f"{frame.shape}; expected (classes, height, width) of the same frame"
            )
        image = frame
        frame = lambda t, s, h, w: image[t : t + h, s : s + w]  # noqa: E731
    wins = windows(*probabilities.shape[1:])
    raw = [frame(*win) for win in wins]
    p = [probabilities[:, t : t + h, s : s + w] for t, s, h, w in wins]
    return window_features(raw, p, scaling, normalization, class_names)


def window_features(
    raw: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    scaling: processing.Scaling,
    normalization: Normalization,
    class_names: Sequence[str],
) -> dict[str, float]:
    """:func:`frame_features` from its feature windows alone: ``raw`` the raw pixels (h, w[, C])
    and ``probabilities`` the model's (K, h, w) of each of :func:`windows` of the frame, in
    that order (the windowed and Dask paths keep only these while a large image is processed).
    """
    channels = 1 if raw[0].ndim == 2 else raw[0].shape[2]
    x = np.stack([processing.scale(r, scaling, channels) for r in raw])
    # What the network sees before its mean/std: clipped when the model clips; a bounded
    # range otherwise, so that one outlier pixel cannot dominate the mean.
    np.clip(x, *((0.0, 1.0) if normalization.clip else (-1.0, 2.0)), out=x)
    p = np.stack(probabilities)
    return {**_input_features(x), **_output_features(p, class_names)}


@dataclass(frozen=True)
class FeatureStats:
    """One feature over the training images: mean, spread and deciles."""

    mean: float
    std: float
    quantiles: tuple[float, ...]  # the 0th, 10th, ..., 100th percentile

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": round(self.mean, 6),
            "std": round(self.std, 6),
            "quantiles": [round(q, 6) for q in self.quantiles],
        }

    def percentile(self, value: float) -> float:
        """Where ``value`` lies among the training images, 0..100 (interpolated deciles)."""
        return float(np.interp(value, self.quantiles, QUANTILES))


@dataclass(frozen=True)
class DomainStats:
    """What a model records of its training images (the metadata's ``domain`` section)."""

    features: Mapping[str, FeatureStats]
    images: int
    threshold: float = THRESHOLD
    source: str = ""  # which images, measured how (for people)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "images": self.images,
            "threshold": self.threshold,
            "source": self.source,
            "features": {k: f.to_dict() for k, f in self.features.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DomainStats:
        """Validate the ``domain`` section of a model's metadata; :class:`ModelError` if bad."""
        try:
            if d.get("version") != VERSION:
                raise ValueError(f"version {d.get('version')!r}, this unet-edge reads {VERSION}")
            feats = {
                str(k): FeatureStats(
                    float(f["mean"]), float(f["std"]), tuple(float(q) for q in f["quantiles"])
                )
                for k, f in dict(d["features"]).items()
            }
            stats = cls(feats, int(d["images"]), float(d["threshold"]), str(d.get("source", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(
                f"invalid model metadata: domain statistics are malformed ({e}); re-export the "
                "model, or remove its domain section to run without the domain guard"
            ) from None
        numbers = [stats.threshold] + [v for f in feats.values() for v in (f.mean, f.std)]
        bad = [k for k, f in feats.items() if len(f.quantiles) != len(QUANTILES)]
        if bad or not all(math.isfinite(v) for v in numbers) or stats.threshold <= 0:
            raise ModelError(
                "invalid model metadata: domain statistics need finite numbers, a positive "
                f"threshold and {len(QUANTILES)} quantiles per feature; re-export the model"
            )
        return stats


def statistics(
    rows: Sequence[Mapping[str, float]], threshold: float = THRESHOLD, source: str = ""
) -> DomainStats:
    """The statistics of training images from their :func:`frame_features` (one row each)."""
    if not rows:
        raise InputError("domain statistics need the features of at least one training image")
    names = list(rows[0])
    feats = {}
    for k in names:
        v = np.array([r[k] for r in rows], np.float64)
        qs = np.percentile(v, QUANTILES)
        feats[k] = FeatureStats(float(v.mean()), float(v.std()), tuple(float(q) for q in qs))
    return DomainStats(feats, len(rows), threshold, source)


@dataclass(frozen=True)
class Quality:
    """How one frame compares with the model's training images.

    ``score`` is the largest |z| over the features; ``in_domain`` is
    ``score <= threshold``; ``features`` maps each feature to its value, its z
    and its percentile among the training images; ``reason`` names the features
    furthest out (empty when in the domain).
    """

    score: float
    in_domain: bool
    threshold: float
    features: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "in_domain": self.in_domain,
            "threshold": self.threshold,
            "reason": self.reason,
            "features": {k: dict(v) for k, v in self.features.items()},
        }


def _describe(name: str, value: float, f: FeatureStats) -> str:
    lo, hi = f.quantiles[0], f.quantiles[-1]
    what = name.replace("class_", "").replace("_", " ")
    if name.startswith("class_"):
        what = f"{what} share"
    return f"{what} {value:.3g}, training {lo:.3g}..{hi:.3g}"


def score(stats: DomainStats, features: Mapping[str, float]) -> Quality:
    """Score one frame's :func:`frame_features` against the training images' ``stats``.

    Features the statistics do not know (or the frame lacks) are left out.
    """
    rows: dict[str, dict[str, float]] = {}
    for k, f in stats.features.items():
        if k not in features:
            continue
        floor = FLOORS.get(k, CLASS_FLOOR)
        z = (features[k] - f.mean) / max(f.std, floor)
        rows[k] = {
            "value": round(features[k], 5),
            "z": round(z, 2),
            "percentile": round(f.percentile(features[k]), 1),
        }
    worst = sorted(rows, key=lambda k: -abs(rows[k]["z"]))
    top = max((abs(rows[k]["z"]) for k in worst), default=0.0)
    inside = top <= stats.threshold
    far = [k for k in worst[:2] if abs(rows[k]["z"]) > stats.threshold]
    reason = "; ".join(_describe(k, features[k], stats.features[k]) for k in far)
    return Quality(float(top), inside, stats.threshold, rows, reason)


@dataclass(frozen=True)
class Guard:
    """Scores frames of one model against its training images (:class:`DomainStats`)."""

    stats: DomainStats
    normalization: Normalization
    class_names: tuple[str, ...]
    model: str = "the model"  # its name, for warnings

    @classmethod
    def of(cls, info: Any) -> Guard | None:
        """The guard of a model (a :class:`~unet_edge.metadata.ModelInfo`), or None when its
        metadata has no domain statistics (older models: no guard)."""
        d = getattr(info, "domain", None)
        if not d:
            return None
        stats = DomainStats.from_dict(d)
        return cls(stats, info.normalization, tuple(info.class_names), str(info.name))

    def assess(
        self,
        frame: np.ndarray | WindowReader,
        scaling: processing.Scaling,
        probabilities: np.ndarray,
    ) -> Quality:
        """The :class:`Quality` of one raw (H, W[, C]) frame (or a window reader over it) and
        its (K, H, W) probabilities."""
        feats = frame_features(frame, scaling, self.normalization, probabilities, self.class_names)
        return score(self.stats, feats)

    def assess_windows(
        self,
        raw: Sequence[np.ndarray],
        probabilities: Sequence[np.ndarray],
        scaling: processing.Scaling,
    ) -> Quality:
        """The :class:`Quality` of a frame from its feature windows (:func:`window_features`)."""
        names = self.class_names
        return score(
            self.stats, window_features(raw, probabilities, scaling, self.normalization, names)
        )

    def assess_runs(
        self, runs: Iterable[Any], scalings: Iterable[processing.Scaling]
    ) -> tuple[Quality, ...]:
        """:meth:`assess` of each finished whole-frame kernel run
        (:class:`~unet_edge.tiling.TileRun`: its ``read`` and ``result``) with the frame's
        scaling: what the model saw and gave, on its grid."""
        pairs = zip(runs, scalings, strict=True)
        return tuple(self.assess(r.read, s, r.result) for r, s in pairs)

    def warning(self, source: str, qualities: Sequence[Record] | None) -> str | None:
        """:func:`warning` for this model (None when every frame is in the domain)."""
        return warning(source, self.model, qualities)


Record = Quality | Mapping[str, Any]
"""A :class:`Quality`, or its :meth:`~Quality.to_dict` as provenance holds it."""


def summary(qualities: Sequence[Record] | None) -> str | None:
    """One line on the frames outside the domain (None when all are inside, or not scored):
    the reason of the worst, and how many frames when a stack."""
    if not qualities:
        return None
    records = [q.to_dict() if isinstance(q, Quality) else q for q in qualities]
    out = [(i, q) for i, q in enumerate(records) if not q["in_domain"]]
    if not out:
        return None
    i, q = max(out, key=lambda iq: float(iq[1]["score"]))
    where = (
        f"{len(out)} of {len(qualities)} frames, worst frame {i}: " if len(qualities) > 1 else ""
    )
    return f"{where}score {q['score']:.1f} > {q['threshold']:g}: {q['reason']}"


def warning(source: str, model: str, qualities: Sequence[Record] | None) -> str | None:
    """The warning a face shows for an image outside the domain, or None."""
    why = summary(qualities)
    if why is None:
        return None
    return f"{source} looks unlike the training data of {model} ({why})"


def measure(
    seg: Any, images: Iterable[Any], threshold: float = THRESHOLD, source: str = ""
) -> DomainStats:
    """The statistics of ``images`` (each a frame or a stack, raw) as ``seg`` sees them.

    ``seg`` is a :class:`~unet_edge.Segmenter` (duck-typed: ``prepare_frames``,
    ``predict_frame`` and ``info``) running the model the statistics are for;
    each frame of each image is one row.
    """
    rows = []
    for image in images:
        frames, _ = seg.prepare_frames(image)
        for frame, scaling in frames:
            p = seg.predict_frame(frame, scaling)
            norm, names = seg.info.normalization, seg.info.class_names
            rows.append(frame_features(frame, scaling, norm, p, names))
    return statistics(rows, threshold, source)


def describe(section: Mapping[str, Any]) -> str:
    """One line on a model's ``domain`` metadata section (validated: :class:`ModelError`)."""
    if not section:
        return "no training statistics: images unlike the training data are not flagged"
    s = DomainStats.from_dict(section)
    return f"{s.images} training images ({s.source}), threshold {s.threshold:g}"
