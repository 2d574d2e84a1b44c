"""The napari reader (unet_edge/napari/_reader.py), without napari: which file names it
claims, how older files' pages get their class axis back, how a calibration places a layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge import io
from unet_edge.imagemeta import Calibration
from unet_edge.napari import _reader


@pytest.mark.parametrize(
    ("name", "claimed"),
    [
        ("cell_mask.tif", ("cell", "mask")),
        ("cell_mask.TIFF", ("cell", "mask")),
        ("cell_mask.ome.tif", ("cell", "mask")),
        ("a_b_probabilities.tif", ("a_b", "probabilities")),
        ("cell_Mask.tif", ("cell", "mask")),  # any case; the kind as the reader names it
        ("cell_mask.png", None),  # masks are PNG too, but only TIFFs carry the calibration
        ("cell.tif", None),
        ("cellmask.tif", None),
        ("cell_overlay.tif", None),
    ],
)
def test_which_names_it_claims(name: str, claimed: tuple[str, str] | None) -> None:
    assert _reader._name_and_kind(name) == claimed


def test_only_files_unet_edge_wrote_are_read(tmp_path: Path) -> None:
    ours = io.write_tiff(tmp_path / "a_mask.tif", np.zeros((4, 5), np.uint8),
                         {"software": "unet-edge 1.0"})  # fmt: skip
    theirs = io.write_tiff(tmp_path / "b_mask.tif", np.zeros((4, 5), np.uint8), {"software": "x"})
    (tmp_path / "c_mask.tif").write_bytes(b"II*\x00 damaged")
    assert _reader.get_reader(str(ours)) is _reader.read
    assert _reader.get_reader(str(theirs)) is None
    assert _reader.get_reader(str(tmp_path / "c_mask.tif")) is None
    assert _reader.get_reader([str(ours)]) is None  # a list of files: not claimed


def test_the_class_axis_of_older_files_is_restored() -> None:
    pages = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(6, 4, 5)  # (Z * K, H, W)
    restored = _reader._with_class_axis(pages, "IYX", 3)
    assert restored.shape == (2, 3, 4, 5) and np.array_equal(restored[1, 2], pages[5])
    assert _reader._with_class_axis(pages[:3], "IYX", 3).shape == (3, 4, 5)  # one frame
    assert _reader._with_class_axis(pages[0], "YX", 2).shape == (1, 4, 5)
    assert _reader._with_class_axis(pages[:2], "IYX", 0).shape == (2, 4, 5)  # classes unknown
    assert _reader._with_class_axis(pages, "CYX", 3) is pages  # a hyperstack: as it is


def test_a_calibration_places_the_layer() -> None:
    cal = Calibration(0.25, 0.5, "µm", 2.0)
    assert _reader._placed(cal, 2) == {"scale": (0.5, 0.25), "units": ("micrometer",) * 2}
    assert _reader._placed(cal, 3) == {"scale": (2.0, 0.5, 0.25), "units": ("micrometer",) * 3}
    flat = Calibration(1.0, 1.0, "µm")
    assert _reader._placed(flat, 3)["scale"] == (1.0, 1.0, 1.0)  # no spacing: 1 per slice
    assert _reader._placed(None, 2) == {} and _reader._placed(cal, 4) == {}


def test_a_two_class_mask_reads_as_class_indices(tmp_path: Path) -> None:
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 255  # as processing.mask_to_image saves two classes
    prov = {"software": "unet-edge", "classes": ["background", "membrane"]}
    path = io.write_tiff(tmp_path / "x_mask.tif", mask, prov)
    ((data, kwargs, kind),) = _reader.read(path)
    assert kind == "labels" and kwargs["name"] == "x mask"
    assert np.array_equal(data, (mask > 0).astype(np.uint8))
    assert kwargs["metadata"]["provenance"] == prov and kwargs["metadata"]["calibration"] is None


def test_the_sample_carries_the_isbi_pixel_size_the_shipped_model_was_trained_at() -> None:
    from unet_edge import Segmenter
    from unet_edge.napari import _segment

    ((data, kwargs, kind),) = _reader.isbi_sample()
    assert kind == "image" and data.shape == (512, 512)
    assert kwargs["scale"] == (0.004, 0.004) and kwargs["units"] == ("micrometer",) * 2
    with Segmenter() as seg:  # so the widget segments it as it is, and says so
        rescale, said = _segment.pixel_size_for(seg.info.pixel_size, None, kwargs, 2)
    assert (
        rescale is None
        and said == "pixel size (the layer's) is the model's 0.004 µm: not resampled"
    )
