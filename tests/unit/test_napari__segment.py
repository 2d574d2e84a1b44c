"""What the napari widget computes (unet_edge/napari/_segment.py), without napari or Qt: the
layers that show a result, named and placed on the input, and tile progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
