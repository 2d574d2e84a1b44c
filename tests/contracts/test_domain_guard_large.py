"""The domain guard on the large-image paths: ``segment_large`` / ``run --large`` (also at a
stated pixel size), the Dask cluster path and ``segment_to_zarr`` score an image from the
feature windows kept while it is processed, and the score equals the in-memory path's
exactly (same windows, pixels, scaling and probabilities); it is in the provenance of every
output, and ``run --large`` warns as ``run`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter, io, scale
from unet_edge.cli import main
from unet_edge.paths.windowed import ObjectFiles, segment_large, segment_windows


@pytest.fixture(scope="module")
def mosaic(em: list[np.ndarray]) -> np.ndarray:
    """A 1000 x 900 mosaic of the slices: several windows and bands."""
    rows = [np.concatenate(em[:2], 1), np.concatenate(em[1:], 1)]
    return np.concatenate(rows, 0)[:1000, :900]


@pytest.mark.parametrize("ome", [False, True])
def test_segment_large_scores_exactly_as_in_memory(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path, ome: bool
) -> None:
    io.write_tiff(tmp_path / "big.tif", mosaic)
    files = ObjectFiles(labels=tmp_path / "labels.tif")
    with Segmenter(guarded) as seg:
        expected = seg.analyze(mosaic).quality_record()
        with io.TiffWindows(tmp_path / "big.tif") as src:
            prov = segment_windows(
                seg, src, tmp_path / "mask.tif", memory_budget=8 << 20, ome=ome, objects=files
            )
    assert expected is not None and prov["quality"] == expected
    assert io.read_provenance(tmp_path / "mask.tif")["quality"] == expected
    assert io.read_provenance(tmp_path / "labels.tif")["quality"] == expected
    assert "tile_plan" in prov and len(prov["tile_plan"]) > 0


def test_at_a_stated_pixel_size_the_score_is_taken_on_the_models_grid(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    io.write_tiff(tmp_path / "big.tif", mosaic)
    with Segmenter(guarded) as seg:
        told = scale.resolve(seg.info.pixel_size, 0.003, None)
        expected = seg.analyze(mosaic, pixel_size=told).quality_record()
        out = segment_large(seg, tmp_path / "big.tif", tmp_path / "m.tif", pixel_size=0.003)
    prov = io.read_provenance(out)
    assert prov["rescale"]["factor"] == [0.75, 0.75]
    assert expected is not None and prov["quality"] == expected


def test_run_large_warns_on_an_image_unlike_the_training_data(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (700, 600)).astype(np.uint8)
    io.write_tiff(tmp_path / "noise.tif", noise)
    io.write_tiff(tmp_path / "em.tif", mosaic)
    runner = CliRunner()
    for name, foreign in (("noise", True), ("em", False)):
        args = ["run", str(tmp_path / f"{name}.tif"), "-m", str(guarded), "--large"]
        r = runner.invoke(main, [*args, "-o", str(tmp_path / "o"), "--pixel-size", "native"])
        assert r.exit_code == 0, r.output
        warning = f"Warning: {tmp_path / f'{name}.tif'} looks unlike the training data of tiny-em"
        assert r.stderr.startswith(warning) == foreign, r.stderr
        with Segmenter(guarded) as seg:
            image = io.read_image(tmp_path / f"{name}.tif")
            expected = seg.analyze(image).quality_record()
        prov = io.read_provenance(tmp_path / "o" / f"{name}_mask.tif")
        assert prov["quality"] == expected and prov["quality"][0]["in_domain"] is not foreign


def test_a_model_without_statistics_records_no_quality(
    tiny_onnx: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    io.write_tiff(tmp_path / "big.tif", mosaic[:300, :300])
    with Segmenter(tiny_onnx) as seg:
        out = segment_large(seg, tmp_path / "big.tif", tmp_path / "m.tif")
    assert io.read_provenance(out)["quality"] is None


def test_segment_to_zarr_records_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    zarr = pytest.importorskip("zarr", reason="needs the [dask] extra")
    pytest.importorskip("dask.array", reason="needs the [dask] extra")
    from unet_edge.paths.dask import segment_to_zarr

    image = mosaic[:600, :700]
    with Segmenter(guarded) as seg:
        expected = seg.analyze(image).quality_record()
        want = seg.segment(image)
        segment_to_zarr(image, tmp_path / "m.zarr", segmenter=seg, chunk=256)
    z = zarr.open_array(str(tmp_path / "m.zarr"), mode="r")
    assert z.attrs["unet_edge"]["quality"] == expected
    assert np.array_equal(z[:], want)  # the mask made from the probabilities is the mask


@pytest.mark.dask
def test_on_a_cluster_the_score_equals_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    from unet_edge.paths import cluster

    tifffile.imwrite(tmp_path / "big.tif", mosaic)
    with Segmenter(guarded) as seg:
        expected = seg.analyze(mosaic).quality_record()
        with (
            io.TiffWindows(tmp_path / "big.tif") as src,
            distributed.LocalCluster(
                n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
            ) as lc,
            distributed.Client(lc) as client,
        ):
            prov = cluster.segment_windows_dask(
                seg, src, tmp_path / "m.tif", client=client, chunk=256
            )
    assert expected is not None and prov["quality"] == expected
    assert io.read_provenance(tmp_path / "m.tif")["quality"] == expected
