"""Objects: instance labels from the model's object classes, their measurements, ROIs.

- :mod:`~unet_edge.objects.labels`: :func:`object_mask`, :func:`label`,
  :func:`label_stack` (OpenCV connected components, raster-order ids),
  :class:`MinSize`, :func:`give_border` (a border class back to its objects);
  :mod:`~unet_edge.objects.split` splits touching objects;
- :mod:`~unet_edge.objects.measure`: :class:`ObjectSums` (per-object sums
  that windows add up exactly), :func:`measure_labels`, :func:`measure_stack`;
  :mod:`~unet_edge.objects.table`: :class:`ObjectTable` and its CSV;
- :mod:`~unet_edge.objects.outlines`: polygons of each object;
  :mod:`~unet_edge.objects.rois`: an ImageJ ROI set (roifile);
  :mod:`~unet_edge.objects.geojson`: a QuPath-readable FeatureCollection.

Needs numpy and OpenCV only (roifile for ROI sets, SciPy for 3-D labels).
"""

from __future__ import annotations

from .labels import (
    MinSize,
    Split,
    give_border,
    label,
    label_classes,
    label_stack,
    object_mask,
    pixel_area_um2,
)
from .measure import ObjectSums, measure_labels, measure_stack
from .table import ObjectTable

__all__ = [
    "MinSize",
    "ObjectSums",
    "ObjectTable",
    "Split",
    "give_border",
    "label",
    "label_classes",
    "label_stack",
    "measure_labels",
    "measure_stack",
    "object_mask",
    "pixel_area_um2",
]
