"""The napari reader declines forged provenance without raising (unet_edge/napari/_reader.py).

The reader needs no napari: ``get_reader`` and ``read`` are plain functions. Each case
writes a result file whose provenance JSON lies (``classes: 5``, a million class names,
wrong types, names that do not match the data, JSON nested 100,000 deep) and asserts the
exact outcome: declined (None), or read with class numbers instead of the names, never
an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.napari import _reader

SOFTWARE = {"software": "unet-edge 1.0"}
MASK = np.zeros((6, 7), np.uint8)
MASK[2:4, 1:5] = 255


def _result(path: Path, prov: dict[str, Any], data: np.ndarray = MASK, **kw: Any) -> Path:
    axes = kw.pop("axes", "YX")
    io.write_tiff(path, data, prov, axes=axes, **kw)
    return path


FORGED = [
    ("classes-5", 5),
    ("a-million-names", [f"c{i}" for i in range(1_000_000)]),
    ("257-names", [f"c{i}" for i in range(257)]),
    ("a-string", "ab"),
    ("a-mapping", {"a": 1}),
    ("numbers", [1, 2]),
    ("an-empty-name", ["", "x"]),
    ("a-long-name", ["x" * 1000, "y"]),
    ("nested", [["a"], "b"]),
    ("null-name", [None, "b"]),
    ("a-bool", True),
]


@pytest.mark.parametrize("ome", [False, True], ids=["imagej", "ome"])
@pytest.mark.parametrize("classes", [c for _, c in FORGED], ids=[i for i, _ in FORGED])
def test_forged_class_names_are_declined_and_read_never_raises(
    tmp_path: Path, classes: object, ome: bool
) -> None:
    name = "em_mask.ome.tif" if ome else "em_mask.tif"
    path = _result(tmp_path / name, {**SOFTWARE, "classes": classes}, ome=ome)
    assert _reader.get_reader(str(path)) is None
    [(data, kwargs, kind)] = _reader.read(str(path))  # called anyway: no exception
    assert kind == "labels" and np.array_equal(data, MASK)  # not binarised on forged names
    assert kwargs["name"] == "em mask"


@pytest.mark.parametrize("classes", [c for _, c in FORGED], ids=[i for i, _ in FORGED])
def test_forged_names_on_probabilities_become_class_numbers(
    tmp_path: Path, classes: object
) -> None:
    probs = np.random.default_rng(0).random((2, 6, 7), np.float32)
    prov = {**SOFTWARE, "classes": classes}
    path = _result(tmp_path / "em_probabilities.tif", prov, probs, axes="CYX")
    assert _reader.get_reader(str(path)) is None
    [(data, kwargs, kind)] = _reader.read(str(path))
    assert kind == "image" and np.array_equal(data, probs)
    assert kwargs["name"] == ["em p(0)", "em p(1)"] and kwargs["channel_axis"] == 0


@pytest.mark.parametrize(
    ("classes", "shape", "axes"),
    [
        (["a", "b"], (3, 6, 7), "CYX"),  # three planes in the class axis, two names
        (["a", "b", "c", "d", "e"], (2, 6, 7), "CYX"),
        (["a", "b"], (5, 6, 7), None),  # older pages: 5 planes are not Z x 2 classes
        (["a", "b"], (2, 3, 6, 7), "ZCYX"),
    ],
)
def test_names_that_do_not_match_the_class_axis_are_replaced(
    tmp_path: Path, classes: list[str], shape: tuple[int, ...], axes: str | None
) -> None:
    probs = np.random.default_rng(1).random(shape, np.float32)
    kw = {"axes": axes} if axes else {}
    path = tmp_path / "x_probabilities.tif"
    if axes is None:
        io.write_tiff(path, probs, {**SOFTWARE, "classes": classes})
    else:
        _result(path, {**SOFTWARE, "classes": classes}, probs, **kw)
    assert _reader.get_reader(str(path)) is _reader.read  # the names look fine on their own
    [(data, kwargs, _)] = _reader.read(str(path))
    k = data.shape[-3]
    assert kwargs["name"] == [f"x p({i})" for i in range(k)]
    assert data.size == probs.size and k == (shape[-3] if axes else shape[0])


def test_two_names_on_a_mask_with_more_values_keep_the_values(tmp_path: Path) -> None:
    mask = np.arange(42, dtype=np.uint8).reshape(6, 7) % 5  # class indices 0..4
    path = _result(tmp_path / "m_mask.tif", {**SOFTWARE, "classes": ["a", "b"]}, mask)
    assert _reader.get_reader(str(path)) is _reader.read
    [(data, _, _)] = _reader.read(str(path))
    assert np.array_equal(data, mask)


def test_control_characters_in_names_are_dropped(tmp_path: Path) -> None:
    probs = np.random.default_rng(2).random((2, 6, 7), np.float32)
    prov = {**SOFTWARE, "classes": ["mem\x1b]0;x\x07brane", "cell\n"]}
    path = _result(tmp_path / "p_probabilities.tif", prov, probs, axes="CYX")
    assert _reader.get_reader(str(path)) is _reader.read
    [(_, kwargs, _)] = _reader.read(str(path))
    assert kwargs["name"] == ["p p(mem]0;xbrane)", "p p(cell)"]


@pytest.mark.parametrize(
    "description",
    [
        '{"software": "unet-edge", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"software": ["unet-edge"], "classes": ["a", "b"]}',
        '{"software": 7}',
        '["unet-edge"]',
    ],
    ids=["nested-100000-deep", "software-a-list", "software-a-number", "not-an-object"],
)
def test_provenance_of_the_wrong_shape_is_declined(tmp_path: Path, description: str) -> None:
    path = tmp_path / "n_mask.tif"
    tifffile.imwrite(path, MASK, description=description)  # as older unet-edge wrote it
    assert _reader.get_reader(str(path)) is None


def test_good_provenance_is_still_read(tmp_path: Path) -> None:
    path = _result(tmp_path / "g_mask.tif", {**SOFTWARE, "classes": ["membrane", "cell"]})
    assert _reader.get_reader(str(path)) is _reader.read
    [(data, kwargs, kind)] = _reader.read(str(path))
    assert kind == "labels" and np.array_equal(data, MASK // 255)
    assert kwargs["metadata"]["provenance"]["classes"] == ["membrane", "cell"]
