"""What the napari widget computes (unet_edge/napari/_segment.py), without napari or Qt: the
layers that show a result, named and placed on the input, tile progress, and which pixel size
a layer is segmented at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.errors import InputError, ScaleError
from unet_edge.metadata import PixelSize
from unet_edge.napari import _segment
from unet_edge.runtime import Segmenter


def test_layers_name_and_place_the_result() -> None:
    mask = np.zeros((2, 4, 5), np.uint8)
    meta = {"provenance": {"software": "unet-edge"}}
    data, kwargs, kind = _segment.mask_layer(mask, "cells", {"scale": (2.0, 0.5, 0.5)}, meta)
    assert data is mask and kind == "labels"
    assert kwargs == {"name": "cells mask", "scale": (2.0, 0.5, 0.5), "metadata": meta}
    probs = np.zeros((2, 3, 4, 5), np.float32)  # (Z, K, H, W)
    data, kwargs, kind = _segment.probability_layer(probs, "cells", ["a", "b", "c"], {}, meta)
    assert kind == "image" and kwargs["channel_axis"] == 1
    assert kwargs["name"] == ["cells p(a)", "cells p(b)", "cells p(c)"]
    assert kwargs["contrast_limits"] == [0.0, 1.0] and kwargs["blending"] == "additive"


def test_progress_then_the_same_mask_as_segment(tiny_onnx: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8)
    with Segmenter(tiny_onnx, "cpu") as seg:
        steps = _segment.segment_steps(seg, image)
        seen = []
        try:
            while True:
                seen.append(next(steps))
        except StopIteration as stop:
            pred = stop.value
        total = seen[0][1]
        assert seen[0] == (0, total) and seen[-1] == (total, total) and total >= 1
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert np.array_equal(pred.mask, seg.segment(image))
        layers = _segment.result_layers(
            pred, "img", {"scale": (0.5, 0.5, 9.0), "translate": None}, {"a": 1},
            seg.info.class_names, probabilities=True,
        )  # fmt: skip
        assert [k for _, _, k in layers] == ["labels", "image"]
        assert layers[0][1]["scale"] == (0.5, 0.5) and "translate" not in layers[0][1]
        prov = _segment.provenance(seg, pred, "img")
        assert prov["software"].startswith("unet-edge")


PX = PixelSize(0.004, 0.004)  # the shipped ISBI model's training pixel size
UM, NM = ("micrometer", "micrometer"), ("nanometer", "nanometer")


def test_the_layers_length_scale_is_its_pixel_size_and_the_field_overrides_it() -> None:
    layer = {"scale": (8.0, 8.0), "units": NM, "translate": (5.0, 6.0)}
    rescale, said = _segment.pixel_size_for(PX, None, layer, 2)
    assert rescale is not None and rescale.factor == (2.0, 2.0) and not rescale.stated
    assert (
        said == "pixel size 0.008 µm (the layer's): resampled x2 to the model's 0.004 µm and back"
    )
    rescale, said = _segment.pixel_size_for(PX, "0.002", layer, 2)  # the field, as typed
    assert rescale is not None and rescale.factor == (0.5, 0.5) and rescale.stated
    assert said.startswith("pixel size 0.002 µm (stated): resampled x0.5")
    assert _segment.pixel_size_for(PX, "native", layer, 2) == (
        None,
        "pixel size: native, as stated: not resampled to the model's 0.004 µm",
    )
    zyx = {"scale": (0.05, 0.004, 0.008), "units": ("micrometer",) * 3}  # a stack, Y and X last
    rescale, said = _segment.pixel_size_for(PX, None, zyx, 3)
    assert rescale is not None and rescale.factor == (1.0, 2.0)
    assert "0.004 x 0.008 µm (the layer's): resampled x1 (y), x2 (x)" in said


def test_a_scale_without_a_length_unit_is_not_a_pixel_size() -> None:
    pixels = {"scale": (0.008, 0.008), "units": ("pixel", "pixel")}  # napari's default unit
    rescale, said = _segment.pixel_size_for(PX, None, pixels, 2)
    assert rescale is None and said == (
        "pixel size unknown (the layer's scale, 0.008 x 0.008, is in pixel, not a length "
        "unet-edge reads): not resampled to the model's 0.004 µm; state it in µm"
    )
    _, said = _segment.pixel_size_for(PX, None, {"scale": (0.008, 0.008), "units": None}, 2)
    assert "(the layer has no units)" in said
    _, said = _segment.pixel_size_for(PX, None, {"scale": (1, 1), "units": ("nm", "um")}, 2)
    assert "(the layer's y and x are in nm and um)" in said
    rescale, _ = _segment.pixel_size_for(PX, 0.008, pixels, 2)  # stated: resampled
    assert rescale is not None and rescale.factor == (2.0, 2.0)


def test_the_models_own_pixel_size_and_a_model_without_one_are_not_resampled() -> None:
    same = {"scale": (4.0, 4.0), "units": NM}
    assert _segment.pixel_size_for(PX, None, same, 2) == (
        None,
        "pixel size (the layer's) is the model's 0.004 µm: not resampled",
    )
    layer = {"scale": (0.008, 0.008), "units": UM}
    assert _segment.pixel_size_for(None, None, layer, 2) == (
        None,
        "the model records no training pixel size: not resampled",
    )
    rescale, said = _segment.pixel_size_for(None, "0.008", layer, 2)
    assert rescale is None and said.endswith("; the pixel size field does nothing for it")


def test_a_layer_far_from_the_models_pixel_size_is_refused_unless_stated() -> None:
    micron = {"scale": (1.0, 1.0), "units": UM}  # 250x the model's: more likely not a calibration
    with pytest.raises(ScaleError, match=r"1 µm, is 250x the model's, 0.004 µm"):
        _segment.pixel_size_for(PX, None, micron, 2)
    rescale, _ = _segment.pixel_size_for(PX, "1", micron, 2)
    assert rescale is not None and rescale.factor == (250.0, 250.0) and rescale.stated
    assert _segment.pixel_size_for(PX, "native", micron, 2)[0] is None
    with pytest.raises(InputError, match="pixel size 'eight nm' is neither a number"):
        _segment.pixel_size_for(PX, "eight nm", micron, 2)


def test_objects_are_measured_at_a_stated_pixel_size(tiny_onnx: Path) -> None:
    image = np.random.default_rng(2).integers(0, 255, (40, 30), dtype=np.uint8)
    with Segmenter(tiny_onnx, "cpu") as seg:
        pred = seg.analyze(image)
    pixels = {"scale": (1.0, 1.0), "units": ("pixel", "pixel")}
    _, plain = _segment.objects_of(pred, image, pixels)
    _, stated = _segment.objects_of(pred, image, pixels, 0.5)
    assert "area_px" in plain.columns and "area_um2" not in plain.columns
    assert np.allclose(stated["area_um2"], plain["area_px"] * 0.25)
