"""Outlines of objects: polygons along pixel edges, with their holes.

Each object's outline is traced with ``cv2.findContours`` on its own crop of
the label image. Traced as is, OpenCV's contours run through the centres of
the boundary pixels, so a polygon would cut every boundary pixel in half. The
crop is therefore doubled (each pixel a 2 x 2 block) first: the contour then
runs a quarter pixel inside the true edge, and ``(u + 1) // 2`` maps each of
its points onto the pixel corner outside it. The result follows the pixel
edges, as ImageJ's wand and Analyze Particles trace them: vertices at integer
pixel-corner coordinates (x right, y down, the top-left corner of the image
at 0, 0), the polygon's area (holes subtracted) equal to the object's pixel
count, its bounds equal to the object's bounding box. These are the
coordinates of ImageJ ROIs and of QuPath's GeoJSON alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Outline", "outlines", "ring_area"]


@dataclass(frozen=True)
class Outline:
    """One object's polygon: ``label``, its ``exterior`` and ``holes``, each an int64
    (n, 2) array of (x, y) pixel-corner coordinates, not closed (first != last)."""

    label: int
    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """(left, top, width, height) in pixels: the object's bounding box."""
        lo, hi = self.exterior.min(axis=0), self.exterior.max(axis=0)
        return int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])


def ring_area(ring: np.ndarray) -> float:
    """Signed area of a polygon ring (x, y) by the shoelace formula (positive when the
    ring turns clockwise on the screen, y down)."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2


def outlines(labels: np.ndarray, boxes: np.ndarray | None = None) -> Iterator[Outline]:
    """The outline of every object of a (H, W) label image, by ascending id.

    ``boxes`` (optional): (ids, 4) int rows (top, left, bottom, right), inclusive
    pixel indices per id (row i for id i; a row with bottom < top is no object),
    as :class:`unet_edge.objects.ObjectSums` keeps them; found here if None.
    """
    labels = np.asarray(labels)
    if boxes is None:
        from .measure import ObjectSums

        s = ObjectSums().add(labels)
        boxes = np.stack([s.min_y, s.min_x, s.max_y, s.max_x], axis=1)
    for i in np.flatnonzero(boxes[:, 2] >= boxes[:, 0]):
        if i == 0:
            continue
        top, left, bottom, right = (int(v) for v in boxes[i])
        crop = labels[top : bottom + 1, left : right + 1] == i
        yield _trace(int(i), crop, left, top)


def _trace(label: int, crop: np.ndarray, left: int, top: int) -> Outline:
    """The outline of the True pixels of ``crop`` (one 4-connected object), whose top-left
    pixel is (``left``, ``top``) in the image."""
    doubled = np.repeat(np.repeat(crop.view(np.uint8), 2, axis=0), 2, axis=1)
    padded = cv2.copyMakeBorder(doubled, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings = [_corners(c[:, 0, :], left, top) for c in contours]
    parents = hierarchy[0][:, 3]
    outer = [r for r, p in zip(rings, parents, strict=True) if p < 0]
    holes = tuple(r for r, p in zip(rings, parents, strict=True) if p >= 0)
    # One 4-connected object has one exterior; keep the largest should OpenCV ever split it.
    exterior = max(outer, key=lambda r: abs(ring_area(r)))
    return Outline(label, exterior, holes)


def _corners(points: np.ndarray, left: int, top: int) -> np.ndarray:
    """Contour points of the padded, doubled crop -> pixel corners of the image, without
    repeated or collinear vertices."""
    corners = (points.astype(np.int64) - 1 + 1) // 2 + (left, top)
    keep = np.any(corners != np.roll(corners, 1, axis=0), axis=1)
    corners = corners[keep] if keep.any() else corners[:1]
    if len(corners) < 3:
        return corners
    prev, nxt = np.roll(corners, 1, axis=0), np.roll(corners, -1, axis=0)
    cross = (corners - prev)[:, 0] * (nxt - corners)[:, 1] - (corners - prev)[:, 1] * (
        nxt - corners
    )[:, 0]
    return corners[cross != 0]
