"""Dask: map_overlap over stride-aligned chunks equals single-process inference, on a cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge import io
from unet_edge.runtime import Segmenter

da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def image16(isbi: Path) -> np.ndarray:
    frames = [io.read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in range(4)]
    mosaic = np.vstack([np.hstack(frames[:2]), np.hstack(frames[2:])[::-1]])
    return mosaic[:700, :900].astype(np.uint16) * 16


def test_aligned_chunks() -> None:
    from unet_edge import tiling
    from unet_edge.paths.dask import aligned_chunks

    ax = tiling.AxisPlan(1000, 300, 116, 112, tuple(range(0, 1000, 112)), 92, 0)
    assert aligned_chunks(1000, ax, 400, 108) == (336, 336, 328)
    assert aligned_chunks(1080, ax, 400, 108) == (336, 336, 408)  # 72 < 108 merged
    assert all(c % 16 == 0 for c in aligned_chunks(5000, ax, 2048, 108)[:-1])


def test_threads_scheduler_equals_predict(tiny_onnx: Path, image16: np.ndarray) -> None:
    from unet_edge.paths.dask import segment_dask

    seg = Segmenter(tiny_onnx, tile=300)
    probs = seg.predict(image16)
    lazy = segment_dask(image16, tiny_onnx, segmenter=seg, chunk=300, probabilities=True)
    assert len(lazy.chunks[1]) > 1 and len(lazy.chunks[2]) > 1
    got = lazy.compute(scheduler="threads")
    assert got.dtype == np.float32 and np.array_equal(got, probs)


def test_bad_inputs(tiny_onnx: Path) -> None:
    from unet_edge.errors import InputError
    from unet_edge.paths.dask import segment_dask

    with pytest.raises(InputError, match="overlap"):
        segment_dask(np.zeros((50, 500), np.uint8), tiny_onnx)
    with pytest.raises(InputError, match="expected"):
        segment_dask(np.zeros((2, 300, 300, 1), np.uint8), tiny_onnx)


@pytest.mark.dask
def test_local_cluster_equals_single_process(
    tiny_onnx: Path, image16: np.ndarray, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    from unet_edge.paths.dask import segment_dask, segment_to_zarr

    seg = Segmenter(tiny_onnx, tile=300)
    ref = seg.segment(image16)
    src = tmp_path / "image.tif"
    io.write_tiff(src, image16)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        mask = segment_dask(image16, tiny_onnx, segmenter=seg, chunk=400, threads=1)
        assert np.array_equal(mask.compute(), ref)
        # both worker processes did work, each with its own session
        seen = client.run(lambda: __import__("unet_edge.paths.dask").paths.dask
                          .worker_segmenter.cache_info().currsize)  # fmt: skip
        assert len(seen) == 2 and all(n == 1 for n in seen.values())
        out = segment_to_zarr(src, tmp_path / "mask.zarr", tiny_onnx, segmenter=seg, chunk=400,
                              threads=1)  # fmt: skip
    z = zarr.open_array(str(out), mode="r")
    assert np.array_equal(z[:], ref)
    prov = dict(z.attrs)["unet_edge"]
    sp = seg.provenance()
    for key in ("model_name", "model_sha256", "provider", "precision", "tile", "software"):
        assert prov[key] == sp[key]
    assert prov["output"] == "mask" and "TilePlan" in prov["tile_plan"]
