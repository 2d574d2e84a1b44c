"""The large-image paths read a file as the in-memory path does (issue 21's leftovers): the
Segmenter's ``channel`` is the default of ``segment_large``, ``segment_windows``, the cluster
path, ``segment_dask`` and ``segment_to_zarr``; grey stored as RGB is grey through
``segment_to_zarr``'s TIFF reader too; and window by window the provenance records the axes
and the "grey stored as RGB" note, equal to in memory's, which ``run --large`` prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter, io, processing
from unet_edge.cli import main
from unet_edge.errors import InputError
from unet_edge.paths import files, windowed

needs_dask = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("dask", "distributed", "zarr")),
    reason="dask, distributed and zarr are not installed ([dask] extra)",
)


@pytest.fixture(scope="module")
def seg1(tiny_onnx: Path) -> Segmenter:
    """A Segmenter whose default channel is 1 (green of RGB)."""
    return Segmenter(tiny_onnx, channel=1)


@pytest.fixture(scope="module")
def plain(tiny_onnx: Path) -> Segmenter:
    """The same model with no default channel: the references."""
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def rgb(isbi_image: np.ndarray) -> np.ndarray:
    """(300, 260, 3) uint8 real EM pixels, three different colours."""
    a = isbi_image[:300, :260]
    return np.ascontiguousarray(np.dstack([a, a[::-1], 255 - a]))


@pytest.fixture
def rgb_tif(rgb: np.ndarray, tmp_path: Path) -> Path:
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    return tmp_path / "rgb.tif"


def _mask(r: files.FileResult) -> np.ndarray:
    return tifffile.imread(r.outputs["mask"])


def test_segment_large_and_windows_use_the_segmenters_channel(
    seg1: Segmenter, plain: Segmenter, rgb: np.ndarray, rgb_tif: Path, tmp_path: Path
) -> None:
    memory = files.segment_file(seg1, rgb_tif, tmp_path / "m")
    want = processing.mask_to_image(plain.segment(rgb[..., 1]), 2)
    assert np.array_equal(_mask(memory), want)
    out = windowed.segment_large(seg1, rgb_tif, tmp_path / "api.tif")
    assert np.array_equal(tifffile.imread(out), want)
    with io.TiffWindows(rgb_tif) as src:  # opened with every colour: read again with one
        prov = windowed.segment_windows(seg1, src, tmp_path / "win.tif")
    assert np.array_equal(tifffile.imread(tmp_path / "win.tif"), want)
    assert prov["axes"] == memory.provenance["axes"] == {"input": "YXS", "mask": "YX", "channel": 1}
    with io.TiffWindows(rgb_tif, channel=2) as src:  # a reader's own channel is kept
        windowed.segment_windows(seg1, src, tmp_path / "two.tif")
    blue = processing.mask_to_image(plain.segment(rgb[..., 2]), 2)
    assert np.array_equal(tifffile.imread(tmp_path / "two.tif"), blue)
    large = files.segment_file(seg1, rgb_tif, tmp_path / "w", large=True)
    assert large.windowed and np.array_equal(_mask(large), want)


def test_a_composites_plane_from_the_segmenters_channel(
    tiny_onnx: Path, plain: Segmenter, rgb: np.ndarray, tmp_path: Path
) -> None:
    planes = np.moveaxis(rgb, -1, 0).astype(np.uint16) * 16
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, planes, imagej=True, metadata={"axes": "CYX"})
    seg = Segmenter(tiny_onnx, channel=2)
    out = windowed.segment_large(seg, src, tmp_path / "c_mask.tif")
    want = processing.mask_to_image(plain.segment(planes[2]), 2)
    assert np.array_equal(tifffile.imread(out), want)
    with pytest.raises(InputError, match="channel 3 was picked"):
        windowed.segment_large(Segmenter(tiny_onnx, channel=3), src, tmp_path / "x.tif")


@needs_dask
def test_dask_and_zarr_use_the_segmenters_channel(
    seg1: Segmenter, plain: Segmenter, rgb: np.ndarray, rgb_tif: Path, tmp_path: Path
) -> None:
    import dask.array as da
    import zarr

    from unet_edge.paths.dask import segment_dask, segment_to_zarr

    want = seg1.segment(rgb)  # the Segmenter's channel, in memory
    assert np.array_equal(want, plain.segment(rgb[..., 1]))
    lazy = segment_dask(da.from_array(rgb, chunks=(128, 128, 3)), segmenter=seg1, chunk=128)
    assert lazy.shape == (300, 260)
    assert np.array_equal(lazy.compute(scheduler="threads"), want)
    picked = segment_dask(rgb, segmenter=seg1, channel=2).compute(scheduler="threads")
    assert np.array_equal(picked, seg1.segment(rgb, channel=2))  # a call's channel wins
    for name, image in (("array", rgb), ("tiff", rgb_tif)):
        out = segment_to_zarr(image, tmp_path / f"{name}.zarr", segmenter=seg1)
        assert np.array_equal(zarr.open_array(str(out), mode="r")[:], want), name
    axes = zarr.open_array(str(tmp_path / "tiff.zarr"), mode="r").attrs["unet_edge"]["axes"]
    assert axes == {"input": "YXS", "mask": "YX", "channel": 1}
    with pytest.raises(InputError, match="channel 5 was picked"):
        segment_dask(rgb, segmenter=seg1, channel=5)


@needs_dask
@pytest.mark.dask
def test_the_cluster_path_uses_the_segmenters_channel(
    seg1: Segmenter, rgb: np.ndarray, rgb_tif: Path, tmp_path: Path
) -> None:
    import distributed

    from unet_edge.paths import cluster

    memory = files.segment_file(seg1, rgb_tif, tmp_path / "m")
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
        io.TiffWindows(rgb_tif) as src,  # every colour: the Segmenter's is read alone
    ):
        prov = cluster.segment_windows_dask(seg1, src, tmp_path / "c.tif", client=client)
    assert np.array_equal(tifffile.imread(tmp_path / "c.tif"), _mask(memory))
    assert prov["axes"] == memory.provenance["axes"]


def _grey_rgb(grey: np.ndarray, path: Path, samples: int) -> Path:
    planes = [grey, 255 - grey] if samples == 2 else [grey] * 3
    extra = {"extrasamples": ["unassalpha"]} if samples == 2 else {}
    photometric = "minisblack" if samples == 2 else "rgb"
    tifffile.imwrite(path, np.dstack(planes), photometric=photometric, **extra)
    return path


@pytest.mark.parametrize("samples", [3, 2])
def test_grey_stored_as_rgb_windowed_records_and_says_what_in_memory_does(
    tiny_onnx: Path, rgb: np.ndarray, tmp_path: Path, samples: int
) -> None:
    seg = Segmenter(tiny_onnx)
    src = _grey_rgb(rgb[..., 0], tmp_path / "g.tif", samples)
    memory = files.segment_file(seg, src, tmp_path / "m")
    large = files.segment_file(seg, src, tmp_path / "w", large=True)
    assert large.windowed and np.array_equal(_mask(large), _mask(memory))
    assert large.provenance["axes"] == memory.provenance["axes"] == {"input": "YXS", "mask": "YX"}
    assert large.provenance["axes_note"] == memory.provenance["axes_note"]
    assert "grey" in memory.provenance["axes_note"]
    written = io.read_provenance(large.outputs["mask"])
    assert written["axes_note"] == memory.provenance["axes_note"]
    args = ["run", "-m", str(tiny_onnx), str(src), "--large", "-o", str(tmp_path / "cli")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert memory.provenance["axes_note"] in r.output


def test_a_grey_file_windowed_records_its_axes_as_in_memory(
    tiny_onnx: Path, rgb: np.ndarray, tmp_path: Path
) -> None:
    seg = Segmenter(tiny_onnx)
    tifffile.imwrite(tmp_path / "y.tif", rgb[..., 0])
    memory = files.segment_file(seg, tmp_path / "y.tif", tmp_path / "m")
    large = files.segment_file(seg, tmp_path / "y.tif", tmp_path / "w", large=True)
    assert large.provenance["axes"] == memory.provenance["axes"] == {"input": "YX", "mask": "YX"}
    assert "axes_note" not in large.provenance and "axes_note" not in memory.provenance
    zero = Segmenter(tiny_onnx, channel=0)  # channel 0 of a grey image: the image, recorded
    memory = files.segment_file(zero, tmp_path / "y.tif", tmp_path / "m0")
    large = files.segment_file(zero, tmp_path / "y.tif", tmp_path / "w0", large=True)
    assert large.provenance["axes"] == memory.provenance["axes"]


@needs_dask
def test_segment_to_zarr_reads_grey_stored_as_rgb_as_grey(
    tiny_onnx: Path, rgb: np.ndarray, tmp_path: Path
) -> None:
    import zarr

    from unet_edge.paths.dask import segment_to_zarr

    seg = Segmenter(tiny_onnx)
    src = _grey_rgb(rgb[..., 0], tmp_path / "g.tif", 3)
    memory = files.segment_file(seg, src, tmp_path / "m")
    out = segment_to_zarr(src, tmp_path / "g.zarr", segmenter=seg)
    z = zarr.open_array(str(out), mode="r")
    assert np.array_equal(z[:], seg.segment(rgb[..., 0]))
    assert z.attrs["unet_edge"]["axes"] == memory.provenance["axes"]
    assert z.attrs["unet_edge"]["axes_note"] == memory.provenance["axes_note"]
    colour = tmp_path / "c.tif"
    tifffile.imwrite(colour, rgb, photometric="rgb")
    with pytest.raises(InputError, match="is a colour image"):
        segment_to_zarr(colour, tmp_path / "c.zarr", segmenter=seg)
