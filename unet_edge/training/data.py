"""Training data: paired image/label folders, cached weight maps, random tiles.

A data folder holds ``image/`` and ``label/`` with matching file names (PNG
or TIFF, 8- or 16-bit), the layout of ``shared/data/isbi2012/train``. Labels
are binary 0/255 (0 -> class 0, 255 -> class 1; for ISBI 255 is cell
interior, so class 1 = cell) or integer class maps.

A training sample is a legal input tile ``t x t`` (see :class:`Geometry`) and
the labels and loss weights of its central ``output_size(t)`` region. Tiles
are cut with ``cv2.remap`` through an optional elastic field, and everything
outside the image is mirrored with ``cv2.BORDER_REFLECT``, exactly as the
runtime mirror-pads at inference. Numpy + OpenCV only; the loop turns samples
into tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import processing
from ..config import Normalization, NormMode
from ..datasets import check_same_size, find_pairs, split_folder
from ..errors import DataError
from ..evaluate import read_array, read_label
from ..geometry import Geometry
from .augment import (
    AugmentConfig,
    elastic_field,
    exposure,
    flip_rotate,
    gray_values,
    remap,
    sampling_maps,
)
from .instances import BORDER_PX, instance_target, instance_weight_map, read_instances
from .weights import SIGMA, W0, weight_map

#: How training images are scaled unless told otherwise: each image by its own percentiles
#: (as CSBDeep and StarDist do), so 8-, 12-, 14- and 16-bit data, floats and exposure changes
#: all look alike to the network; not clipped. Mean and std are then measured on the data.
#: The training config chooses the percentiles (:class:`~unet_edge.training.config.TrainConfig`).
DEFAULT_SCALING = Normalization(mode=NormMode.PERCENTILE, low=1.0, high=99.8)


def scale_image(
    image: np.ndarray, scaling: Normalization
) -> tuple[np.ndarray, tuple[tuple[float, ...], tuple[float, ...], float]]:
    """An (H, W, C) image scaled to about 0..1 by ``scaling``'s rule: float32 (H, W, C).

    The same :func:`unet_edge.processing.scaling_for` and :func:`~unet_edge.processing.scale`
    the runtime applies, so training and inference cannot drift apart. Also
    returns the raw (low per channel, high per channel, full scale of the
    dtype), for the exposure augmentation.
    """
    c = image.shape[2]
    s = processing.scaling_for(image, scaling, c)
    full = float(np.iinfo(image.dtype).max) if image.dtype.kind == "u" else 1.0
    scaled = np.ascontiguousarray(processing.scale(image, s, c).transpose(1, 2, 0))
    return scaled, (s.low, s.high, full)


@dataclass(frozen=True)
class Sample:
    """One training example.

    ``image``: float32 (C, t, t), normalised. ``labels``: int64 (o, o) class
    indices. ``weights``: float32 (o, o) loss weights. ``o = output_size(t)``.
    """

    image: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


class SegmentationData:
    """Images, labels and cached weight maps of a list of (name, image, label) files.

    Images are kept scaled to about [0, 1] by ``scaling`` (default: per-image
    percentiles, :data:`DEFAULT_SCALING`) as float32 (H, W, C); labels uint8
    (H, W); weight maps float32 (H, W), computed once here. ``labels``:
    ``"classes"`` (class maps, :func:`~unet_edge.evaluate.read_label`) or
    ``"instances"`` (instance ids turned into ``target``'s class map with
    ``border`` px bands: :mod:`unet_edge.training.instances`).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, Path, Path]],
        classes: int = 2,
        in_channels: int = 1,
        w0: float = W0,
        sigma: float = SIGMA,
        scaling: Normalization = DEFAULT_SCALING,
        labels: str = "classes",
        target: str = "two-class",
        border: float = BORDER_PX,
    ) -> None:
        if not pairs:
            raise DataError("no image/label pairs given")
        self.names: list[str] = []
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.raw_ranges: list[tuple[tuple[float, ...], tuple[float, ...], float]] = []
        self.classes = classes
        self.scaling = scaling
        for name, image_path, label_path in pairs:
            image = read_array(image_path)
            if image.ndim == 2:
                image = image[:, :, None]
            if image.shape[2] != in_channels:
                raise DataError(
                    f"image {image_path} has {image.shape[2]} channel(s); the model expects "
                    f"{in_channels}"
                )
            if labels == "instances":
                inst = read_instances(label_path)
                check_same_size(image, inst, image_path, label_path)
                target_map = instance_target(inst, target, border)
                weights = instance_weight_map(inst, target_map, classes, w0, sigma)
            else:
                target_map = read_label(label_path, classes)
                check_same_size(image, target_map, image_path, label_path)
                weights = weight_map(target_map, classes, w0, sigma)
            self.names.append(name)
            scaled, raw_range = scale_image(image, scaling)
            self.images.append(scaled)
            self.raw_ranges.append(raw_range)
            self.labels.append(target_map)
            self.weights.append(weights)

    @classmethod
    def from_folder(
        cls, data_dir: str | Path, names: Sequence[str] | None = None, **kwargs: float
    ) -> SegmentationData:
        image_dir, label_dir = split_folder(data_dir)
        return cls(find_pairs(image_dir, label_dir, names), **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.images)

    def normalization(self) -> Normalization:
        """The scaling rule with the mean and std of these (scaled, clipped) images."""
        values = np.concatenate([im.ravel() for im in self.images])
        if self.scaling.clip:
            values = np.clip(values, 0.0, 1.0)
        return dataclasses.replace(self.scaling, mean=float(values.mean()), std=float(values.std()))

    def sample(
        self,
        rng: np.random.Generator,
        geometry: Geometry,
        tile: int,
        normalization: Normalization,
        augment: AugmentConfig | None = None,
        index: int | None = None,
        origin: tuple[int, int] | None = None,
    ) -> Sample:
        """A random tile of a random (or the ``index``-th) image, augmented if asked.

        The output region starts at a random pixel of the image (or at
        ``origin`` = (row, col)); the input tile extends ``halo`` px beyond it,
        mirrored where it leaves the image.
        """
        out = geometry.output_size(tile)
        halo = (tile - out) // 2
        i = int(rng.integers(len(self))) if index is None else index
        image, labels, weights = self.images[i], self.labels[i], self.weights[i]
        h, w = labels.shape
        if origin is None:
            oy = int(rng.integers(min(0, h - out), max(0, h - out) + 1))
            ox = int(rng.integers(min(0, w - out), max(0, w - out) + 1))
        else:
            oy, ox = origin
        aug = augment or AugmentConfig.none()
        dy, dx = elastic_field(rng, (tile, tile), aug.elastic_sigma, aug.elastic_grid)
        if aug.shift > 0:
            dy += np.float32(rng.uniform(-aug.shift, aug.shift))
            dx += np.float32(rng.uniform(-aug.shift, aug.shift))
        mx, my = sampling_maps((oy - halo, ox - halo), dy, dx)
        x = remap(image, mx, my, nearest=False)
        if x.ndim == 2:  # cv2 drops a single channel axis
            x = x[:, :, None]
        c = slice(halo, halo + out)
        mx, my = mx[c, c], my[c, c]
        y = remap(labels, mx, my, nearest=True)
        wt = remap(weights, mx, my, nearest=False)
        if self.scaling.mode is NormMode.PERCENTILE:
            x = exposure(x, self.raw_ranges[i], rng, aug)
        x = gray_values(x, rng, aug)
        x, y, wt = flip_rotate([x, y, wt], rng, aug)
        x = processing.standardize(np.ascontiguousarray(x, np.float32), normalization)
        return Sample(
            np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32),
            y.astype(np.int64),
            wt.astype(np.float32),
        )


def normalize(image: np.ndarray, normalization: Normalization) -> np.ndarray:
    """A scaled image (H, W, C) (see :func:`scale_image`) -> the network's float32 (C, H, W)."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    return processing.standardize(x, normalization)
