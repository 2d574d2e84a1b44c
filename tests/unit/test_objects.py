"""unet_edge.objects: the public face, light to import (numpy and OpenCV only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import unet_edge.objects as objects


def test_public_names_work_together() -> None:
    assert set(objects.__all__) <= set(dir(objects))
    classes = np.zeros((6, 8), np.uint8)
    classes[1:3, 1:4] = 1
    classes[4:6, 5:8] = 2
    labels = objects.label(objects.object_mask(classes, [1, 2]))
    assert labels.max() == 2
    table = objects.measure_labels(labels)
    assert isinstance(table, objects.ObjectTable) and list(table["area_px"]) == [6, 6]
    assert objects.ObjectSums().add(labels).count.tolist() == [0, 6, 6]


def test_import_needs_no_roifile_scipy_or_onnxruntime(imports_none_of: Callable[..., None]) -> None:
    imports_none_of("import unet_edge.objects", "roifile", "scipy", "onnxruntime", "torch")
