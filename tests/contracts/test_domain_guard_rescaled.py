"""The domain guard on Dask runs that resample the image to the model's pixel size: each
chunk runs the kernel on the model's grid and returns the parts of the guard's feature
windows it computed there, so ``segment_dask`` + ``dask_quality``, ``segment_to_zarr`` and
the cluster path (``run --dask --pixel-size``) record the in-memory score at that pixel size
exactly; and computing the score with the result computes each chunk once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx_models
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter, io, scale
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.errors import InputError

dask = pytest.importorskip("dask", reason="needs the [dask] extra")
pytest.importorskip("dask.array", reason="needs the [dask] extra")

from unet_edge.paths import dask as dask_path  # noqa: E402  (needs the [dask] extra)
from unet_edge.paths.quality import dask_quality  # noqa: E402


@pytest.fixture(scope="module")
def mosaic(em: list[np.ndarray]) -> np.ndarray:
    """A 600 x 700 mosaic of the slices."""
    rows = [np.concatenate(em[:2], 1), np.concatenate(em[1:], 1)]
    return np.ascontiguousarray(np.concatenate(rows, 0)[:600, :700])


@pytest.fixture
def chunks_run(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The regions every Dask chunk ran the kernel for (in this process)."""
    seen: list[Any] = []
    real = dask_path.run_region

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(dask_path, "run_region", counted)
    return seen


@pytest.mark.parametrize("um", [0.003, 0.005])  # shrunk to the model's grid, enlarged
def test_dask_quality_of_a_resampled_image_is_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, um: float, chunks_run: list[Any]
) -> None:
    with Segmenter(guarded) as seg:
        expected = seg.analyze(mosaic, pixel_size=um).quality
        native = seg.analyze(mosaic).quality
        probs = dask_path.segment_dask(
            mosaic, segmenter=seg, chunk=256, probabilities=True, pixel_size=um
        )
        assert len(probs.chunks[1]) > 1 and len(probs.chunks[2]) > 1  # really cut
        alone = probs.argmax(0).compute(scheduler="synchronous")
        once = len(chunks_run)
        chunks_run.clear()
        mask, got = dask.compute(
            probs.argmax(0), dask_quality(probs, mosaic, seg, pixel_size=um), scheduler="sync"
        )
    assert expected is not None and native is not None
    assert got == expected[0]  # every feature, z and percentile: the same pixels
    assert got != native[0]  # scored on the model's grid, not the input's
    assert np.array_equal(mask, alone)
    assert len(chunks_run) == once == probs.numblocks[1] * probs.numblocks[2]


def test_segment_to_zarr_at_a_pixel_size_records_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path, chunks_run: list[Any]
) -> None:
    zarr = pytest.importorskip("zarr", reason="needs the [dask] extra")
    with Segmenter(guarded) as seg:
        expected = seg.analyze(mosaic, pixel_size=0.005).quality_record()
        want = seg.segment(mosaic, pixel_size=0.005)
        dask_path.segment_to_zarr(
            mosaic, tmp_path / "m.zarr", segmenter=seg, chunk=256, pixel_size=0.005
        )
    z = zarr.open_array(str(tmp_path / "m.zarr"), mode="r")
    assert expected is not None and z.attrs["unet_edge"]["quality"] == expected
    assert np.array_equal(z[:], want)
    assert len(chunks_run) == len(set(chunks_run)) == 6  # each chunk once (2 x 3)


def test_without_a_resampling_each_chunk_is_computed_once_with_its_score(
    guarded: Path, mosaic: np.ndarray, chunks_run: list[Any]
) -> None:
    with Segmenter(guarded, tile=300) as seg:
        expected = seg.analyze(mosaic).quality
        probs = dask_path.segment_dask(mosaic, segmenter=seg, chunk=200, probabilities=True)
        mask, got = dask.compute(probs.argmax(0), dask_quality(probs, mosaic, seg))
        assert np.array_equal(mask, seg.predict(mosaic).argmax(0))
    assert expected is not None and got == expected[0]
    assert probs.numblocks[1] * probs.numblocks[2] > 1
    assert len(chunks_run) == probs.numblocks[1] * probs.numblocks[2]


def test_a_model_without_statistics_scores_none_at_a_pixel_size(
    tmp_path: Path, mosaic: np.ndarray
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pixel_size"] = {"y": 0.004, "x": 0.004, "unit": "µm"}

    plain = onnx_models.save_edited(tmp_path / "px.onnx", UNetConfig(base_width=2), edit)
    with Segmenter(plain) as seg:
        probs = dask_path.segment_dask(mosaic, segmenter=seg, chunk=256, probabilities=True)
        assert dask_quality(probs, mosaic, seg, pixel_size=0.005).compute() is None
        lazy = dask_path.segment_dask(
            mosaic, segmenter=seg, chunk=256, probabilities=True, pixel_size=0.005
        )
        assert lazy.compute(scheduler="sync").shape == (2, *mosaic.shape)


def test_a_transformed_result_of_a_resampled_image_is_refused(
    guarded: Path, mosaic: np.ndarray
) -> None:
    with Segmenter(guarded) as seg:
        probs = dask_path.segment_dask(
            mosaic, segmenter=seg, chunk=256, probabilities=True, pixel_size=0.005
        )
        with pytest.raises(InputError, match="not segment_dask's result as it returns it"):
            dask_quality(probs + 0, mosaic, seg, pixel_size=0.005)


@pytest.mark.dask
def test_on_a_cluster_at_a_pixel_size_the_score_equals_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    from unet_edge.paths import cluster

    tifffile.imwrite(tmp_path / "big.tif", mosaic)
    with Segmenter(guarded) as seg:
        told = scale.resolve(seg.info.pixel_size, 0.003, None)
        expected = seg.analyze(mosaic, pixel_size=told).quality_record()
        want = seg.segment(mosaic, pixel_size=told)
        with (
            io.TiffWindows(tmp_path / "big.tif") as src,
            distributed.LocalCluster(
                n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
            ) as lc,
            distributed.Client(lc) as client,
        ):
            prov = cluster.segment_windows_dask(
                seg, src, tmp_path / "m.tif", client=client, chunk=256, rescale=told
            )
    assert prov["rescale"]["factor"] == [0.75, 0.75]
    assert expected is not None and prov["quality"] == expected
    assert io.read_provenance(tmp_path / "m.tif")["quality"] == expected
    assert np.array_equal(tifffile.imread(tmp_path / "m.tif") > 0, want > 0)


@pytest.mark.dask
def test_run_dask_at_a_pixel_size_warns_and_records_the_in_memory_score(
    guarded: Path, mosaic: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("distributed", reason="needs the [dask] extra")
    noise = np.random.default_rng(2).integers(0, 256, (600, 500)).astype(np.uint8)
    io.write_tiff(tmp_path / "noise.tif", noise)
    io.write_tiff(tmp_path / "em.tif", mosaic)
    runner = CliRunner()
    for name, foreign in (("noise", True), ("em", False)):
        args = ["run", str(tmp_path / f"{name}.tif"), "-m", str(guarded), "-o", str(tmp_path)]
        r = runner.invoke(main, [*args, "--dask", "local:1", "--pixel-size", "0.005"])
        assert r.exit_code == 0, r.output
        warning = f"Warning: {tmp_path / f'{name}.tif'} looks unlike the training data of tiny-em"
        assert r.stderr.startswith(warning) == foreign, r.stderr
        with Segmenter(guarded) as seg:
            image = io.read_image(tmp_path / f"{name}.tif")
            expected = seg.analyze(image, pixel_size=0.005).quality_record()
        prov = io.read_provenance(tmp_path / f"{name}_mask.tif")
        assert prov["rescale"]["factor"] == [1.25, 1.25] and "dask" in prov
        assert prov["quality"] == expected and prov["quality"][0]["in_domain"] is not foreign
