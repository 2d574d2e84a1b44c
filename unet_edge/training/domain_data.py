"""Which images a model's domain statistics are measured on (:mod:`unet_edge.domain`).

``unet-edge train`` records in every checkpoint the folder of its training
images (``training["image_dir"]``, absolute) and the names of the images it
trained on (``training["train_names"]``, never the validation ones), so that
exporting the checkpoint can measure the statistics of exactly those images
through the exported graph without being told where they are
(:func:`recorded`). A folder given explicitly (:func:`from_folder`) replaces
them. When the recorded images are gone (moved, another machine) or the
checkpoint predates the record, :attr:`DomainImages.missing` says so and the
model is written without statistics: it then runs without the domain guard.

Only paths and pixels are handled here (no torch): the statistics themselves
are measured by :func:`unet_edge.training.export.stamp_domain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..datasets import IMAGE_FOLDER_NAMES, IMAGE_SUFFIXES
from ..errors import UnetEdgeError


@dataclass(frozen=True)
class DomainImages:
    """Raw training images (each (H, W), (H, W, C) or a stack, as read) and where they are
    from, or why there are none.

    ``origin``: ``"recorded"`` (by ``unet-edge train`` in the checkpoint), ``"given"`` (a
    folder) or ``""`` (none); ``where``: their folder; ``missing``: why there are no
    images (empty when there are).
    """

    images: tuple[np.ndarray, ...] = ()
    origin: str = ""
    where: Path | None = None
    missing: str = ""

    def note(self) -> str:
        """One line for a summary: which images the statistics come from, or why none."""
        if self.images:
            how = "recorded by unet-edge train" if self.origin == "recorded" else "given"
            return (
                f"domain statistics of {len(self.images)} training images in {self.where} "
                f"({how}): the model warns on images unlike them"
            )
        return (
            f"the model has no domain statistics, so it does not warn on images unlike its "
            f"training data: {self.missing}"
        )


def image_files(training: Mapping[str, Any]) -> tuple[Path | None, list[Path], list[str]]:
    """The recorded training folder of a checkpoint's ``training`` record, the image file of
    each recorded training name found there, and the names without a file."""
    folder, names = training.get("image_dir"), training.get("train_names")
    if not folder or not names:
        return None, [], []
    where = Path(str(folder))
    found, lost = [], []
    for name in (str(n) for n in names):
        path = next(
            (
                where / f"{name}{s}"
                for s in (*IMAGE_SUFFIXES, *(x.upper() for x in IMAGE_SUFFIXES))
                if (where / f"{name}{s}").is_file()
            ),
            None,
        )
        if path is None:
            lost.append(name)
        else:
            found.append(path)
    return where, found, lost


def _read(paths: list[Path]) -> tuple[np.ndarray, ...]:
    return tuple(io.read_image(p) for p in paths)


def recorded(training: Mapping[str, Any]) -> DomainImages:
    """The training images a checkpoint's ``training`` record names, read, when all of them
    are still there and readable; otherwise none, and why (:attr:`DomainImages.missing`).

    All or nothing: statistics of a part of the training set would describe another set.
    """
    where, found, lost = image_files(training)
    if where is None:
        why = "the checkpoint does not record its training images (trained before they were)"
        return DomainImages(missing=why)
    if lost:
        shown = ", ".join(lost[:3]) + (" ..." if len(lost) > 3 else "")
        why = f"{len(lost)} of the recorded training images are not in {where}: {shown}"
        return DomainImages(where=where, missing=why)
    try:
        return DomainImages(_read(found), "recorded", where)
    except UnetEdgeError as e:
        return DomainImages(where=where, missing=f"a recorded training image is unreadable: {e}")


def from_folder(folder: str | Path) -> DomainImages:
    """Every image in ``folder``, or in its ``image/`` sub-folder when it has one (a training
    data folder); unreadable files and an empty folder raise (:mod:`unet_edge.io`)."""
    folder = Path(folder)
    sub = next((folder / n for n in IMAGE_FOLDER_NAMES if (folder / n).is_dir()), None)
    where = sub or folder
    return DomainImages(_read(io.collect_inputs([where])), "given", where)


def export_with_domain(
    checkpoint: str | Path,
    output: str | Path,
    *,
    domain_data: str | Path | None = None,
    use_recorded: bool = True,
    **kwargs: Any,
) -> tuple[Any, DomainImages]:
    """:func:`~unet_edge.training.export.export_checkpoint`, then the domain statistics of the
    training images stamped into the model (:func:`~unet_edge.training.export.stamp_domain`).

    The images are those in ``domain_data`` (a folder, see :func:`from_folder`), else the
    ones the checkpoint records (:func:`recorded`) unless ``use_recorded`` is False.
    ``kwargs`` go to ``export_checkpoint``; the graph's check against PyTorch is its own,
    unchanged. Given images are read before anything is written; if stamping fails, the
    exported file is removed. Returns the export's report and the images used (none: see
    :attr:`DomainImages.missing`; the model is then written without statistics).
    """
    from . import checkpoint as ckpt_mod
    from .export import export_checkpoint, stamp_domain

    found = from_folder(domain_data) if domain_data is not None else DomainImages()
    ck = ckpt_mod.load(checkpoint)
    if domain_data is None:
        found = recorded(ck.training) if use_recorded else DomainImages(missing="not asked for")
    provenance = {"checkpoint": Path(checkpoint).name, **(kwargs.pop("provenance", None) or {})}
    report = export_checkpoint(ck, output, provenance=provenance, **kwargs)
    if found.images:
        try:
            stamp_domain(output, found.images)
        except BaseException:
            Path(output).unlink(missing_ok=True)  # no model that silently lacks its statistics
            raise
        report.file_bytes = Path(output).stat().st_size
    return report, found
