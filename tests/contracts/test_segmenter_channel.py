"""``Segmenter(channel=)`` and a call's ``channel=`` pick one channel (or colour) of an
array as ``segment_file(..., channel=)`` and ``run --channel`` pick one of a file: the
same rule (channels last for arrays, ``unet_edge.io.axes.layout``), the same errors, and
the mask of the channel picked by hand (issue 20's leftovers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import InputError, Segmenter, processing
from unet_edge.io import axes as io_axes
from unet_edge.paths import files


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def planes(isbi_image: np.ndarray) -> np.ndarray:
    """Three different (200, 180) uint8 channels of real EM pixels, channels last."""
    a = isbi_image[:200, :180]
    return np.stack([a, a[::-1] // 2 + 60, np.ascontiguousarray(a[:, ::-1])], axis=-1)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_a_picked_channel_equals_picking_it_by_hand(
    seg: Segmenter, planes: np.ndarray, channel: int
) -> None:
    want = seg.analyze(np.ascontiguousarray(planes[..., channel]))
    got = seg.analyze(planes, channel=channel)
    assert np.array_equal(got.probabilities, want.probabilities)
    assert got.stats == want.stats
    assert np.array_equal(seg.segment(planes, channel=channel), want.mask)
    assert np.array_equal(seg.predict(planes, channel=channel), want.probabilities)


def test_the_segmenters_channel_is_the_default_and_a_call_replaces_it(
    tiny_onnx: Path, seg: Segmenter, planes: np.ndarray
) -> None:
    with Segmenter(tiny_onnx, channel=2) as picked:
        assert picked.channel == 2
        assert np.array_equal(picked.segment(planes), seg.segment(planes[..., 2]))
        assert np.array_equal(picked.segment(planes, channel=1), seg.segment(planes[..., 1]))
        assert np.array_equal(picked.label(planes), seg.label(planes[..., 2]))
        steps = list(picked.analyze_steps(planes))
        assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]


def test_stacks_and_lists_of_frames_pick_every_frames_channel(
    seg: Segmenter, planes: np.ndarray
) -> None:
    stack = np.stack([planes, planes[::-1]])  # (Z, H, W, C)
    want = seg.segment([stack[0, ..., 1], stack[1, ..., 1]])
    assert np.array_equal(seg.segment(stack, channel=1), want)
    assert np.array_equal(seg.segment(list(stack), channel=1), want)


def test_equals_the_file_path_with_the_same_channel(
    seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, np.moveaxis(planes, -1, 0), imagej=True, metadata={"axes": "CYX"})
    result = files.segment_file(seg, src, tmp_path / "out", channel=1)
    on_file = tifffile.imread(result.outputs["mask"])
    assert np.array_equal(on_file, processing.mask_to_image(seg.segment(planes, channel=1), 2))


def test_segment_file_takes_the_segmenters_channel(
    tiny_onnx: Path, seg: Segmenter, planes: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, np.moveaxis(planes, -1, 0), imagej=True, metadata={"axes": "CYX"})
    with Segmenter(tiny_onnx, channel=2) as picked:
        result = files.segment_file(picked, src, tmp_path / "out")
        large = files.segment_file(picked, src, tmp_path / "large", large=True)
    assert result.provenance["axes"] == {"input": "CYX", "mask": "YX", "channel": 2}
    want = processing.mask_to_image(seg.segment(planes[..., 2]), 2)
    assert np.array_equal(tifffile.imread(result.outputs["mask"]), want)
    assert np.array_equal(tifffile.imread(large.outputs["mask"]), want)


def test_arranged_frames_are_not_picked_again(tiny_onnx: Path, planes: np.ndarray) -> None:
    arranged = io_axes.arrange_array(planes, "YXC", 1, channel=1)
    with Segmenter(tiny_onnx, channel=2) as picked:
        got = picked.segment(arranged)  # the Segmenter's default is not applied again
        assert np.array_equal(got, picked.segment(planes, channel=1))
        with pytest.raises(InputError, match="arranged with channel 1"):
            picked.segment(arranged, channel=0)


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        (3, r"channel 3 was picked, but the array has 3 channels \(0, 1, 2\); pick one of 0\.\.2"),
        (-1, "channel must be a whole number, 0 for the first, got -1"),
        (1.0, "channel must be a whole number"),
        (True, "channel must be a whole number"),
    ],
)
def test_a_bad_channel_is_refused_by_name(
    seg: Segmenter, planes: np.ndarray, channel: object, match: str
) -> None:
    with pytest.raises(InputError, match=match) as caught:
        seg.segment(planes, channel=channel)  # type: ignore[arg-type]
    assert caught.value.option == "channel"


def test_a_bad_channel_is_refused_when_the_segmenter_is_made(tiny_onnx: Path) -> None:
    with pytest.raises(InputError, match="got 'red'"):
        Segmenter(tiny_onnx, channel="red")  # type: ignore[arg-type]


def test_a_channel_for_a_multi_channel_model_is_refused(rgb_onnx: Path) -> None:
    with pytest.raises(InputError, match="the model takes 3 channels and uses all"):
        Segmenter(rgb_onnx, channel=0)
    with Segmenter(rgb_onnx) as rgb, pytest.raises(InputError, match="takes 3 channels"):
        rgb.segment(np.zeros((64, 64, 3), np.uint8), channel=1)


def test_channels_first_is_refused_not_read_as_a_narrow_image(
    seg: Segmenter, planes: np.ndarray
) -> None:
    cyx = np.ascontiguousarray(np.moveaxis(planes, -1, 0))  # (3, 200, 180)
    with pytest.raises(InputError, match=r"put the channels last \(numpy.moveaxis"):
        seg.segment(cyx, channel=0)
    with pytest.raises(InputError, match=r"\(Z, H, W, C\), got shape \(1, 1, 200, 180, 3\)"):
        seg.segment(planes[None, None], channel=0)  # 5 axes
    with pytest.raises(InputError, match=r"\(H, W\) or \(H, W, C\) frames, channels last"):
        seg.segment([planes[None], planes[None]], channel=0)  # a list of stacks


def test_a_grey_frame_has_channel_0_only(seg: Segmenter, planes: np.ndarray) -> None:
    grey = np.ascontiguousarray(planes[..., 0])
    assert np.array_equal(seg.segment(grey, channel=0), seg.segment(grey))
    with pytest.raises(InputError, match=r"has 1 channel; pick one of 0\.\.0"):
        seg.segment(grey, channel=1)


def test_picking_copies_no_pixels(planes: np.ndarray) -> None:
    from unet_edge.analysis import pick_channel

    picked = pick_channel(planes, 1, 1)
    assert np.shares_memory(picked, planes) and picked.shape == planes.shape[:2]
    assert np.array_equal(picked, planes[..., 1])


def test_a_stream_segments_the_segmenters_channel(tiny_onnx: Path, planes: np.ndarray) -> None:
    frames = [planes, np.ascontiguousarray(planes[::-1])]
    with Segmenter(tiny_onnx, channel=1) as picked:
        results = list(picked.stream(iter(frames), drop="none"))
        assert [r.error for r in results] == [None, None]
        for frame, result in zip(frames, results, strict=True):
            assert np.array_equal(result.mask, picked.segment(frame[..., 1], channel=0))
        assert picked.pick_channel(planes).shape == (200, 180)
        assert np.array_equal(picked.pick_channel(planes, 2), planes[..., 2])
