"""Rescaling meets the large-image paths: the in-memory-or-windowed decision is made at the
size the kernel runs at (the model's grid), and ``segment_to_zarr`` records the resampling it
ran as the file paths do (issue 20's leftovers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from unet_edge import Segmenter, io, processing, scale
from unet_edge.config import UNetConfig
from unet_edge.errors import InputError
from unet_edge.imagemeta import Calibration
from unet_edge.paths import files


@pytest.fixture(scope="module")
def seg(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """The tiny random U-Net, stating that it was trained at 4 nm per pixel."""
    import onnx_models

    def edit(d: dict[str, Any]) -> None:
        d["pixel_size"] = {"y": 0.004, "x": 0.004, "unit": "µm"}

    path = tmp_path_factory.mktemp("px") / "px.onnx"
    return Segmenter(onnx_models.save_edited(path, UNetConfig(base_width=2), edit))


def _imagej(path: Path, image: np.ndarray, um: float) -> Path:
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / um, 1 / um), metadata={"unit": "um"})
    return path


def _estimates(seg: Segmenter, src: Path, um: float) -> tuple[int, int]:
    """(bytes at the input's size, bytes at the model's) of ``src`` imaged at ``um``."""
    header = io.image_header(src)
    rescale = scale.resolve(seg.info.pixel_size, None, Calibration(um, um, "µm"))
    assert rescale is not None
    return files.in_memory_bytes(header, 2), files.in_memory_bytes(header, 2, rescale)


def test_an_image_enlarged_a_lot_goes_window_by_window_with_the_same_mask(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    image = np.ascontiguousarray(isbi_image[:150, :130])
    src = _imagej(tmp_path / "a.tif", image, 0.016)  # 4x the model's: 16x the pixels
    own, model = _estimates(seg, src, 0.016)
    assert model > 8 * own
    limit = (own + model) // 2  # fits at the input's size, not at the model's
    r = files.segment_file(seg, src, tmp_path / "o", memory_limit=limit)
    assert r.windowed  # was kept in memory, then refused by the memory there is
    want = processing.mask_to_image(seg.segment(image, pixel_size=0.016), 2)
    assert np.array_equal(tifffile.imread(r.outputs["mask"]), want)
    assert r.provenance["rescale"]["factor"] == [4.0, 4.0]
    check = files.preflight(seg, files.plan_files([src], tmp_path / "p")[0], memory_limit=limit)
    assert check.windowed and check.in_memory == model


def test_an_image_enlarged_a_lot_that_cannot_be_windowed_is_refused_with_the_model_grid_size(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    image = np.ascontiguousarray(isbi_image[:150, :130])
    io.write_png(tmp_path / "a.png", image)
    header = io.image_header(tmp_path / "a.png")
    rescale = scale.resolve(seg.info.pixel_size, 0.016, None)
    own, model = files.in_memory_bytes(header, 2), files.in_memory_bytes(header, 2, rescale)
    limit = (own + model) // 2
    with pytest.raises(InputError) as e:
        files.segment_file(
            seg, tmp_path / "a.png", tmp_path / "o", memory_limit=limit, pixel_size=0.016
        )
    text = str(e.value)
    assert f"about {files._gib(model)}" in text and "resampled 4x" in text, text
    assert "only TIFFs" in text and not (tmp_path / "o").exists()
    # the same image at its own pixel size fits
    r = files.segment_file(seg, tmp_path / "a.png", tmp_path / "n", memory_limit=limit)
    assert not r.windowed


def test_an_image_shrunk_a_lot_stays_in_memory(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    image = np.ascontiguousarray(isbi_image[:300, :260])
    src = _imagej(tmp_path / "a.tif", image, 0.0016)  # 0.4x: a sixth of the pixels
    own, model = _estimates(seg, src, 0.0016)
    # the input's grid still holds the image, the probabilities resampled back and the masks
    assert own > 1.2 * model
    limit = (own + model) // 2  # too big at the input's size, fits at the model's
    r = files.segment_file(seg, src, tmp_path / "o", memory_limit=limit)
    assert not r.windowed  # was sent window by window needlessly
    want = processing.mask_to_image(seg.segment(image, pixel_size=0.0016), 2)
    assert np.array_equal(tifffile.imread(r.outputs["mask"]), want)
    # stated: the same decision, from the stated pixel size rather than the file's
    native = files.segment_file(
        seg, src, tmp_path / "n", memory_limit=limit, pixel_size="native", large=None
    )
    assert native.windowed


def test_a_calibration_too_far_from_the_models_is_refused_before_any_output(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    from unet_edge.errors import ScaleError

    src = _imagej(tmp_path / "a.tif", np.ascontiguousarray(isbi_image[:64, :64]), 0.1)
    plan = files.plan_files([src], tmp_path / "o")[0]
    with pytest.raises(ScaleError, match="more than 8x"):
        files.preflight(seg, plan)
    assert not (tmp_path / "o").exists()


def test_segment_to_zarr_records_the_rescale_and_model_grid_plan_as_the_file_paths_do(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    zarr = pytest.importorskip("zarr", reason="needs the [dask] extra")
    from unet_edge.paths.dask import segment_to_zarr

    image = np.ascontiguousarray(isbi_image[:300, :260])
    src = _imagej(tmp_path / "a.tif", image, 0.008)
    memory = files.segment_file(seg, src, tmp_path / "m").provenance
    large = files.segment_file(seg, src, tmp_path / "w", large=True).provenance
    out = segment_to_zarr(src, tmp_path / "a.zarr", segmenter=seg, chunk=128)
    z = zarr.open_array(str(out), mode="r")
    prov = dict(z.attrs)["unet_edge"]
    assert prov["rescale"] == memory["rescale"] == large["rescale"]
    assert prov["rescale"]["factor"] == [2.0, 2.0]
    assert prov["tile_plan"] == memory["tile_plan"]  # the plan of the model's grid
    assert prov["tile_plan"] == repr(seg.plan_for((600, 520)))
    assert prov["source"] == memory["source"] == large["source"] == "a.tif"
    assert prov["normalization"] == memory["normalization"]
    assert np.array_equal(z[:], seg.segment(image, pixel_size=0.008))
    # a stated pixel size wins over the file's; "native" runs it as it is, with no entry
    stated = segment_to_zarr(src, tmp_path / "s.zarr", segmenter=seg, chunk=128, pixel_size=0.002)
    assert dict(zarr.open_array(str(stated), mode="r").attrs)["unet_edge"]["rescale"]["factor"] == [
        0.5,
        0.5,
    ]
    native = segment_to_zarr(
        src, tmp_path / "n.zarr", segmenter=seg, chunk=128, pixel_size="native"
    )
    zn = zarr.open_array(str(native), mode="r")
    assert "rescale" not in dict(zn.attrs)["unet_edge"]
    assert dict(zn.attrs)["unet_edge"]["tile_plan"] == repr(seg.plan_for(image.shape))
    assert np.array_equal(zn[:], seg.segment(image))


def test_segment_to_zarr_of_an_array_at_a_pixel_size_records_it(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    zarr = pytest.importorskip("zarr", reason="needs the [dask] extra")
    from unet_edge.paths.dask import segment_to_zarr

    image = np.ascontiguousarray(isbi_image[:300, :260])
    out = segment_to_zarr(image, tmp_path / "a.zarr", segmenter=seg, chunk=128, pixel_size=0.0032)
    prov = dict(zarr.open_array(str(out), mode="r").attrs)["unet_edge"]
    assert prov["rescale"] == seg.analyze(image, pixel_size=0.0032).rescale
    assert prov["tile_plan"] == repr(seg.plan_for((240, 208)))
