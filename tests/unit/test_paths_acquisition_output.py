"""unet_edge.paths.acquisition_output: names, calibration and the two formats, read back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import ConfigError, OutputError, OutputExistsError
from unet_edge.paths.acquisition_output import (
    FrameWriter,
    calibration_um,
    frame_stem,
    ome_attributes,
)
from unet_edge.runtime import Segmenter


def test_frame_stem_orders_axes_and_falls_back_to_the_arrival() -> None:
    assert frame_stem({"z": 1, "c": 0, "t": 12, "p": 2}, 5) == "p0002_t0012_z0001_c0000"
    assert frame_stem({"t": 1, "q": 3, "a": 2}, 5) == "t0001_a0002_q0003"
    assert frame_stem({}, 7) == "frame00007"


@pytest.mark.parametrize("size", [0, 0.0, None, "x", -1.0])
def test_no_pixel_size_means_no_calibration(size: object) -> None:
    assert calibration_um(size) is None


def test_pixel_size_is_micrometres() -> None:
    cal = calibration_um(0.65)
    assert cal is not None and (cal.x, cal.y, cal.unit) == (0.65, 0.65, "µm")


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def test_tiff_mask_and_labels_read_back(seg: Segmenter, tmp_path: Path) -> None:
    writer = FrameWriter(tmp_path / "new" / "masks", "tiff", seg)  # made when missing
    mask = np.zeros((8, 9), np.uint8)
    mask[2:5, 3:6] = 1
    labels = (mask * 7).astype(np.uint32)
    stem = writer.stem(SimpleNamespace(index={"t": 3}), 0)
    files = writer.write(stem, mask, labels, 0.5, {"event": {"index": {"t": 3}}})
    assert [f.name for f in files] == ["t0003_mask.tif", "t0003_labels.tif"]
    assert np.array_equal(tifffile.imread(files[0]), mask * 255)
    assert np.array_equal(tifffile.imread(files[1]), labels)
    assert io.read_calibration(files[0]) == io.read_calibration(files[1])
    assert io.read_provenance(files[0])["model_sha256"] == seg.provenance()["model_sha256"]
    # the same event index again (a repeated event) gets its arrival number too
    assert writer.stem(SimpleNamespace(index={"t": 3}), 4) == "t0003_frame00004"
    with pytest.raises(OutputExistsError, match=r"t0003_mask\.tif exists"):
        writer.write(stem, mask, None, 0.5, {})
    again = FrameWriter(tmp_path / "new" / "masks", "tiff", seg, overwrite=True)
    assert again.write(stem, mask, None, None, {})[0] == files[0]
    assert io.read_calibration(files[0]) is None  # rewritten without a pixel size


def test_refusals_name_what_was_received(seg: Segmenter, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format 'png'"):
        FrameWriter(tmp_path, "png", seg)
    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(OutputError, match="is a file"):
        FrameWriter(tmp_path / "a_file", "tiff", seg)
    (tmp_path / "t0000_mask.tif").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="already holds 1 outputs"):
        FrameWriter(tmp_path, "tiff", seg)


def test_ome_attributes_scale_and_unit() -> None:
    cal = calibration_um(0.2)
    ms = ome_attributes("x", cal)["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.2, 0.2]
    assert [a["unit"] for a in ms["axes"]] == ["micrometer"] * 2
    assert "unit" not in ome_attributes("x", None)["multiscales"][0]["axes"][0]


def test_ome_zarr_written_whole_and_replaced(seg: Segmenter, tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr", reason="OME-Zarr outputs need zarr (the [dask] extra)")
    if int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip(f"OME-Zarr outputs need zarr 3, found {zarr.__version__}")
    writer = FrameWriter(tmp_path, "ome-zarr", seg)
    mask = np.eye(6, dtype=np.uint8)
    (path,) = writer.write("p0001", mask, None, 0.3, {"event": {}})
    assert path.name == "p0001_mask.ome.zarr"
    group = zarr.open_group(str(path), mode="r")
    assert np.array_equal(group["0"][...], mask * 255)
    assert group.attrs["ome"]["version"] == "0.5" and group.attrs["unet_edge"]["output"] == "mask"
    over = FrameWriter(tmp_path, "ome-zarr", seg, overwrite=True)
    over.write("p0001", np.zeros((3, 4), np.uint8), None, None, {})
    assert zarr.open_group(str(path), mode="r")["0"].shape == (3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0001_mask.ome.zarr"]  # no temporaries


def test_ome_zarr_without_zarr_says_how_to_install_it(tiny_onnx: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "from unet_edge.paths.acquisition_output import FrameWriter\n"
        "from unet_edge.runtime import Segmenter\n"
        "from unet_edge.errors import ConfigError\n"
        f"seg = Segmenter({str(tiny_onnx)!r})\n"
        "try:\n    FrameWriter('out', 'ome-zarr', seg)\nexcept ConfigError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'zarr>=3'" in done.stdout, done.stderr
