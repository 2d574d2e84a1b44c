"""What a run reads and where it writes: input specs expanded to image files, outputs checked.

Only names and the file system's entries are looked at; no file is opened.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ImageReadError, InputError, OutputError, OutputExistsError
from .atomic import check_replaceable, is_temporary
from .headers import SUFFIXES


def as_path(value: object, what: str) -> Path:
    """An API argument that names a file or folder, as a Path; anything else is an InputError."""
    if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)):
        return Path(value)
    raise InputError(
        f"{what} must be a file or folder path (str or pathlib.Path), got {value!r}", option=what
    )


def collect_inputs(specs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns to a list of images."""
    found: list[Path] = []
    if isinstance(specs, (str, os.PathLike)) or not isinstance(specs, Iterable):
        specs = [specs]  # one path (not an iterable of its characters), or refused below
    for spec in specs:
        p = as_path(spec, "inputs")
        if p.is_dir():
            imgs = sorted(q for q in p.iterdir() if _listed(q))
            if not imgs:
                raise InputError(f"folder {p} contains no images ({', '.join(sorted(SUFFIXES))})")
            found.extend(imgs)
        elif p.exists():
            if is_temporary(p):
                raise InputError(
                    f"{p} is a temporary file of an interrupted unet-edge run, not an image; "
                    "delete it"
                )
            found.append(p)
        elif glob.has_magic(str(spec)):
            matches = sorted(
                Path(m) for m in glob.glob(str(spec)) if Path(m).is_file() and not is_temporary(m)
            )
            if not matches:
                raise InputError(f"pattern {spec!r} matches no files")
            found.extend(matches)
        else:
            raise ImageReadError(f"input {p} does not exist")
    if not found:
        raise InputError("no input images given")
    unique: dict[Path, Path] = {}
    for p in found:  # the same file named twice (folder and glob) is segmented once
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def _listed(p: Path) -> bool:
    """Whether a folder or pattern lists ``p`` as an input: an image file, not hidden (so
    never a temporary file)."""
    return p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()


def check_output(path: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output that is an input, exists and is not a regular file (a folder, FIFO,
    device or socket: even with ``overwrite``), exists (without ``overwrite``), or has no
    folder. Only names and the file system's entries are looked at."""
    if any(path.resolve() == Path(i).resolve() for i in inputs):
        raise OutputExistsError(
            f"output {path} is one of the inputs; inputs are never overwritten, write the "
            "results to another folder",
            option="output",
        )
    check_replaceable(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} exists and overwriting was not asked for", option="overwrite"
        )
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist; create it first")
