"""unet_edge.scale: the factor from two pixel sizes, and resampling that windows cannot change."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unet_edge import scale
from unet_edge.errors import InputError, ModelError, ScaleError
from unet_edge.imagemeta import Calibration
from unet_edge.metadata import PixelSize

MODEL = PixelSize(0.004, 0.004)


@pytest.mark.parametrize(("n_in", "n_out"), [(101, 50), (77, 24), (64, 16), (50, 101), (31, 77)])
def test_taps_resample_as_cv2_area_when_shrinking_and_linear_when_enlarging(
    n_in: int, n_out: int
) -> None:
    rng = np.random.default_rng(n_in)
    a = rng.random((n_in, 9)).astype(np.float32) * 255
    mine = scale._apply(a, scale.taps(n_in, n_out), 0)
    how = cv2.INTER_AREA if n_out < n_in else cv2.INTER_LINEAR
    ref = cv2.resize(a, (9, n_out), interpolation=how)
    assert mine.shape == (n_out, 9)
    np.testing.assert_allclose(mine, ref, atol=1e-3)


def test_taps_of_equal_sizes_copy_exactly() -> None:
    a = np.arange(35, dtype=np.uint16).reshape(7, 5) * 1000
    assert np.array_equal(scale._apply(a, scale.taps(7, 7), 0), a.astype(np.float32))


def test_area_weights_sum_to_one_and_indices_stay_inside() -> None:
    for n_in, n_out in [(10, 3), (1000, 7), (5, 1)]:
        idx, w = scale.taps(n_in, n_out)
        np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
        assert idx.min() >= 0 and idx.max() < n_in


@pytest.mark.parametrize("factor", [2.0, 0.5, 1.37, 0.31, 3.3])
def test_a_window_of_the_resampled_image_is_bit_for_bit_the_whole_ones(factor: float) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 4096, (97, 83, 2)).astype(np.uint16)
    grid = scale.resolve(MODEL, 0.004 * factor, None).grid(frame.shape[:2])  # type: ignore[union-attr]
    whole = grid.image(frame)
    hh, ww = grid.model_shape
    assert whole.shape == (hh, ww, 2) and whole.dtype == np.float32
    read = grid.reader(lambda t, lf, h, w: frame[t : t + h, lf : lf + w])
    for top, left, h, w in [
        (0, 0, hh, ww),
        (hh // 3, ww // 4, hh // 2, ww // 3),
        (hh - 1, 0, 1, 5),
    ]:
        assert np.array_equal(read(top, left, h, w), whole[top : top + h, left : left + w])


@pytest.mark.parametrize("factor", [2.0, 0.5, 0.77])
def test_probabilities_back_on_a_region_are_bit_for_bit_the_whole_ones(factor: float) -> None:
    grid = scale.resolve(MODEL, 0.004 * factor, None).grid((61, 45))  # type: ignore[union-attr]
    probs = np.random.default_rng(2).random((3, *grid.model_shape)).astype(np.float32)
    whole = grid.back(probs)
    assert whole.shape == (3, 61, 45)
    for region in [(10, 7, 40, 30), (0, 0, 1, 1), (60, 44, 1, 1), (0, 0, 61, 45)]:
        t, lf, h, w = region
        m = grid.model_region(region)
        part = grid.back(probs[:, m[0] : m[0] + m[2], m[1] : m[1] + m[3]], region)
        assert np.array_equal(part, whole[:, t : t + h, lf : lf + w])


def test_probabilities_back_still_sum_to_one() -> None:
    grid = scale.resolve(MODEL, 0.008, None).grid((40, 40))  # type: ignore[union-attr]
    p = np.random.default_rng(3).random((2, *grid.model_shape)).astype(np.float32)
    p /= p.sum(0)
    np.testing.assert_allclose(grid.back(p).sum(0), 1, atol=1e-5)


def test_parse_takes_numbers_text_native_and_calibrations() -> None:
    cal = Calibration(8.0, 8.0, "nm")
    assert scale.parse(None) is None and scale.parse(cal) is cal
    assert scale.parse(" Native ") == "native"
    assert scale.parse("0.008") == 0.008 and scale.parse(2) == 2.0
    for bad in ("eight", 0, -1, float("nan"), float("inf"), True, "1e9", [0.1]):
        with pytest.raises(InputError, match="micrometres per pixel") as e:
            scale.parse(bad)
        assert e.value.option == "pixel_size"


def test_resolve_from_a_calibration_in_nm_gives_the_factor_and_both_sizes() -> None:
    r = scale.resolve(MODEL, None, Calibration(x=2.0, y=8.0, unit="nm"))
    assert r is not None and r.factor == pytest.approx((2.0, 0.5)) and not r.stated
    d = r.to_dict()
    assert d["input_pixel_size_um"] == pytest.approx([0.008, 0.002])
    assert d["model_pixel_size_um"] == [0.004, 0.004]
    assert r.grid((100, 100)).model_shape == (200, 50)


def test_resolve_runs_as_is_when_a_size_is_unknown_equal_or_turned_off() -> None:
    found = Calibration(0.008, 0.008)
    assert scale.resolve(None, None, found) is None  # model without a pixel size: as today
    assert scale.resolve(MODEL, None, None) is None  # uncalibrated input
    assert scale.resolve(MODEL, "native", found) is None
    assert scale.resolve(MODEL, None, Calibration(4.0, 4.0, "nm")) is None  # factor 1


def test_a_stated_size_overrides_the_files() -> None:
    r = scale.resolve(MODEL, 0.002, Calibration(0.008, 0.008))
    assert r is not None and r.factor == pytest.approx((0.5, 0.5)) and r.stated


def test_a_stated_size_for_a_model_without_one_is_refused() -> None:
    with pytest.raises(InputError, match="does not record the pixel size"):
        scale.resolve(None, 0.008, None)


def test_beyond_8x_from_a_file_is_refused_naming_both_sizes_unless_stated() -> None:
    far = Calibration(0.05, 0.05)  # 12.5x
    with pytest.raises(ScaleError) as e:
        scale.resolve(MODEL, None, far)
    msg = str(e.value)
    assert "0.05 µm" in msg and "0.004 µm" in msg and "8x" in msg and "\n" not in msg
    assert e.value.option == "pixel_size" and isinstance(e.value, ValueError)
    with pytest.raises(ScaleError):
        scale.resolve(MODEL, None, Calibration(0.0004, 0.0004))  # 1/10
    assert scale.resolve(MODEL, None, Calibration(0.032, 0.032)) is not None  # 8x exactly
    assert scale.resolve(MODEL, 0.05, far) is not None  # stated: the user knows


def test_output_calibration_is_the_stated_size_else_the_files() -> None:
    found = Calibration(1.0, 1.0, "µm", 2.0)
    assert scale.output_calibration(None, found) is found
    assert scale.output_calibration("native", found) is found
    assert scale.output_calibration(0.008, found) == Calibration(0.008, 0.008, "µm", 2.0)
    assert scale.output_calibration(0.008, None) == Calibration(0.008, 0.008, "µm", None)


def test_frame_grid_of_arrays_needs_a_stated_size() -> None:
    assert scale.frame_grid(MODEL, None, (10, 10)) is None
    grid = scale.frame_grid(MODEL, 0.008, (10, 10))
    assert grid is not None and grid.model_shape == (20, 20)


def test_dask_chunks_cover_the_image_and_are_deeper_than_the_overlap() -> None:
    grid = scale.resolve(MODEL, 0.002, None).grid((1000, 130))  # type: ignore[union-attr]
    depth = grid.depth(108)
    assert depth >= 108 / 0.5
    rows, cols = grid.chunks(300, depth)
    assert sum(rows) == 1000 and sum(cols) == 130 and min(rows) >= min(depth, 1000)
    assert scale.Rescale((2.0, 0.5), (0.008, 0.002), (0.004, 0.004)).window((512, 512)) == (
        256,
        1024,
    )


def test_model_pixel_size_round_trips_through_the_metadata() -> None:
    from unet_edge import metadata
    from unet_edge.config import Normalization, UNetConfig

    info = metadata.ModelInfo(UNetConfig(base_width=2), Normalization(), ("a", "b"))
    assert "pixel_size" not in info.to_dict()  # a model without one is written as before
    assert metadata.from_dict(info.to_dict()).pixel_size is None
    with_px = metadata.ModelInfo(
        UNetConfig(base_width=2), Normalization(), ("a", "b"), pixel_size=PixelSize(0.004, 0.005)
    )
    d = with_px.to_dict()
    assert d["pixel_size"] == {"y": 0.004, "x": 0.005, "unit": "µm"}
    assert metadata.from_dict(d).pixel_size == PixelSize(0.004, 0.005)
    d["pixel_size"] = {"y": 4, "x": 4, "unit": "nm"}
    assert metadata.from_dict(d).pixel_size == PixelSize(0.004, 0.004)
    for bad in ({"y": 4, "x": 4, "unit": "px"}, {"y": "4", "x": 4}, {"y": -1, "x": 1}, [4, 4]):
        d["pixel_size"] = bad
        with pytest.raises(ModelError, match=r"pixel size|pixel_size"):
            metadata.from_dict(d)


def test_the_shipped_model_states_4_nm() -> None:
    from unet_edge import metadata
    from unet_edge.runtime import default_model_path

    assert metadata.read(default_model_path()).pixel_size == PixelSize(0.004, 0.004)
