"""Segmenting at the model's pixel size across paths: in memory, window by window, Dask, the
command line; placeholder calibrations and the 8x limit (issue 20, parts 1-3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge import Segmenter, io, processing, scale
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.errors import InputError
from unet_edge.imagemeta import Calibration
from unet_edge.paths import files, windowed


@pytest.fixture(scope="module")
def px_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random U-Net, stating that it was trained at 4 nm per pixel."""
    import onnx_models

    def edit(d: dict[str, Any]) -> None:
        d["pixel_size"] = {"y": 0.004, "x": 0.004, "unit": "µm"}

    path = tmp_path_factory.mktemp("px") / "px.onnx"
    return onnx_models.save_edited(path, UNetConfig(base_width=2), edit)


@pytest.fixture(scope="module")
def seg(px_onnx: Path) -> Segmenter:
    return Segmenter(px_onnx)


@pytest.fixture(scope="module")
def image(isbi_image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(isbi_image[:150, :130])


def _imagej(path: Path, image: np.ndarray, um: float) -> Path:
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / um, 1 / um), metadata={"unit": "um"})
    return path


def test_analyze_at_another_pixel_size_is_the_model_grid_run_resampled_back(
    seg: Segmenter, image: np.ndarray
) -> None:
    pred = seg.analyze(image, pixel_size=0.008)
    assert pred.probabilities.shape == (2, *image.shape)
    assert pred.rescale is not None and pred.rescale["factor"] == [2.0, 2.0]
    grid = scale.resolve(seg.info.pixel_size, 0.008, None).grid(image.shape)  # type: ignore[union-attr]
    by_hand = grid.back(seg.predict_frame(grid.image(image), seg.scaling_for(image)))
    assert np.array_equal(pred.probabilities, by_hand)
    assert not np.array_equal(pred.probabilities, seg.predict(image))
    assert np.array_equal(seg.segment(image, pixel_size="native"), seg.segment(image))
    assert np.array_equal(seg.segment(image, 0.004), seg.segment(image))  # factor 1
    stack = seg.segment([image, image[::-1]], pixel_size=0.002)
    assert stack.shape == (2, *image.shape)
    assert np.array_equal(stack[0], seg.segment(image, 0.002))
    labels = seg.label(image, pixel_size=0.008)
    assert labels.shape == image.shape and labels.dtype == np.uint32


def test_a_calibrated_tiff_is_rescaled_with_no_option_and_written_on_its_grid(
    seg: Segmenter, image: np.ndarray, tmp_path: Path
) -> None:
    src = _imagej(tmp_path / "a.tif", image, 0.008)
    r = files.segment_file(seg, src, tmp_path / "o", probabilities=True)
    mask = tifffile.imread(r.outputs["mask"])
    assert mask.shape == image.shape
    assert np.array_equal(mask, processing.mask_to_image(seg.segment(image, 0.008), 2))
    prov = io.read_provenance(r.outputs["mask"])
    assert prov["rescale"]["factor"] == [2.0, 2.0]
    assert prov["rescale"]["input_pixel_size_um"] == pytest.approx([0.008, 0.008])
    assert prov["rescale"]["model_pixel_size_um"] == [0.004, 0.004]
    cal = io.read_calibration(r.outputs["probabilities"])
    assert cal is not None and cal.x == pytest.approx(0.008) and cal.unit == "µm"
    assert tifffile.imread(r.outputs["probabilities"]).shape == (2, *image.shape)
    off = files.segment_file(seg, src, tmp_path / "n", pixel_size="native")
    assert np.array_equal(
        tifffile.imread(off.outputs["mask"]), processing.mask_to_image(seg.segment(image), 2)
    )
    assert "rescale" not in off.provenance


def test_a_stated_pixel_size_overrides_the_file_and_calibrates_the_outputs(
    seg: Segmenter, image: np.ndarray, tmp_path: Path
) -> None:
    io.write_png(tmp_path / "a.png", image)
    r = files.segment_file(seg, tmp_path / "a.png", tmp_path / "o", pixel_size=0.002)
    assert np.array_equal(
        io.read_image(r.outputs["mask"]), processing.mask_to_image(seg.segment(image, 0.002), 2)
    )
    assert r.provenance["rescale"]["pixel_size_stated"] is True
    src = _imagej(tmp_path / "b.tif", image, 0.008)
    r = files.segment_file(seg, src, tmp_path / "o2", pixel_size=0.002)
    cal = io.read_calibration(r.outputs["mask"])
    assert cal is not None and cal.x == pytest.approx(0.002)
    w = files.segment_file(seg, src, tmp_path / "o3", pixel_size=0.002, large=True)
    cal = io.read_calibration(w.outputs["mask"])
    assert cal is not None and cal.x == pytest.approx(0.002)
    assert np.array_equal(tifffile.imread(w.outputs["mask"]), tifffile.imread(r.outputs["mask"]))


@pytest.mark.parametrize("um", [0.008, 0.0023])
def test_windowed_equals_in_memory_bit_for_bit_with_rescaling(
    seg: Segmenter, image: np.ndarray, tmp_path: Path, um: float
) -> None:
    src = _imagej(tmp_path / "a.tif", image, um)
    whole = seg.analyze(image, pixel_size=um).probabilities
    rescale = scale.resolve(seg.info.pixel_size, None, Calibration(um, um))
    assert rescale is not None
    grid = rescale.grid(image.shape)
    plan = seg.plan_for(grid.model_shape)
    read = windowed.tiling.array_reader(image)
    for region in [(0, 0, 40, 48), (37, 61, 50, 69), (149, 129, 1, 1)]:
        part = windowed.run_region(seg, plan, read, region, seg.scaling_for(image), grid)
        t, lf, h, w = region
        assert np.array_equal(part, whole[:, t : t + h, lf : lf + w]), region
    mem = files.segment_file(seg, src, tmp_path / "m", large=False)
    win = files.segment_file(seg, src, tmp_path / "w", large=True)
    assert win.windowed and not mem.windowed
    assert np.array_equal(
        tifffile.imread(win.outputs["mask"]), tifffile.imread(mem.outputs["mask"])
    )
    assert win.provenance["rescale"] == mem.provenance["rescale"]


def test_windowed_with_small_windows_equals_in_memory(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    big = np.ascontiguousarray(isbi_image[:300, :260])
    src = _imagej(tmp_path / "big.tif", big, 0.003)
    out = windowed.segment_large(seg, src, tmp_path / "big_mask.tif", memory_budget=1 << 20)
    want = processing.mask_to_image(seg.segment(big, pixel_size=0.003), 2)
    assert np.array_equal(tifffile.imread(out), want)


def test_dask_equals_in_memory_bit_for_bit_with_rescaling(
    seg: Segmenter, isbi_image: np.ndarray
) -> None:
    pytest.importorskip("dask")
    from unet_edge.paths.dask import segment_dask

    big = np.ascontiguousarray(isbi_image[:300, :260])
    for um in (0.008, 0.0032):  # enlarged, shrunk
        lazy = segment_dask(big, segmenter=seg, chunk=128, probabilities=True, pixel_size=um)
        assert len(lazy.chunks[1]) > 1  # really cut into chunks
        got = lazy.compute(scheduler="synchronous")
        assert np.array_equal(got, seg.predict(big, pixel_size=um)), um


def test_a_72_dpi_placeholder_is_uncalibrated_with_a_note_and_the_same_mask(
    seg: Segmenter, image: np.ndarray, tmp_path: Path
) -> None:
    tifffile.imwrite(tmp_path / "p.tif", image, resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "u.tif", image)
    p = files.segment_file(seg, tmp_path / "p.tif", tmp_path / "o")
    u = files.segment_file(seg, tmp_path / "u.tif", tmp_path / "o")
    assert "72 dpi" in p.provenance["calibration_note"]
    assert "rescale" not in p.provenance
    assert np.array_equal(tifffile.imread(p.outputs["mask"]), tifffile.imread(u.outputs["mask"]))
    assert io.read_calibration(p.outputs["mask"]) is None
    with tifffile.TiffFile(p.outputs["mask"]) as tf:
        assert "micron" not in (tf.pages.first.description or "")
    for dpi in (96, 150, 300):
        tifffile.imwrite(tmp_path / "d.tif", image, resolution=(dpi, dpi), resolutionunit="INCH")
        assert io.read_calibration(tmp_path / "d.tif") is None, dpi
    tifffile.imwrite(tmp_path / "r.tif", image, resolution=(2540, 2540), resolutionunit="INCH")
    assert io.read_calibration(tmp_path / "r.tif") == Calibration(10.0, 10.0, "µm")
    ij = _imagej(tmp_path / "ij.tif", image, 1 / 72)  # ImageJ says so: a calibration, taken
    assert io.read_calibration(ij) == Calibration(1 / 72, 1 / 72, "µm")


def test_cli_rescales_with_no_option_and_refuses_beyond_8x_naming_both_sizes(
    px_onnx: Path, seg: Segmenter, image: np.ndarray, tmp_path: Path
) -> None:
    runner = CliRunner()
    src = _imagej(tmp_path / "a.tif", image, 0.008)
    r = runner.invoke(main, ["run", "-m", str(px_onnx), str(src), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    want = processing.mask_to_image(seg.segment(image, 0.008), 2)
    assert np.array_equal(tifffile.imread(tmp_path / "o" / "a_mask.tif"), want)
    far = _imagej(tmp_path / "far.tif", image, 0.05)
    r = runner.invoke(main, ["run", "-m", str(px_onnx), str(far), "-o", str(tmp_path / "f")])
    line = one_line_error(r)
    assert "0.05 µm" in line and "0.004 µm" in line and "--pixel-size" in line
    r = runner.invoke(
        main,
        ["run", "-m", str(px_onnx), str(far), "-o", str(tmp_path / "f"), "--pixel-size", "0.05"],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main, ["run", "-m", str(px_onnx), str(src), "-o", str(tmp_path / "b"), "--pixel-size", "x"]
    )
    assert "neither a number of micrometres" in one_line_error(r)
    assert not (tmp_path / "b").exists()


def test_info_shows_the_models_pixel_size(px_onnx: Path, tiny_onnx: Path) -> None:
    r = CliRunner().invoke(main, ["info", "-m", str(px_onnx)])
    assert r.exit_code == 0 and "pixel size 0.004 x 0.004 µm" in r.output, r.output
    r = CliRunner().invoke(main, ["info", "-m", str(tiny_onnx)])
    assert "pixel size unknown" in r.output, r.output


def test_a_stream_given_the_pixel_size_once_equals_in_memory(
    seg: Segmenter, image: np.ndarray
) -> None:
    frames = [image, image[::-1].copy(), image[:, ::-1].copy()]
    got = list(seg.stream(frames, probabilities=True, drop="none", pixel_size=0.0025))
    assert [r.index for r in got] == [0, 1, 2]
    for frame, r in zip(frames, got, strict=True):
        assert r.probabilities is not None and r.probabilities.shape == (2, *image.shape)
        assert np.array_equal(r.probabilities, seg.predict(frame, pixel_size=0.0025))
    with pytest.raises(InputError, match="micrometres per pixel"):
        seg.stream(frames, pixel_size="big")


def test_napari_segments_a_layer_at_the_model_pixel_size_from_its_scale_and_units(
    seg: Segmenter, image: np.ndarray
) -> None:
    from unet_edge.napari._segment import layer_calibration, provenance, segment_steps

    place = {"scale": (0.008, 0.008), "units": ("micrometer", "micrometer")}
    cal = layer_calibration(place, image.ndim)
    assert cal == Calibration(0.008, 0.008, "µm")
    steps = segment_steps(seg, image, cal)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            pred = done.value
            break
    assert np.array_equal(pred.mask, seg.segment(image, pixel_size=0.008))
    assert provenance(seg, pred, "layer")["rescale"]["factor"] == [2.0, 2.0]
    pixels = {"scale": (1.0, 1.0), "units": ("pixel", "pixel")}  # napari's default: as it is
    assert layer_calibration(pixels, 2) is None


def test_a_package_states_the_pixel_size_as_its_space_axes_scale_and_reads_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("bioimageio.spec", reason="needs the [bioimageio] extra")
    import zipfile
    from types import SimpleNamespace

    from bioimageio.spec.model import v0_5 as v

    from unet_edge.metadata import PixelSize
    from unet_edge.models.bioimage import axes_pixel_size
    from unet_edge.runtime import default_model_path
    from unet_edge.training.package import write_package

    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "bcache"))
    out = write_package(default_model_path(), tmp_path / "isbi.zip")
    with zipfile.ZipFile(out) as z:
        rdf = z.read("rdf.yaml").decode()
    assert rdf.count("unit: micrometer") == 4 and rdf.count("scale: 0.004") == 4
    assert Segmenter(out).info.pixel_size == PixelSize(0.004, 0.004)
    size = v.ParameterizedSize(min=64, step=16)
    axes = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier("raw")])]
    nm = [v.SpaceInputAxis(id=v.AxisId(a), size=size, scale=8, unit="nanometer") for a in "yx"]
    plain = [v.SpaceInputAxis(id=v.AxisId(a), size=size) for a in "yx"]
    found = axes_pixel_size(SimpleNamespace(inputs=[SimpleNamespace(axes=axes + nm)]))
    assert found == PixelSize(0.008, 0.008)
    assert axes_pixel_size(SimpleNamespace(inputs=[SimpleNamespace(axes=axes + plain)])) is None


@pytest.mark.slow
def test_train_pixel_size_goes_into_the_checkpoint_then_the_exported_metadata(
    isbi: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from unet_edge import metadata
    from unet_edge.metadata import PixelSize
    from unet_edge.training import checkpoint
    from unet_edge.training.export import export_checkpoint

    ck = tmp_path / "t.pt"
    args = ["train", str(isbi / "train"), "-o", str(ck), "--width", "2", "--depth", "2"]
    args += ["--tile", "124", "--steps", "2", "--train-names", "00", "--pixel-size", "0.004"]
    r = CliRunner().invoke(main, [*args, "-q"])
    assert r.exit_code == 0, r.output
    assert checkpoint.load(ck).training["config"]["pixel_size"] == 0.004
    export_checkpoint(ck, tmp_path / "t.onnx")
    assert metadata.read(tmp_path / "t.onnx").pixel_size == PixelSize(0.004, 0.004)
    bad = CliRunner().invoke(main, [*args[:-1], "0", "--overwrite"])
    assert bad.exit_code == 2 and "--pixel-size" in bad.output


def test_train_config_checks_the_pixel_size() -> None:
    pytest.importorskip("torch")
    from unet_edge.errors import ConfigError
    from unet_edge.training.config import TrainConfig

    assert TrainConfig(pixel_size=0.004).to_dict()["pixel_size"] == 0.004
    assert TrainConfig().pixel_size is None
    with pytest.raises(ConfigError, match="pixel size"):
        TrainConfig(pixel_size=-1.0)


def test_files_on_a_dask_cluster_equal_in_memory_with_rescaling(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    big = np.ascontiguousarray(isbi_image[:300, :260])
    src = _imagej(tmp_path / "big.tif", big, 0.0032)
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        r = files.segment_file(seg, src, tmp_path / "c", dask_client=client)
    assert r.windowed and r.provenance["rescale"]["factor"] == [0.8, 0.8]
    want = processing.mask_to_image(seg.segment(big, pixel_size=0.0032), 2)
    assert np.array_equal(tifffile.imread(r.outputs["mask"]), want)
