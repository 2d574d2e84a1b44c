"""Grey stored as RGB with no colour picked, window by window: taken as grey as the in-memory
path takes it (the mask equal bit for bit), its colours checked equal window by window as
they are read, and refused at the first window where they differ (issue 20's leftovers)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import Segmenter, io, processing
from unet_edge.errors import InputError
from unet_edge.paths import files, windowed

needs_zarr = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="zarr is not installed ([dask] extra)"
)


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def grey(isbi_image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(isbi_image[:300, :260])


def _mask(r: files.FileResult) -> np.ndarray:
    return tifffile.imread(r.outputs["mask"])


@pytest.mark.parametrize(
    ("samples", "compression"),
    [(3, None), (4, None), (2, None), pytest.param(3, "zlib", marks=needs_zarr)],
)
def test_grey_stored_as_rgb_windowed_equals_in_memory(
    seg: Segmenter, grey: np.ndarray, tmp_path: Path, samples: int, compression: str | None
) -> None:
    planes = [grey] * min(samples, 3) + [255 - grey] * (samples - 3)  # an alpha differs
    if samples == 2:
        planes = [grey, 255 - grey]  # grey and alpha
    src = tmp_path / "g.tif"
    photometric = "minisblack" if samples == 2 else "rgb"
    extra = {"extrasamples": ["unassalpha"]} if samples in (2, 4) else {}
    tifffile.imwrite(
        src, np.dstack(planes), photometric=photometric, compression=compression, **extra
    )
    assert io.image_header(src).axes == "YXS"
    memory = files.segment_file(seg, src, tmp_path / "m")
    large = files.segment_file(seg, src, tmp_path / "w", large=True)
    assert large.windowed and not memory.windowed
    assert np.array_equal(_mask(large), _mask(memory))
    assert np.array_equal(_mask(large), processing.mask_to_image(seg.segment(grey), 2))
    assert large.provenance["normalization"] == memory.provenance["normalization"]
    out = windowed.segment_large(seg, src, tmp_path / "api.tif")
    assert np.array_equal(tifffile.imread(out), _mask(memory))


def test_colour_found_in_a_late_window_is_refused_naming_it(
    seg: Segmenter, grey: np.ndarray, tmp_path: Path
) -> None:
    rgb = np.dstack([grey, grey, grey])
    rgb[290, 250] = (100, 100, 107)  # one pixel bluer than grey near the bottom right
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    with pytest.raises(InputError, match=r"c\.tif is a colour image") as caught:
        files.segment_file(seg, src, tmp_path / "w", large=True)
    text = str(caught.value)
    assert "by up to 7 levels" in text and "pick the colour channel to segment" in text
    assert caught.value.option == "channel"
    assert not (tmp_path / "w").exists()  # nothing written, not even the folder
    with pytest.raises(InputError, match="is a colour image"):  # as in memory
        files.segment_file(seg, src, tmp_path / "m")
    picked = files.segment_file(seg, src, tmp_path / "b", large=True, channel=2)
    want = processing.mask_to_image(seg.segment(rgb[..., 2]), 2)
    assert np.array_equal(_mask(picked), want)


def test_windows_read_grey_and_name_the_first_that_is_not(grey: np.ndarray, tmp_path: Path) -> None:
    rgb = np.dstack([grey, grey, grey])
    rgb[200, 10, 1] += 1
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    with io.TiffWindows(src, grey=True) as win:
        assert win.grey and win.shape == (300, 260) and win.ndim == 2
        assert np.array_equal(win.read_window(0, 0, 100, 260), grey[:100])
        assert np.array_equal(win[0:150:3, ::2], grey[0:150:3, ::2])  # a statistics sample
        again = pickle.loads(pickle.dumps(win))  # a Dask worker's copy checks too
        assert np.array_equal(again.read_window(10, 20, 30, 40), grey[10:40, 20:60])
        with pytest.raises(InputError, match=r"differ in rows 150-250, columns 0-50 \(by up"):
            win.read_window(150, 0, 100, 50)
        assert np.array_equal(win.read_window(150, 50, 100, 50), grey[150:250, 50:100])
    with io.TiffWindows(src) as every:  # not asked: every sample, as before
        assert not every.grey and every.shape == (300, 260, 3)
    with io.TiffWindows(src, grey=True, channel=1) as one:  # a colour picked wins
        assert not one.grey and np.array_equal(one.read_window(0, 0, 300, 260), rgb[..., 1])
    tifffile.imwrite(tmp_path / "y.tif", grey)
    with io.TiffWindows(tmp_path / "y.tif", grey=True) as plain:  # already grey
        assert not plain.grey and np.array_equal(plain.read_window(0, 0, 300, 260), grey)
