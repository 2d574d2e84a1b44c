"""The right axes, end to end (issue 20 part 4): what a file's OME/ImageJ metadata says its
axes are is what ``unet-edge run`` and ``segment_file`` keep (read back with tifffile), or
they refuse it by name; never a channel or a time point segmented as a Z slice."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io, processing
from unet_edge.cli import main
from unet_edge.config import Normalization
from unet_edge.errors import InputError
from unet_edge.paths.files import segment_file
from unet_edge.runtime import Segmenter

H, W = 40, 50


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def _planes(n: int, seed: int = 0) -> np.ndarray:
    """``n`` different (H, W) uint16 planes."""
    return np.random.default_rng(seed).integers(0, 4000, (n, H, W)).astype(np.uint16)


def _run(tiny_onnx: Path, *args: object) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["run", "-m", str(tiny_onnx), *map(str, args)])
    return r.exit_code, r.output


def _axes(path: Path) -> tuple[str, tuple[int, ...]]:
    with tifffile.TiffFile(path) as tf:
        return tf.series[0].axes, tuple(tf.series[0].shape)


def test_a_two_channel_hyperstack_is_refused_by_name_or_one_channel_picked(
    seg: Segmenter, tiny_onnx: Path, tmp_path: Path
) -> None:
    data = _planes(2)
    src = tmp_path / "c.tif"
    meta = {"axes": "CYX", "Labels": ["DAPI", "GFP"]}
    tifffile.imwrite(src, data, imagej=True, metadata=meta)
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "cli")
    assert code == 1 and "2 channels (0: DAPI, 1: GFP)" in out and "--channel N" in out
    assert not (tmp_path / "cli").exists()  # refused from the header, before any compute
    with pytest.raises(InputError, match="DAPI"):
        segment_file(seg, src, tmp_path / "api")
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "cli", "--channel", "1")
    assert code == 0, out
    mask = tifffile.imread(tmp_path / "cli" / "c_mask.tif")
    assert mask.shape == (H, W)
    assert np.array_equal(mask > 0, seg.segment(data[1]) > 0)
    r = segment_file(seg, src, tmp_path / "api", channel=1)
    assert r.provenance["axes"] == {"input": "CYX", "mask": "YX", "channel": 1}


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_a_time_series_stays_t(seg: Segmenter, tmp_path: Path, kind: str) -> None:
    data = _planes(3)
    src = tmp_path / ("t.ome.tif" if kind == "ome" else "t.tif")
    tifffile.imwrite(src, data, metadata={"axes": "TYX"}, **{kind: True})  # type: ignore[arg-type]
    fmt = "ome-tiff" if kind == "ome" else "tiff"
    r = segment_file(seg, src, tmp_path / "o", probabilities=True, output_format=fmt)
    assert _axes(r.outputs["mask"]) == ("TYX", (3, H, W))
    assert _axes(r.outputs["probabilities"]) == ("TCYX", (3, seg.info.classes, H, W))
    mask = tifffile.imread(r.outputs["mask"])
    assert np.array_equal(mask[2] > 0, seg.segment(data[2]) > 0)
    with tifffile.TiffFile(r.outputs["probabilities"]) as tf:  # class names, read back
        names = seg.info.class_names
        if kind == "ome":
            assert all(f'Name="{n}"' in tf.ome_metadata for n in names)
        else:
            assert tf.imagej_metadata["Labels"] == list(names) * 3


def test_a_tzcyx_ome_file_keeps_t_and_z(seg: Segmenter, tiny_onnx: Path, tmp_path: Path) -> None:
    data = _planes(12).reshape(2, 3, 2, H, W)
    src = tmp_path / "h.ome.tif"
    meta = {"axes": "TZCYX", "Channel": {"Name": ["nuclei", "membrane"]}}
    tifffile.imwrite(src, data, ome=True, metadata=meta)
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "o")
    assert code == 1 and "0: nuclei, 1: membrane" in out
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "o", "--channel", "0", "--probabilities")
    assert code == 0, out
    assert _axes(tmp_path / "o" / "h.ome_mask.tif") == ("TZYX", (2, 3, H, W))
    probs = tmp_path / "o" / "h.ome_probabilities.tif"
    assert _axes(probs) == ("TZCYX", (2, 3, seg.info.classes, H, W))
    mask = tifffile.imread(tmp_path / "o" / "h.ome_mask.tif")
    assert np.array_equal(mask[1, 2] > 0, seg.segment(data[1, 2, 0]) > 0)
    r = segment_file(seg, src, tmp_path / "api", channel=1, overlay=True)
    assert _axes(r.outputs["mask"]) == ("TZYX", (2, 3, H, W))
    assert _axes(r.outputs["overlay"]) == ("TZYXS", (2, 3, H, W, 3))
    picked = tifffile.imread(r.outputs["mask"])[0, 1]
    assert np.array_equal(picked > 0, seg.segment(data[0, 1, 1]) > 0)


def test_grey_stored_as_rgb_png_and_jpeg_are_grey(
    seg: Segmenter, tiny_onnx: Path, tmp_path: Path
) -> None:
    grey = (_planes(1)[0] // 16).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), np.dstack([grey] * 3))
    cv2.imwrite(str(tmp_path / "j.jpg"), np.dstack([grey] * 3), [cv2.IMWRITE_JPEG_QUALITY, 95])
    code, out = _run(tiny_onnx, tmp_path / "g.png", tmp_path / "j.jpg", "-o", tmp_path / "o")
    assert code == 0, out
    assert "g.png is grey stored as RGB" in out and "j.jpg is grey stored as RGB" in out
    mask = io.read_image(tmp_path / "o" / "g_mask.png")
    assert mask.shape == (H, W)
    assert np.array_equal(mask > 0, seg.segment(grey) > 0)


def test_true_colour_is_refused_with_the_conversion_or_a_channel_picked(
    seg: Segmenter, tiny_onnx: Path, tmp_path: Path
) -> None:
    planes = (_planes(3) // 16).astype(np.uint8)
    src = tmp_path / "c.png"
    io.write_png(src, np.dstack(planes))  # RGB
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "o")
    assert code == 1 and "IMREAD_GRAYSCALE" in out and "--channel N" in out
    r = segment_file(seg, src, tmp_path / "o", channel=1)
    assert np.array_equal(io.read_image(r.outputs["mask"]) > 0, seg.segment(planes[1]) > 0)


def test_int16_is_accepted_and_normalised_like_the_others(
    seg: Segmenter, tiny_onnx: Path, tmp_path: Path
) -> None:
    signed = (_planes(1)[0].astype(np.int32) - 2000).astype(np.int16)  # negative values too
    tifffile.imwrite(tmp_path / "s.tif", signed)
    tifffile.imwrite(tmp_path / "f.tif", signed.astype(np.float32))  # float images: as they are
    code, out = _run(tiny_onnx, tmp_path / "s.tif", tmp_path / "f.tif", "-o", tmp_path / "o")
    assert code == 0, out
    mask = tifffile.imread(tmp_path / "o" / "s_mask.tif")
    assert np.array_equal(mask > 0, seg.segment(signed.astype(np.float32)) > 0)
    assert np.array_equal(mask, tifffile.imread(tmp_path / "o" / "f_mask.tif"))
    # fixed-range models: 0..32767, the camera range of a signed 16-bit container
    fixed = Normalization(mode="dtype_range")
    counts = ((signed.astype(np.int32) - signed.min()) * 8).astype(np.int16)  # 0..~32000
    assert processing.scaling_for(counts, fixed, 1).high == (32767.0,)
    with pytest.raises(InputError, match=r"exceed the range 0\.\.32767"):
        processing.scaling_for(signed, fixed, 1)


def test_overlay_of_a_stack_shows_every_slice(tiny_onnx: Path, tmp_path: Path) -> None:
    src = tmp_path / "z.tif"
    tifffile.imwrite(src, _planes(3), imagej=True, metadata={"axes": "ZYX"})
    code, out = _run(tiny_onnx, src, "-o", tmp_path / "o", "--overlay")
    assert code == 0, out
    assert not (tmp_path / "o" / "z_overlay.png").exists()
    assert _axes(tmp_path / "o" / "z_overlay.tif") == ("ZYXS", (3, H, W, 3))
    pages = tifffile.imread(tmp_path / "o" / "z_overlay.tif")
    assert not np.array_equal(pages[0], pages[2])


def test_what_cannot_be_kept_is_refused_by_name(
    seg: Segmenter, tiny_onnx: Path, tmp_path: Path
) -> None:
    series = tmp_path / "t.tif"
    tifffile.imwrite(series, _planes(3), imagej=True, metadata={"axes": "TYX"})
    code, out = _run(tiny_onnx, series, "-o", tmp_path / "o", "--large")
    assert code == 1 and "stack of 3 planes" in out and "kept as TYX" in out
    with pytest.raises(InputError, match="time series"):
        segment_file(seg, series, tmp_path / "o", labels=True)  # labels hold Z slices only
    channels = tmp_path / "c.tif"  # one channel of CYX is read alone; of a Z stack, refused
    data = _planes(4).reshape(2, 2, H, W)
    tifffile.imwrite(channels, data, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match=r"stack of 2 planes .* window-by-window"):
        segment_file(seg, channels, tmp_path / "o", large=True, channel=0)
    assert not (tmp_path / "o").exists()


def test_a_multi_channel_model_takes_c_as_its_channels(rgb_onnx: Path, tmp_path: Path) -> None:
    data = _planes(3)
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "CYX"})
    with Segmenter(rgb_onnx) as seg:
        r = segment_file(seg, src, tmp_path / "o")
        mask = tifffile.imread(r.outputs["mask"])
        assert mask.shape == (H, W)
        assert np.array_equal(mask, processing.mask_to_image(seg.segment(np.dstack(data)), 3))


def test_a_z_stack_with_channels_gives_z_labels_of_the_picked_channel(
    seg: Segmenter, tmp_path: Path
) -> None:
    data = _planes(6).reshape(3, 2, H, W)  # Z, C, Y, X
    src = tmp_path / "zc.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "ZCYX"})
    r = segment_file(seg, src, tmp_path / "o", channel=1, labels=True, measure=True)
    assert _axes(r.outputs["mask"]) == ("ZYX", (3, H, W))
    assert _axes(r.outputs["labels"]) == ("ZYX", (3, H, W))
    mask = tifffile.imread(r.outputs["mask"])
    assert np.array_equal(mask[2] > 0, seg.segment(data[2, 1]) > 0)
