"""Atomic writes (unet_edge/io/atomic.py): no partial file, the temporary-file registry,
stale temporaries of dead processes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unet_edge import io
from unet_edge.errors import OutputError
from unet_edge.io import atomic


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    assert os.listdir(tmp_path) == []


def test_folder_removed_mid_write(tmp_path: Path) -> None:
    folder = tmp_path / "vanishing"
    folder.mkdir()
    with pytest.raises(OutputError, match="disappeared"), io.atomic_path(folder / "m.png") as tmp:
        tmp.write_bytes(b"x")
        tmp.unlink()
        folder.rmdir()
    assert not folder.exists()


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = io.write_png(tmp_path / "m.png", np.zeros((3, 3), np.uint8))
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert [q.name for q in tmp_path.iterdir()] == ["m.png"]


def test_a_failed_write_keeps_the_old_file_and_a_good_one_replaces_it(tmp_path: Path) -> None:
    target = tmp_path / "mask.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"  # writers choose by the suffix
        assert tmp.name.startswith(".mask.png" + io.TEMP_MARK) and tmp.exists()
        tmp.write_bytes(b"new, half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["mask.png"]
    assert atomic.write_atomically(target, lambda p: p.write_bytes(b"new")) == target
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["mask.png"]


def test_a_missing_output_folder_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"output folder .*nofolder does not exist"):  # noqa: SIM117
        with io.atomic_path(tmp_path / "nofolder" / "m.png"):
            raise AssertionError("the block must not run")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        (".m.png.unet-edge-tmp-0a1b-123-0123abcd.png", True),
        (".m.unet-edge-tmp-0a1b-1-deadbeef", True),
        ("m.png.unet-edge-tmp-0a1b-123-0123abcd.png", False),  # not hidden: a user's file
        (".m.png.unet-edge-tmp-host-123-0123abcd.png", False),  # host is 4 hex digits
        (".m.png.unet-edge-tmp-0a1b-pid-0123abcd.png", False),
        ("m.png", False),
    ],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    assert io.is_temporary(name) is temporary
    assert io.is_temporary(Path("/some/folder") / name) is temporary


def test_stale_temporaries_of_a_folder_that_is_not_there(tmp_path: Path) -> None:
    assert io.clean_stale_temporaries(tmp_path / "gone") == ([], [])
    (tmp_path / "m.png").write_bytes(b"a result")  # not a temporary: never touched
    assert io.clean_stale_temporaries(tmp_path) == ([], [])
    assert (tmp_path / "m.png").read_bytes() == b"a result"
