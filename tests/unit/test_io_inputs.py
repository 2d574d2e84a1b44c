"""Inputs and outputs of a run (unet_edge/io/inputs.py): specs expanded to image files,
outputs checked before any compute."""

from __future__ import annotations

from pathlib import Path

import pytest

from unet_edge import io
from unet_edge.errors import ImageReadError, InputError, OutputError, OutputExistsError


def test_collect_inputs(tmp_path: Path) -> None:
    for n in ("b.png", "a.tif", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in io.collect_inputs([tmp_path])] == ["a.tif", "b.png"]
    assert [p.name for p in io.collect_inputs([str(tmp_path / "*.png")])] == ["b.png"]
    with pytest.raises(InputError, match="matches no files"):
        io.collect_inputs([str(tmp_path / "*.jpg")])
    with pytest.raises(ImageReadError, match="does not exist"):
        io.collect_inputs([tmp_path / "nope.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        io.collect_inputs([empty])


def test_check_output(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="one of the inputs"):
        io.check_output(src, overwrite=True, inputs=[src])
    with pytest.raises(OutputExistsError, match="overwriting was not asked for") as e:
        io.check_output(src, overwrite=False)
    assert e.value.option == "overwrite"  # the CLI turns it into "pass --overwrite"
    with pytest.raises(OutputError, match="does not exist"):
        io.check_output(tmp_path / "nofolder" / "x.png", overwrite=False)


@pytest.mark.parametrize("value", ["", None, 3, b"x.png", ["x.png"]])
def test_as_path_refuses_what_names_no_file(value: object) -> None:
    with pytest.raises(InputError, match=r"model must be a file or folder path") as e:
        io.as_path(value, "model")
    assert repr(value) in str(e.value) and e.value.option == "model"


def test_as_path_takes_str_and_pathlike(tmp_path: Path) -> None:
    assert io.as_path(str(tmp_path), "output") == tmp_path
    assert io.as_path(tmp_path / "x.png", "output") == tmp_path / "x.png"


def test_temporaries_and_hidden_files_are_never_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / ".a.png.unet-edge-tmp-0a1b-1-0123abcd.png").write_bytes(b"half")
    assert [p.name for p in io.collect_inputs([tmp_path])] == ["a.png"]


def test_a_named_temporary_is_refused_and_a_file_named_twice_counts_once(tmp_path: Path) -> None:
    tmp = tmp_path / ".a.png.unet-edge-tmp-0a1b-1-0123abcd.png"
    tmp.write_bytes(b"half")
    with pytest.raises(InputError, match="temporary file of an interrupted unet-edge run"):
        io.collect_inputs([tmp])
    (tmp_path / "a.png").write_bytes(b"x")
    both = io.collect_inputs([tmp_path, str(tmp_path / "*.png"), tmp_path / "a.png"])
    assert both == [tmp_path / "a.png"]
    assert io.collect_inputs(str(tmp_path / "a.png")) == [tmp_path / "a.png"]  # one path
