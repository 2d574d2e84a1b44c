"""Windows of a TIFF larger than memory (unet_edge/io/windows.py): :class:`TiffWindows` reads
exactly the pixels of a window, reopens a closed or unpickled file, refuses what it cannot
window; :func:`write_tiff_strips` writes bands of rows as one striped image."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ImageReadError, InputError, OutputError
from unet_edge.imagemeta import Calibration


@pytest.fixture()
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 65535, (61, 47), dtype=np.uint16)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_windows_of_a_contiguous_tiff_are_the_array_s(
    tmp_path: Path, image: np.ndarray, byteorder: str
) -> None:
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, byteorder=byteorder)
    with io.TiffWindows(path) as w:
        assert w.header.contiguous and w.shape == (61, 47) and w.dtype == np.uint16
        assert w.ndim == 2 and w.calibration is None
        for top, left, h, width in [(0, 0, 61, 47), (10, 3, 1, 1), (60, 40, 1, 7), (5, 0, 20, 47)]:
            got = w.read_window(top, left, h, width)
            assert got.dtype == np.uint16 and got.flags.writeable
            assert np.array_equal(got, image[top : top + h, left : left + width])
        assert np.array_equal(w[7:30, 2:9], image[7:30, 2:9])
        assert np.array_equal(w[::5, 1::3], image[::5, 1::3])  # a strided statistics sample
        with pytest.raises(InputError, match="positive steps"):
            _ = w[::-1]


def test_a_closed_or_unpickled_window_reader_opens_the_file_again(
    tmp_path: Path, image: np.ndarray
) -> None:
    cal = Calibration(0.5, 0.5, "µm")
    path = io.write_tiff(tmp_path / "c.tif", image, axes="YX", calibration=cal)
    w = io.TiffWindows(path)
    assert w.calibration == cal
    w.close()
    w.close()  # idempotent
    assert np.array_equal(w.read((1, 4), (2, 6)), image[1:4, 2:6])
    copy = pickle.loads(pickle.dumps(w))  # what a Dask worker gets
    assert np.array_equal(copy.read_window(50, 40, 11, 7), image[50:, 40:])
    w.close()
    copy.close()
    tifffile.imwrite(path, image[:60])  # changed since its header was checked
    with pytest.raises(ImageReadError, match="changed since its header was checked"):
        copy.read_window(0, 0, 1, 1)


def test_what_cannot_be_read_window_by_window_is_refused(tmp_path: Path, image: np.ndarray) -> None:
    png = io.write_png(tmp_path / "x.png", image)
    with pytest.raises(InputError, match=r"is not a TIFF; large-image mode reads \.tif/\.tiff"):
        io.TiffWindows(png)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([image, image]), photometric="minisblack")
    with pytest.raises(InputError, match=r"shape \(2, 61, 47\); large-image mode takes one"):
        io.TiffWindows(stack)
    with pytest.raises(ImageReadError, match="does not exist"):
        io.TiffWindows(tmp_path / "none.tif")


@pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="zarr is not installed ([dask] extra)"
)
def test_a_compressed_tiff_is_read_through_zarr(tmp_path: Path, image: np.ndarray) -> None:
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, image, compression="zlib", rowsperstrip=8)
    with io.TiffWindows(path) as w:
        assert not w.header.contiguous
        assert np.array_equal(w.read_window(9, 4, 30, 20), image[9:39, 4:24])


@pytest.mark.parametrize("compression", ["zlib", None])
def test_strips_written_as_they_come(tmp_path: Path, compression: str | None) -> None:
    mask = np.random.default_rng(1).integers(0, 2, (45, 31), dtype=np.uint8) * 255
    bands = (mask[r : r + 16] for r in range(0, 45, 16))  # 16, 16 and 13 rows
    cal = Calibration(0.2, 0.2, "µm")
    out = io.write_tiff_strips(tmp_path / "m.tif", bands, (45, 31), 16, {"model": "x"},
                               calibration=cal, compression=compression)  # fmt: skip
    with tifffile.TiffFile(out) as tf:
        page = tf.pages.first
        assert page.is_tiled is False and page.rowsperstrip == 16 and len(page.dataoffsets) == 3
        assert page.compression == (8 if compression else 1)  # ADOBE_DEFLATE, NONE
    assert np.array_equal(io.read_image(out), mask)
    assert io.read_provenance(out) == {"model": "x"} and io.read_calibration(out) == cal
    assert [p.name for p in tmp_path.iterdir()] == ["m.tif"]


def test_strips_refuse_other_compression(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="zlib or no compression, not 'lzw'"):
        io.write_tiff_strips(tmp_path / "m.tif", [], (1, 1), 1, compression="lzw")
    assert list(tmp_path.iterdir()) == []
