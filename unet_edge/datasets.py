"""Paired image/label folders: listing, pairing by name, name specs. Torch-free.

The one owner of the data-folder layout that training and evaluation share:
a data folder holds ``image/`` and ``label/`` (or the plural names) whose
files (PNG or TIFF) are paired by file name without extension. Only paths
are handled here, never pixels (reading is :mod:`unet_edge.io`'s and
:func:`unet_edge.evaluate.read_label`'s), so this module needs only numpy
and pathlib.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import DataError, InputError

__all__ = [
    "IMAGE_FOLDER_NAMES",
    "IMAGE_SUFFIXES",
    "LABEL_FOLDER_NAMES",
    "Pair",
    "check_same_size",
    "find_pairs",
    "parse_names",
    "split_folder",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
IMAGE_FOLDER_NAMES = ("image", "images")
LABEL_FOLDER_NAMES = ("label", "labels")

Pair = tuple[str, Path, Path]
"""``(name, image_path, label_path)``; the name is the file name without extension."""


def _listing(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by name (no extension), sorted; two files of one name raise."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            raise DataError(
                f"{folder} holds both {by_stem[p.stem].name} and {p.name}; keep one file per name"
            )
        by_stem[p.stem] = p
    return by_stem


def find_pairs(
    image_dir: str | Path, label_dir: str | Path, names: Iterable[str] | None = None
) -> list[Pair]:
    """Match images and labels by file name (without extension).

    Returns ``(name, image_path, label_path)`` sorted by name, restricted to
    ``names`` when given. Raises :class:`DataError` for a missing or empty
    folder, an image without a label (naming it), or an unknown name.
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for what, d in (("image", image_dir), ("label", label_dir)):
        if not d.is_dir():
            raise DataError(f"{what} folder {d} does not exist or is not a folder")
    images = _listing(image_dir)
    if not images:
        raise DataError(
            f"image folder {image_dir} holds no images; expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    labels = _listing(label_dir)
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in images]
        if unknown:
            raise DataError(
                f"names {unknown[:10]} not found in image folder {image_dir} "
                f"(it holds {', '.join(list(images)[:10])}{' ...' if len(images) > 10 else ''})"
            )
        if not wanted:
            raise DataError(f"an empty list of names was given for {image_dir}")
        images = {n: images[n] for n in sorted(wanted)}
    missing = [p for n, p in images.items() if n not in labels]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"label folder {label_dir} has no label for {len(missing)} image(s): {shown}; "
            "labels must have the same file name as their image"
        )
    return [(n, images[n], labels[n]) for n in images]


def split_folder(data_dir: str | Path) -> tuple[Path, Path]:
    """The image and label sub-folders of a data folder (``image``/``label``, or plural)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist or is not a folder")
    found = []
    for names in (IMAGE_FOLDER_NAMES, LABEL_FOLDER_NAMES):
        sub = next((data_dir / n for n in names if (data_dir / n).is_dir()), None)
        if sub is None:
            raise DataError(
                f"data folder {data_dir} has no {names[0]}/ sub-folder; expected "
                f"{data_dir}/image/ and {data_dir}/label/ with matching file names"
            )
        found.append(sub)
    return found[0], found[1]


def parse_names(spec: str) -> tuple[str, ...]:
    """``"20-24,30"`` -> ``("20", "21", "22", "23", "24", "30")``; ranges keep zero padding."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and lo.isdigit() and hi.isdigit():
            if int(hi) < int(lo):
                raise InputError(f"range {part!r} runs backwards; write it as low-high")
            names += [str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1)]
        else:
            names.append(part)
    return tuple(names)


def check_same_size(
    image: np.ndarray, labels: np.ndarray, image_path: str | Path, label_path: str | Path
) -> None:
    """Raise :class:`DataError` naming both files unless image and labels have the same (H, W)."""
    if image.shape[:2] != labels.shape:
        raise DataError(
            f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
            f"{label_path} is {labels.shape[1]}x{labels.shape[0]} (width x height); "
            "they must be the same size"
        )
