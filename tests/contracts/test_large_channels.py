"""One channel of a multi-channel TIFF, window by window: ``--large --channel N`` and
``channel=`` read that channel alone (a plane of a ``CYX`` composite, a colour of RGB) and
give the in-memory path's mask bit for bit (issue 20's leftovers)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import Segmenter, io, processing
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.errors import InputError
from unet_edge.paths import files, windowed

needs_zarr = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="zarr is not installed ([dask] extra)"
)


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def planes(isbi_image: np.ndarray) -> np.ndarray:
    """Three different (300, 260) uint16 channels of real EM pixels."""
    a = isbi_image[:300, :260].astype(np.uint16) * 16
    return np.stack([a, a[::-1] // 2 + 100, np.ascontiguousarray(a[:, ::-1])])


def _mask(r: files.FileResult) -> np.ndarray:
    return tifffile.imread(r.outputs["mask"])


@pytest.mark.parametrize("compression", [None, pytest.param("zlib", marks=needs_zarr)])
def test_a_channel_of_a_composite_windowed_equals_in_memory(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path, compression: str | None
) -> None:
    src = tmp_path / "c.tif"
    meta = {"axes": "CYX", "Labels": ["DAPI", "GFP", "RFP"]}
    tifffile.imwrite(src, planes, imagej=True, metadata=meta, compression=compression)
    for channel in (1, 2):
        memory = files.segment_file(seg, src, tmp_path / f"m{channel}", channel=channel)
        large = files.segment_file(seg, src, tmp_path / f"w{channel}", channel=channel, large=True)
        assert large.windowed and not memory.windowed
        assert np.array_equal(_mask(large), _mask(memory)), channel
        want = processing.mask_to_image(seg.segment(planes[channel]), 2)
        assert np.array_equal(_mask(large), want)
        assert large.provenance["axes"] == memory.provenance["axes"]
        assert large.provenance["axes"] == {"input": "CYX", "mask": "YX", "channel": channel}
        assert large.provenance["normalization"] == memory.provenance["normalization"]


def test_the_window_reader_reads_the_picked_plane_alone(planes: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, planes, imagej=True, metadata={"axes": "CYX"})
    with io.TiffWindows(src, channel=2) as w:
        assert w.shape == (300, 260) and w.ndim == 2 and w.channel == 2
        assert w._offset >= 0  # uncompressed: a memory map of that plane's rows only
        assert np.array_equal(w.read_window(7, 11, 50, 40), planes[2, 7:57, 11:51])
        assert np.array_equal(w[::7, 3::5], planes[2, ::7, 3::5])  # the statistics sample
        copy = pickle.loads(pickle.dumps(w))  # what a Dask worker gets: it opens the file
        assert copy.shape == (300, 260)
        assert np.array_equal(copy.read_window(290, 250, 10, 10), planes[2, 290:, 250:])
        copy.close()
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.moveaxis(planes, 0, -1), photometric="rgb")
    with io.TiffWindows(rgb, channel=1) as w:
        assert w.shape == (300, 260) and w.channel == 1
        assert np.array_equal(w.read_window(3, 4, 20, 30), planes[1, 3:23, 4:34])
    with io.TiffWindows(rgb) as w:  # every colour, as before
        assert w.shape == (300, 260, 3) and w.channel is None
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, planes[0])
    with io.TiffWindows(grey, channel=0) as w:  # channel 0 of a grey image: the image
        assert w.shape == (300, 260) and w.channel is None
    with pytest.raises(InputError, match=r"channel 3 was picked, .* has 3 channel"):
        io.TiffWindows(src, channel=3)
    with pytest.raises(InputError, match="not a stack"):
        io.TiffWindows(src)  # all channels: not one image


def test_a_colour_of_rgb_windowed_equals_in_memory(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    a = isbi_image[:300, :260]
    rgb = np.dstack([a, a[::-1], 255 - a])
    src = tmp_path / "rgb.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    memory = files.segment_file(seg, src, tmp_path / "m", channel=1)
    large = files.segment_file(seg, src, tmp_path / "w", channel=1, large=True)
    assert np.array_equal(_mask(large), _mask(memory))
    assert np.array_equal(_mask(large), processing.mask_to_image(seg.segment(rgb[..., 1]), 2))
    with pytest.raises(InputError, match="is a colour image: its red, green and blue differ"):
        files.segment_file(seg, src, tmp_path / "g", large=True)  # no colour picked
    out = windowed.segment_large(seg, src, tmp_path / "api.tif", channel=1)
    assert np.array_equal(tifffile.imread(out), _mask(memory))


def test_cli_large_with_a_channel_and_a_too_large_composite_goes_windowed(
    tiny_onnx: Path, seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, planes, imagej=True, metadata={"axes": "CYX"})
    args = ["run", "-m", str(tiny_onnx), str(src), "--channel", "1"]
    r = CliRunner().invoke(main, [*args, "--large", "-o", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    want = processing.mask_to_image(seg.segment(planes[1]), 2)
    assert np.array_equal(tifffile.imread(tmp_path / "cli" / "c_mask.tif"), want)
    # too large for the memory limit: switched to the windowed path rather than refused
    auto = files.segment_file(seg, src, tmp_path / "auto", channel=1, memory_limit=1 << 20)
    assert auto.windowed and np.array_equal(_mask(auto), want)


def test_a_channel_with_rescaling_windowed_equals_in_memory(
    planes: np.ndarray, tmp_path: Path
) -> None:
    import onnx_models

    def edit(d: dict[str, Any]) -> None:
        d["pixel_size"] = {"y": 0.004, "x": 0.004, "unit": "µm"}

    model = onnx_models.save_edited(tmp_path / "px.onnx", UNetConfig(base_width=2), edit)
    src = tmp_path / "c.tif"
    res = (1 / 0.006, 1 / 0.006)
    tifffile.imwrite(
        src, planes, imagej=True, resolution=res, metadata={"axes": "CYX", "unit": "um"}
    )
    with Segmenter(model) as seg:
        memory = files.segment_file(seg, src, tmp_path / "m", channel=0)
        large = files.segment_file(seg, src, tmp_path / "w", channel=0, large=True)
        want = processing.mask_to_image(seg.segment(planes[0], pixel_size=0.006), 2)
    assert large.provenance["rescale"] == memory.provenance["rescale"]
    assert np.array_equal(_mask(large), _mask(memory)) and np.array_equal(_mask(large), want)


def test_a_channel_on_a_dask_cluster_equals_in_memory(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, planes, imagej=True, metadata={"axes": "CYX"})
    memory = files.segment_file(seg, src, tmp_path / "m", channel=2)
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        r = files.segment_file(seg, src, tmp_path / "c", channel=2, dask_client=client)
    assert r.windowed and np.array_equal(_mask(r), _mask(memory))
    assert r.provenance["axes"] == memory.provenance["axes"]
