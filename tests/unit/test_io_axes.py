"""The axes of a file (unet_edge/io/axes.py): read from OME/ImageJ metadata, mapped to the
model's frames and back to the outputs' axes, or refused by name."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import InputError
from unet_edge.io import axes


def _pixels(shape: tuple[int, ...], dtype: type = np.uint16) -> np.ndarray:
    """Distinct values everywhere, so that a wrong transpose cannot go unseen."""
    return (np.arange(int(np.prod(shape))) % 4000).astype(dtype).reshape(shape)


def _tiff(path: Path, data: np.ndarray, **kwargs: object) -> io.ImageHeader:
    tifffile.imwrite(path, data, **kwargs)  # type: ignore[arg-type]
    return io.image_header(path)


def test_imagej_channels_are_named_and_refused_for_a_one_channel_model(tmp_path: Path) -> None:
    meta = {"axes": "CYX", "Labels": ["DAPI", "GFP"]}
    header = _tiff(tmp_path / "c.tif", _pixels((2, 6, 7)), imagej=True, metadata=meta)
    assert header.axes == "CYX" and header.channel_names == ("DAPI", "GFP")
    with pytest.raises(InputError, match=r"2 channels \(0: DAPI, 1: GFP\)") as e:
        axes.layout(header, 1)
    assert e.value.option == "channel"
    found = axes.layout(header, 1, channel=1)
    assert (found.stack, found.mask_axes, found.colour) == ("", "YX", "C")
    arranged = axes.arrange(tifffile.imread(tmp_path / "c.tif"), found)
    assert np.array_equal(arranged.frames, _pixels((2, 6, 7))[1])
    assert arranged.provenance() == {"axes": {"input": "CYX", "mask": "YX", "channel": 1}}


def test_unnamed_channels_are_numbered_and_a_missing_channel_is_refused(tmp_path: Path) -> None:
    header = _tiff(tmp_path / "c.tif", _pixels((3, 6, 7)), imagej=True, metadata={"axes": "CYX"})
    assert header.channel_names == ()
    with pytest.raises(InputError, match=r"3 channels \(0, 1, 2\)"):
        axes.layout(header, 1)
    with pytest.raises(InputError, match=r"channel 3 was picked.*one of 0\.\.2"):
        axes.layout(header, 1, channel=3)
    for bad in (True, 1.0, "1"):
        with pytest.raises(InputError, match="channel must be a whole number"):
            axes.layout(header, 1, channel=bad)  # type: ignore[arg-type]


def test_a_time_series_stays_t(tmp_path: Path) -> None:
    for name, kwargs in (
        ("t.tif", {"imagej": True, "metadata": {"axes": "TYX"}}),
        ("t.ome.tif", {"ome": True, "metadata": {"axes": "TYX"}}),
    ):
        header = _tiff(tmp_path / name, _pixels((4, 6, 7)), **kwargs)
        found = axes.layout(header, 1)
        assert (found.stack, found.stack_shape, found.mask_axes) == ("T", (4,), "TYX")
        assert found.probability_axes == "TCYX" and found.overlay_axes == "TYXS"
        arranged = axes.arrange(tifffile.imread(tmp_path / name), found)
        assert arranged.frames.shape == (4, 6, 7) and len(arranged.input) == 4


def test_a_tzcyx_ome_file_keeps_t_and_z_and_picks_a_named_channel(tmp_path: Path) -> None:
    data = _pixels((2, 3, 2, 6, 7))
    meta = {"axes": "TZCYX", "Channel": {"Name": ["nuclei", "membrane"]}}
    header = _tiff(tmp_path / "h.ome.tif", data, ome=True, metadata=meta)
    assert header.channel_names == ("nuclei", "membrane")
    with pytest.raises(InputError, match=r"0: nuclei, 1: membrane.*TZCYX"):
        axes.layout(header, 1)
    found = axes.layout(header, 1, channel=1)
    assert (found.stack, found.stack_shape, found.mask_axes) == ("TZ", (2, 3), "TZYX")
    arranged = axes.arrange(data, found)
    assert arranged.frames.shape == (6, 6, 7)  # time major, as ImageJ orders planes
    assert np.array_equal(arranged.frames[4], data[1, 1, 1])
    restacked = arranged.restack(np.stack([f * 0 + i for i, f in enumerate(arranged.frames)]))
    assert restacked.shape == (2, 3, 6, 7) and int(restacked[1, 1, 0, 0]) == 4


def test_a_multi_channel_model_takes_c_as_its_channels(tmp_path: Path) -> None:
    data = _pixels((3, 2, 6, 7))
    header = _tiff(tmp_path / "zc.tif", data, imagej=True, metadata={"axes": "ZCYX"})
    found = axes.layout(header, 2)
    arranged = axes.arrange(data, found)
    assert found.mask_axes == "ZYX" and arranged.frames.shape == (3, 6, 7, 2)
    assert np.array_equal(arranged.frames[2, ..., 1], data[2, 1])
    with pytest.raises(InputError, match="picking one is for 1-channel models"):
        axes.layout(header, 2, channel=0)
    with pytest.raises(InputError, match=r"has 2 channels .* but the model takes 3"):
        axes.layout(header, 3)


def test_plain_pages_are_a_z_stack_as_before(tmp_path: Path) -> None:
    header = _tiff(tmp_path / "p.tif", _pixels((3, 6, 7)), photometric="minisblack")
    found = axes.layout(header, 1)
    assert header.axes[0] in "IQ" and (found.stack, found.mask_axes) == ("Z", "ZYX")


def test_axes_that_cannot_be_kept_are_refused_by_name(tmp_path: Path) -> None:
    header = io.ImageHeader(tmp_path / "x.tif", (2, 3, 6, 7), np.dtype(np.uint8), "ZQYX")
    with pytest.raises(InputError, match="Q cannot all be kept without flattening"):
        axes.layout(header, 1)
    both = io.ImageHeader(tmp_path / "y.tif", (2, 6, 7, 3), np.dtype(np.uint8), "CYXS")
    with pytest.raises(InputError, match="both channels and colour samples"):
        axes.layout(both, 1)


def test_grey_stored_as_rgb_is_grey_and_colour_is_refused(tmp_path: Path) -> None:
    grey = _pixels((6, 7), np.uint8)
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), np.dstack([grey] * 3))
    found = axes.layout(io.image_header(path), 1)
    assert found.grey_check
    arranged = axes.arrange(io.read_image(path), found)
    assert np.array_equal(arranged.frames, grey) and "grey stored as RGB" in str(arranged.note)
    colour = np.dstack([grey, grey, grey // 2])
    cv2.imwrite(str(path), colour)
    with pytest.raises(InputError, match=r"colour image .*IMREAD_GRAYSCALE") as e:
        axes.arrange(io.read_image(path), found)
    assert e.value.option == "channel"
    red = axes.layout(io.image_header(path), 1, channel=0)  # written BGR, read RGB
    assert np.array_equal(axes.arrange(io.read_image(path), red).frames, grey // 2)


def test_a_jpeg_is_grey_within_its_tolerance(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(40, 200, (32, 40)).astype(np.int16)
    near = np.dstack([grey, grey + 1, grey - 1]).astype(np.uint8)  # an encoder's rounding
    path = tmp_path / "g.jpg"
    cv2.imwrite(str(path), near[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    pixels = io.read_image(path)
    spread = int(np.abs(pixels[..., 1:].astype(int) - pixels[..., :1]).max())
    assert 0 < spread <= axes.JPEG_GREY_TOLERANCE
    arranged = axes.arrange(pixels, axes.layout(io.image_header(path), 1))
    assert arranged.frames.dtype == np.uint8 and arranged.frames.shape == (32, 40)
    assert "JPEG" in str(arranged.note)
    png = tmp_path / "g.png"  # the same pixels, lossless: colour
    cv2.imwrite(str(png), pixels[..., ::-1])
    with pytest.raises(InputError, match="colour image"):
        axes.arrange(io.read_image(png), axes.layout(io.image_header(png), 1))


def test_outputs_of_a_stack_and_the_windowed_path(tmp_path: Path) -> None:
    header = _tiff(tmp_path / "t.tif", _pixels((4, 6, 7)), imagej=True, metadata={"axes": "TYX"})
    series = axes.layout(header, 1)
    outputs = {"mask": tmp_path / "t_mask.tif", "overlay": tmp_path / "t_overlay.png"}
    assert axes.outputs_for(outputs, series)["overlay"] == tmp_path / "t_overlay.tif"
    with pytest.raises(InputError, match=r"time series .* labels hold Z slices only"):
        axes.outputs_for({**outputs, "labels": tmp_path / "t_labels.tif"}, series)
    with pytest.raises(InputError, match=r"stack of 4 planes .*kept as TYX.* window-by-window"):
        axes.check_windowed(series)
    single = _tiff(tmp_path / "s.tif", _pixels((6, 7)))
    assert axes.outputs_for(outputs, axes.layout(single, 1)) == outputs
    axes.check_windowed(axes.layout(single, 1))
    rgb = _tiff(tmp_path / "rgb.tif", _pixels((6, 7, 3), np.uint8), photometric="rgb")
    axes.check_windowed(axes.layout(rgb, 3))  # an RGB model's own channels
    axes.check_windowed(axes.layout(rgb, 1))  # grey stored as RGB: checked as it is read
    axes.check_windowed(axes.layout(rgb, 1, 1))  # one colour picked: read alone (io.windows)


def test_pixels_that_are_not_the_headers_are_refused(tmp_path: Path) -> None:
    header = _tiff(tmp_path / "s.tif", _pixels((6, 7)))
    with pytest.raises(InputError, match="do not match its header"):
        axes.arrange(_pixels((7, 6)), axes.layout(header, 1))


def test_an_array_with_known_axes_is_arranged_like_a_file() -> None:
    movie = _pixels((3, 2, 6, 7))  # T, C, Y, X
    with pytest.raises(InputError, match=r"the array has 2 channels \(0: a, 1: b\)"):
        axes.arrange_array(movie, "TCYX", 1, names=("a", "b"))
    arranged = axes.arrange_array(movie, "tcyx", 1, channel=1)
    assert arranged.layout.mask_axes == "TYX" and arranged.frames.shape == (3, 6, 7)
    assert np.array_equal(arranged.restack(arranged.frames), movie[:, 1])
    with pytest.raises(InputError, match="one letter per axis"):
        axes.arrange_array(movie, "CYX", 1)


def test_grey_with_alpha_is_grey(tmp_path: Path) -> None:
    grey = _pixels((6, 7))
    pixels = np.dstack([grey, grey * 0 + 65535])  # (Y, X, S): grey and an opaque alpha
    kwargs = {"photometric": "minisblack", "extrasamples": ["unassalpha"]}
    header = _tiff(tmp_path / "la.tif", pixels, **kwargs)
    assert header.axes == "YXS"
    arranged = axes.arrange(tifffile.imread(tmp_path / "la.tif"), axes.layout(header, 1))
    assert np.array_equal(arranged.frames, grey) and "alpha is ignored" in str(arranged.note)
