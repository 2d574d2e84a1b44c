"""Labels exact at any size: the window-by-window path and Dask give the labels (id for id)
and the object table of labelling and measuring the whole mask in memory."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io
from unet_edge.cli import main
from unet_edge.errors import ConfigError, InputError, OutputError
from unet_edge.imagemeta import Calibration
from unet_edge.objects.labels import label, object_mask
from unet_edge.paths.files import segment_file
from unet_edge.paths.windowed import ObjectFiles, WindowObjects, output_windows, segment_large
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def mosaic(isbi: Path) -> np.ndarray:
    """A 1100x1300 uint16 mosaic of real ISBI frames (12-bit range)."""
    frames = [io.read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in range(4)]
    rows = [np.hstack([frames[0], frames[1][:, ::-1], frames[2]])]
    rows.append(np.hstack([frames[3], frames[2][::-1], frames[1]]))
    return np.vstack(rows)[:1100, :1300].astype(np.uint16) * 16


@pytest.fixture(scope="module")
def mosaic_tif(mosaic: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mosaic as an uncompressed ImageJ TIFF with a pixel size of 0.5 um."""
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.tif"
    io.write_tiff(path, mosaic, {}, axes="YX", calibration=Calibration(0.5, 0.5, "µm"))
    return path


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_windowed_files_equal_in_memory_files(
    tiny_onnx: Path, mosaic_tif: Path, tmp_path: Path
) -> None:
    seg = Segmenter(tiny_onnx, tile=300)  # many windows: 4 x 4 of them
    asked = {"labels": True, "measure": True, "min_size": "2um2"}
    whole = segment_file(seg, mosaic_tif, tmp_path / "mem", large=False, **asked)
    windowed = segment_file(seg, mosaic_tif, tmp_path / "win", large=True, **asked)
    assert windowed.windowed and not whole.windowed
    labels = tifffile.imread(windowed.outputs["labels"])
    assert labels.dtype == np.uint16 and labels.max() > 100
    assert np.array_equal(labels, tifffile.imread(whole.outputs["labels"]))
    assert _csv(windowed.outputs["objects"]) == _csv(whole.outputs["objects"])  # same text
    # and those are the components of the mask (min size 2 um2 = 8 px at 0.5 um)
    mask = seg.segment(tifffile.imread(mosaic_tif))
    assert np.array_equal(labels, label(object_mask(mask, seg.info.object_classes), min_size=8))
    prov = io.read_provenance(windowed.outputs["labels"])
    assert prov["objects"] == io.read_provenance(whole.outputs["labels"])["objects"]
    with tifffile.TiffFile(windowed.outputs["labels"]) as tf:  # strips, ImageJ, calibrated
        assert tf.is_imagej and not tf.pages.first.is_tiled
        assert tf.pages.first.resolution == pytest.approx((2.0, 2.0))


def test_windowed_objects_past_uint16(tmp_path: Path) -> None:
    """67,600 objects, one per window pixel grid point: uint32 labels, striped, ImageJ."""
    h, w = 520, 650
    mask = np.zeros((h, w), np.uint8)
    mask[::2, ::2] = 1
    files = ObjectFiles(tmp_path / "labels.tif", tmp_path / "objects.csv")
    found = WindowObjects((h, w), [1], files)
    for region in output_windows((h, w), (112, 208)):
        t, lf, hh, ww = region
        found.add(region, mask[t : t + hh, lf : lf + ww], None)
    found.write({"source": "synthetic"}, Calibration(2.0, 2.0, "µm"))
    got = tifffile.imread(files.labels)
    assert got.dtype == np.uint32 and np.array_equal(got, label(mask.astype(bool)))
    assert got.max() == 260 * 325
    with tifffile.TiffFile(files.labels) as tf:
        assert tf.is_imagej and tf.imagej_metadata["unit"] == "micron"
    assert io.read_provenance(files.labels)["source"] == "synthetic"
    rows = _csv(files.table)
    assert rows[0][:3] == ["label", "slice", "area_um2"] and len(rows) == 260 * 325 + 1
    assert rows[1][2] == "4" and rows[1][9] == "8"  # 1 px of 2 um: 4 um2, perimeter 8 um


def test_windowed_refusals(tiny_onnx: Path, mosaic_tif: Path, tmp_path: Path) -> None:
    seg = Segmenter(tiny_onnx)
    with pytest.raises(InputError, match="mask, the labels and the object table only"):
        segment_file(seg, mosaic_tif, tmp_path, large=True, labels=True, rois=True)
    assert not list(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(ConfigError, match="unknown split 'voronoi'"):
        files = ObjectFiles(tmp_path / "l.tif", split="voronoi")
        segment_large(seg, mosaic_tif, tmp_path / "m.tif", objects=files)


def test_a_failed_object_output_takes_the_mask_with_it(
    tiny_onnx: Path, mosaic_tif: Path, tmp_path: Path
) -> None:
    seg = Segmenter(tiny_onnx)
    files = ObjectFiles(labels=tmp_path / "gone" / "labels.tif")  # no such folder
    with pytest.raises(OutputError, match="does not exist"):
        segment_large(seg, mosaic_tif, tmp_path / "mask.tif", objects=files)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("chunks", [(17, 23), (64, 5), (1, 200), (200, 200)])
def test_label_dask_equals_whole_image(chunks: tuple[int, int]) -> None:
    da = pytest.importorskip("dask.array")
    from unet_edge.paths.dask import label_dask

    rng = np.random.default_rng(sum(chunks))
    mask = rng.random((150, 200)) < 0.55
    mask[70, :] = True  # one component through every chunk
    lazy = label_dask(da.from_array(mask, chunks=chunks), min_size=3)
    assert lazy.dtype == np.uint32 and lazy.chunks == da.from_array(mask, chunks=chunks).chunks
    assert np.array_equal(lazy.compute(scheduler="threads"), label(mask, min_size=3))


def test_dask_mask_then_labels_equal_segmenter_label(tiny_onnx: Path, mosaic: np.ndarray) -> None:
    pytest.importorskip("dask.array")
    from unet_edge.objects.labels import object_mask as objects_of
    from unet_edge.paths.dask import label_dask, segment_dask

    seg = Segmenter(tiny_onnx, tile=300)
    image = mosaic[:700, :900]
    mask = segment_dask(image, tiny_onnx, segmenter=seg, chunk=300)
    objects = mask.map_blocks(objects_of, seg.info.object_classes, dtype=bool)
    got = label_dask(objects).compute(scheduler="threads")
    assert np.array_equal(got, seg.label(image)) and got.max() > 50
    with pytest.raises(InputError, match="bool"):
        label_dask(mask)
    with pytest.raises(InputError, match="watershed"):
        label_dask(objects, split="watershed")


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
@pytest.mark.dask
def test_cli_large_and_dask_local_equal_in_memory(
    tiny_onnx: Path, mosaic_tif: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    common = [str(mosaic_tif), "-m", str(tiny_onnx), "--tile", "300", "--labels", "--measure"]
    common += ["--min-size", "10px"]
    for name, extra in (("mem", []), ("large", ["--large"]), ("dask", ["--dask", "local:2"])):
        _run([*common, "-o", str(tmp_path / name), *extra])
    for out in ("mosaic_mask.tif", "mosaic_labels.tif"):
        want = tifffile.imread(tmp_path / "mem" / out)
        for name in ("large", "dask"):
            assert np.array_equal(tifffile.imread(tmp_path / name / out), want), (name, out)
    want_rows = _csv(tmp_path / "mem" / "mosaic_objects.csv")
    assert len(want_rows) > 100
    for name in ("large", "dask"):
        assert _csv(tmp_path / name / "mosaic_objects.csv") == want_rows, name
    prov = io.read_provenance(tmp_path / "dask" / "mosaic_labels.tif")
    assert prov["dask"]["workers"] == 2


def test_cli_refuses_rois_window_by_window(
    tiny_onnx: Path, mosaic_tif: Path, tmp_path: Path
) -> None:
    base = ["run", str(mosaic_tif), "-m", str(tiny_onnx), "-o", str(tmp_path / "o"), "--large"]
    result = CliRunner().invoke(main, [*base, "--rois"])
    assert result.exit_code == 1 and "--rois" in result.output
    result = CliRunner().invoke(main, [*base[:-1], "--dask", "no such address"])
    assert result.exit_code == 1 and "--dask tcp://HOST:PORT" in result.output
    assert not (tmp_path / "o").exists()


def test_dask_progress_bar_draws_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from unet_edge.cli import options, run

    out = options.Reporter()
    with run._bands_bar(None, "x") as none:
        assert none is None  # not a --dask run
    monkeypatch.setattr(options.Reporter, "bars", property(lambda self: True))
    with run._bands_bar(out, "big.tif") as update:
        assert update is not None
        for done in range(1, 5):
            update(done, 4)
    # click draws the bar itself only on a real terminal; here it prints its label once
    assert capsys.readouterr().err.strip() == "big.tif"
