"""The files of a bioimage.io package, read as untrusted input: sizes first, then bytes.

A package is a ``.zip`` with its ``rdf.yaml`` at the top, or an ``rdf.yaml``
in a folder. :class:`PackageFiles` reads only what unet-edge needs from it
(the rdf, the ONNX weights, the test tensors), and only from inside it:

- a file is named by a relative path inside the package: an absolute path,
  a ``..``, a backslash or a URL is refused (unet-edge never downloads while
  loading a model; the message names the URL and how to fetch it by hand);
- its size is checked against a limit before a byte is inflated or read:
  from the zip's directory (its declared size; the inflated stream is read
  only up to that size and its CRC checked, so a lying directory gives a
  damaged-file error, never more bytes), or from the file system for a
  folder (links that lead outside the folder are refused);
- its SHA-256 is compared with the one the rdf declares.

Every refusal is a one-line :class:`~unet_edge.errors.ModelError` that names
the package. Nothing is extracted and nothing is written.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

from ..errors import ModelError

__all__ = ["MAX_MEMBERS", "MAX_RDF_BYTES", "MAX_TENSOR_BYTES", "MAX_WEIGHTS_BYTES", "PackageFiles"]

#: Largest rdf.yaml read (real ones are a few KiB).
MAX_RDF_BYTES = 1 << 20
#: Largest ONNX weights read (ONNX files without external data stop at 2 GiB anyway).
MAX_WEIGHTS_BYTES = 1 << 30
#: Largest test tensor (.npy) read.
MAX_TENSOR_BYTES = 256 << 20
#: Most members a package zip may list.
MAX_MEMBERS = 10_000
#: The names bioimage.io gives a package's description, in the order they are looked for.
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _size(n: int) -> str:
    """``n`` bytes in words (``2.00 GiB``, ``1.5 MB``)."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


class PackageFiles:
    """Bounded, digest-checked reads of the files of one package (a zip, or a folder's rdf.yaml).

    ``name`` is how messages name the package (its path). Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        self._zip: zipfile.ZipFile | None = None
        self._root = path.parent
        if path.suffix.lower() != ".zip":
            self.rdf_name = path.name
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise ModelError(f"{path} is not a readable zip file ({e}); copy it again") from None
        members = self._zip.infolist()
        if len(members) > MAX_MEMBERS:
            self.close()
            raise ModelError(
                f"{path} lists {len(members):,} files, more than the {MAX_MEMBERS:,} a model "
                "package may hold; refused as damaged or malicious"
            )
        names = {m.filename for m in members}
        found = [n for n in RDF_NAMES if n in names]
        found += sorted(n for n in names if "/" not in n and n.endswith(".bioimageio.yaml"))
        if not found:
            self.close()
            raise ModelError(
                f"{path} holds no rdf.yaml (or bioimageio.yaml) at its top level; it is not a "
                "bioimage.io model package"
            )
        self.rdf_name = found[0]

    def __enter__(self) -> PackageFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> zipfile.ZipFile | Path:
        """What the package's relative paths are relative to: its zip, or its rdf's folder."""
        return self._zip if self._zip is not None else self._root

    def close(self) -> None:
        """Close the zip file (nothing to do for a folder)."""
        if self._zip is not None:
            self._zip.close()

    def rdf_text(self) -> str:
        """The package's description as text, at most :data:`MAX_RDF_BYTES` long."""
        data = self._read_member(self.rdf_name, self.rdf_name, MAX_RDF_BYTES)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelError(
                f"{self.name}: {self.rdf_name} is not UTF-8 text (byte {e.start}); it must be "
                "YAML in UTF-8"
            ) from None

    def read(self, source: object, sha256: object, what: str, limit: int) -> bytes:
        """The bytes of the file the rdf names ``source`` (``what`` it is, for messages), at
        most ``limit`` bytes, checked against the rdf's ``sha256`` when it gives one."""
        name = self.member_name(source, sha256, what)
        data = self._read_member(name, f"{what} {name!r}", limit)
        if isinstance(sha256, str) and sha256:
            got = hashlib.sha256(data).hexdigest()
            if got != sha256.lower():
                raise ModelError(
                    f"{self.name}: its {what} {name!r} has SHA-256 {got[:16]}..., but its rdf "
                    f"declares {sha256[:16]}...; the file was changed or damaged: get the "
                    "package again"
                )
        return data

    def member_name(self, source: object, sha256: object, what: str) -> str:
        """``source`` as a path inside the package (``/``-separated, no ``.`` parts), or a
        ModelError saying why it is not one (a URL, absolute, ``..``)."""
        if not isinstance(source, str) or not source.strip() or "\x00" in source:
            raise ModelError(f"{self.name}: its {what} has no file name (got {source!r:.80})")
        if source.lower().startswith(("http://", "https://", "ftp://")):
            digest = f", check that its SHA-256 is {sha256}" if isinstance(sha256, str) else ""
            raise ModelError(
                f"{self.name}: its {what} is at {source:.200}, and unet-edge never downloads "
                f"while loading a model: fetch that file by hand{digest}, put it beside the "
                "rdf.yaml (unpack the zip first) and set its source to the file's name"
            )
        if source.startswith(("/", "\\")) or _SCHEME.match(source):
            raise ModelError(
                f"{self.name}: its {what} is named by {source!r:.200}, outside the package; a "
                "package may only use its own files (paths relative to its rdf.yaml)"
            )
        if "\\" in source:
            raise ModelError(
                f"{self.name}: its {what} {source!r:.200} uses backslashes; paths inside a "
                "package are separated by /"
            )
        parts = [p for p in source.split("/") if p not in ("", ".")]
        if ".." in parts or not parts:
            raise ModelError(
                f"{self.name}: its {what} {source!r:.200} points outside the package (..); a "
                "package may only use its own files"
            )
        return "/".join(parts)

    def _too_large(self, what: str, size: int, packed: int | None, limit: int) -> ModelError:
        """The refusal of a file larger than ``limit`` (``packed``: its size in the zip)."""
        where = f" from {_size(packed)} in the zip" if packed is not None else ""
        verb = "inflates to" if packed is not None else "is"
        return ModelError(
            f"{self.name}: its {what} {verb} {_size(size)}{where}, more than the {_size(limit)} "
            "unet-edge reads for it; refused as damaged or malicious"
        )

    def _read_member(self, name: str, what: str, limit: int) -> bytes:
        """The bytes of member ``name`` (zip) or file ``name`` under the rdf's folder."""
        if self._zip is None:
            return self._read_file(name, what, limit)
        info = self._zip.NameToInfo.get(name)
        if info is None or info.is_dir():
            listed = ", ".join(sorted(self._zip.NameToInfo)[:6])
            raise ModelError(f"{self.name}: its {what} is not in the package (it holds {listed})")
        if info.file_size > limit:
            raise self._too_large(what, info.file_size, info.compress_size, limit)
        chunks, total = [], 0
        try:
            with self._zip.open(info) as f:
                # in small reads: one large read makes zipfile inflate up to that much at
                # once, whatever the directory says, before cutting it to the stated size
                while total <= info.file_size and (chunk := f.read(1 << 20)):
                    chunks.append(chunk)
                    total += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
            raise ModelError(
                f"{self.name}: its {what} cannot be read from the zip ({e}); the package is "
                "damaged or uses an unsupported compression: re-copy or re-write it"
            ) from None
        data = b"".join(chunks)
        if len(data) != info.file_size:
            raise ModelError(
                f"{self.name}: its {what} holds {len(data)} bytes where the zip's directory "
                f"says {info.file_size}; the package is damaged"
            )
        return data

    def _read_file(self, name: str, what: str, limit: int) -> bytes:
        """A file of an unpacked package: inside its folder (links resolved), size first."""
        root = self._root.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise ModelError(
                f"{self.name}: its {what} leads (through a link) to {path}, outside the "
                "package's folder; a package may only use its own files"
            )
        if not path.is_file():
            raise ModelError(f"{self.name}: its {what} is not in the package's folder {root}")
        size = path.stat().st_size
        if size > limit:
            raise self._too_large(what, size, None, limit)
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:  # grew while being read
            raise self._too_large(what, len(data), None, limit)
        return data
