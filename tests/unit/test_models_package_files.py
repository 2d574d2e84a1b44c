"""unet_edge.models.package_files: what a package may name, and bounded, digest-checked reads."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from unet_edge import ModelError
from unet_edge.models import package_files
from unet_edge.models.package_files import PackageFiles


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return _zip(tmp_path / "p.zip", {"rdf.yaml": b"name: x\n", "w/a.onnx": b"abc"})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://host/w.onnx", "never downloads"),
        ("HTTP://host/w.onnx", "never downloads"),
        ("ftp://host/w.onnx", "never downloads"),
        ("file:///etc/passwd", "outside the package"),
        ("/etc/passwd", "outside the package"),
        ("C:\\w.onnx", "outside the package"),
        ("\\\\server\\share\\w.onnx", "outside the package"),
        ("../w.onnx", "points outside"),
        ("w/../../w.onnx", "points outside"),
        ("w\\a.onnx", "backslashes"),
        ("", "no file name"),
        ("a\x00b", "no file name"),
        (None, "no file name"),
        (".", "points outside"),
    ],
)
def test_names_outside_the_package_are_refused(pkg: Path, source: object, expected: str) -> None:
    with PackageFiles(pkg) as files, pytest.raises(ModelError) as e:
        files.member_name(source, None, "weights")
    assert expected in str(e.value) and str(pkg) in str(e.value) and "\n" not in str(e.value)


def test_a_url_refusal_names_the_url_and_the_digest(pkg: Path) -> None:
    with PackageFiles(pkg) as files, pytest.raises(ModelError) as e:
        files.member_name("https://host/w.onnx", "ab" * 32, "weights")
    assert "https://host/w.onnx" in str(e.value) and "ab" * 32 in str(e.value)


@pytest.mark.parametrize("source", ["w/a.onnx", "./w/a.onnx", "w//a.onnx"])
def test_relative_names_read_the_member(pkg: Path, source: str) -> None:
    digest = hashlib.sha256(b"abc").hexdigest()
    with PackageFiles(pkg) as files:
        assert files.read(source, digest, "weights", 10) == b"abc"
        assert files.read(source, None, "weights", 10) == b"abc"  # no digest declared
        assert files.rdf_text() == "name: x\n"


def test_digest_mismatch_and_size_limit(pkg: Path) -> None:
    with PackageFiles(pkg) as files:
        with pytest.raises(ModelError, match="SHA-256"):
            files.read("w/a.onnx", "00" * 32, "weights", 10)
        with pytest.raises(ModelError, match=r"inflates to 3 bytes .* more than the 2 bytes"):
            files.read("w/a.onnx", None, "weights", 2)
        with pytest.raises(ModelError, match="not in the package"):
            files.read("w/b.onnx", None, "weights", 10)
        with pytest.raises(ModelError, match="not in the package"):
            files.read("w", None, "weights", 10)  # a folder, not a file


def test_zip_level_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match=r"holds no rdf\.yaml"):
        PackageFiles(_zip(tmp_path / "a.zip", {"sub/rdf.yaml": b""}))
    monkeypatch.setattr(package_files, "MAX_MEMBERS", 2)
    with pytest.raises(ModelError, match="lists 3 files"):
        PackageFiles(_zip(tmp_path / "b.zip", {"rdf.yaml": b"", "a": b"", "b": b""}))
    (tmp_path / "c.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable zip"):
        PackageFiles(tmp_path / "c.zip")
    named = _zip(tmp_path / "d.zip", {"my.bioimageio.yaml": b"a: 1\n"})
    assert PackageFiles(named).rdf_text() == "a: 1\n"


def test_an_unpacked_package_reads_inside_its_folder_only(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "rdf.yaml").write_text("name: x\n")
    (folder / "w.onnx").write_bytes(b"abc")
    (tmp_path / "secret").write_bytes(b"secret")
    (folder / "link").symlink_to(tmp_path / "secret")
    with PackageFiles(folder / "rdf.yaml") as files:
        assert files.root == folder and files.read("w.onnx", None, "weights", 3) == b"abc"
        with pytest.raises(ModelError, match="through a link"):
            files.read("link", None, "weights", 10)
        with pytest.raises(ModelError, match="is 3 bytes, more than"):
            files.read("w.onnx", None, "weights", 2)
        with pytest.raises(ModelError, match="not in the package's folder"):
            files.read("missing.onnx", None, "weights", 10)
