"""The benchmark's images: finding them, choosing which serve what, and the mosaics.

The images are the packaged sample (``unet_edge/data/sample_isbi2012.png``)
unless a folder with ``image/`` (and optionally ``label/``) is named. Images
of 512x512 up to 4096x4096 are made of them laid side by side, every other
one mirrored so that edges meet (:func:`synth_image`); labels, when every
image has one, are laid out the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import datasets, io, metadata, processing
from ..errors import DataError, UnetEdgeError

if TYPE_CHECKING:
    from .config import BenchConfig

__all__ = [
    "BenchData",
    "BenchImages",
    "choose_images",
    "find_data",
    "read_images",
    "read_label",
    "sample_path",
    "synth_image",
    "write_frame",
]


def sample_path() -> Path:
    """The ISBI 2012 slice shipped inside the package (512x512, uint8, no label)."""
    return Path(str(resources.files("unet_edge") / "data" / "sample_isbi2012.png"))


@dataclass(frozen=True)
class BenchData:
    """The benchmark's images by name (file name without extension), and their labels."""

    source: str
    images: Mapping[str, Path]  # sorted by name
    labels: Mapping[str, Path]  # only the labelled images

    @property
    def names(self) -> tuple[str, ...]:
        """The image names, sorted."""
        return tuple(self.images)


def _listing(folder: Path) -> dict[str, Path]:
    """The images in ``folder`` by name, sorted."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in datasets.IMAGE_SUFFIXES)
    return {p.stem: p for p in files}


def _subfolder(data: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` that is a folder in ``data``, or None."""
    return next((data / n for n in names if (data / n).is_dir()), None)


def find_data(data: Path | None) -> BenchData:
    """The packaged sample (``None``), or a folder with ``image/`` and optionally ``label/``.

    Only paths are looked at here (cheap); labels are paired by name.
    """
    if data is not None and not data.is_dir():
        raise DataError(f"data folder {data} does not exist or is not a folder")
    if data is None:
        path = sample_path()
        if not path.is_file():
            raise DataError(f"the packaged sample {path} is missing; pass a data folder")
        return BenchData(f"packaged sample {path.name}", {path.stem: path}, {})
    image_dir = _subfolder(data, datasets.IMAGE_FOLDER_NAMES)
    images = _listing(image_dir) if image_dir else {}
    if not images:
        raise DataError(
            f"no images in {data}/image/; a data folder holds image/ (PNG or TIFF) and "
            "optionally label/ with the same file names"
        )
    label_dir = _subfolder(data, datasets.LABEL_FOLDER_NAMES)
    labels = _listing(label_dir) if label_dir else {}
    return BenchData(str(data), images, {n: p for n, p in labels.items() if n in images})


def choose_images(
    data: BenchData, cfg: BenchConfig
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """(int8 calibration names, fidelity names, notes about the choice)."""
    for given in (cfg.calibration, cfg.fidelity):
        unknown = [n for n in given or () if n not in data.images]
        if unknown:
            raise DataError(f"images {unknown[:10]} not found in {data.source}")
    pool = [n for n in data.names if n in data.labels] or list(data.names)
    fid = cfg.fidelity or tuple(pool[-cfg.n_fidelity :])
    cal = cfg.calibration or tuple([n for n in data.names if n not in fid][: cfg.n_calibration])
    notes = []
    if not cal:
        cal = fid
        notes.append(f"int8 calibrated on the fidelity image(s) {', '.join(fid)}: no other image")
    return cal, fid, notes


class BenchImages(NamedTuple):
    """The mosaics' building blocks: images cropped to one size, and labels if all have one.

    ``pixels``: (h, w[, C]) arrays of one dtype, as read; ``labels``: (h, w)
    class indices, or None.
    """

    pixels: list[np.ndarray]
    labels: list[np.ndarray] | None


def read_label(data: BenchData, name: str, image: np.ndarray, classes: int) -> np.ndarray:
    """The (H, W) class indices of image ``name``, checked to be the size of ``image``."""
    from ..evaluate import read_label as read_classes

    path = data.labels[name]
    truth = read_classes(path, classes)
    datasets.check_same_size(image, truth, data.images[name], path)
    return truth


def read_images(data: BenchData, info: metadata.ModelInfo) -> BenchImages:
    """Read every image (and label); refuse mixed dtypes or a wrong channel count."""
    pixels = [io.read_image(p) for p in data.images.values()]
    for path, im in zip(data.images.values(), pixels, strict=True):
        processing.check_dtype(im)
        processing.check_finite(im)
        try:
            processing.frame_to_chw(im, info.channels)
        except UnetEdgeError as e:
            raise DataError(f"{path}: {e}") from None
    if len({im.dtype for im in pixels}) > 1:
        raise DataError(f"the images in {data.source} mix dtypes; benchmark one kind at a time")
    labels = None
    if len(data.labels) == len(data.images):
        pairs = zip(data.names, pixels, strict=True)
        labels = [read_label(data, n, im, info.classes) for n, im in pairs]
    h, w = min(im.shape[0] for im in pixels), min(im.shape[1] for im in pixels)
    crop = [np.ascontiguousarray(im[:h, :w]) for im in pixels]
    return BenchImages(crop, None if labels is None else [lab[:h, :w] for lab in labels])


def synth_image(slices: Sequence[np.ndarray], size: int) -> np.ndarray:
    """A (size, size[, C]) image made of real slices side by side, mirrored so that edges meet.

    Block (i, j) is slice ``(i * cols + j) % len(slices)``, flipped left-right
    when ``j`` is odd and upside-down when ``i`` is odd, then cropped to size.
    The slices must share one shape and dtype.
    """
    h, w = slices[0].shape[:2]
    rows, cols = -(-size // h), -(-size // w)
    out = np.empty((rows * h, cols * w, *slices[0].shape[2:]), dtype=slices[0].dtype)
    for i in range(rows):
        for j in range(cols):
            s = slices[(i * cols + j) % len(slices)]
            s = s[::-1] if i % 2 else s
            s = s[:, ::-1] if j % 2 else s
            out[i * h : (i + 1) * h, j * w : (j + 1) * w] = s
    return np.ascontiguousarray(out[:size, :size])


def write_frame(stem: Path, image: np.ndarray) -> Path:
    """The image as the file a frame is read from: PNG for 8/16-bit, else TIFF."""
    if image.dtype in (np.uint8, np.uint16):
        return io.write_png(stem.with_suffix(".png"), image)
    return io.write_tiff(stem.with_suffix(".tif"), image)
