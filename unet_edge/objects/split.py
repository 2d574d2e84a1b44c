"""Splitting touching convex objects: a seeded watershed on the distance transform.

Each object's distance to the background (``cv2.distanceTransform``) has one
maximum per convex part. A *seed* is a maximum (a plateau of them counts
once) that is the highest point of its own inscribed disc; a bump of the
outline is not, since the object is thicker within that disc. An object with
two or more seeds is flooded from them in order of decreasing distance
(``cv2.watershed``), so the cut runs through the neck between the parts.

``cv2.watershed`` orders its flood by the colour difference between a pixel
and the neighbour it is reached from. Writing the flood height ``h`` into
channel 0 on the even pixels of a checkerboard and into channel 1 on the odd
ones (4-neighbours always differ in parity) makes that difference
``max(h(p), h(q))``: the immersion order of a watershed on ``h``, exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["split_touching"]

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def split_touching(labels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``labels`` (uint32 (H, W), 1..N in raster order) with every object of two or more
    seeds split into one object per seed, renumbered 1..M in raster order of first pixels.

    ``boxes[i]`` is object i's bounding box (x, y, width, height), as the first four
    columns of ``cv2.connectedComponentsWithStats``' stats (row 0: the background)."""
    mask = (labels > 0).view(np.uint8)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    peak = ((dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & (dist >= 1)).view(np.uint8)
    n, groups, stats, _ = cv2.connectedComponentsWithStats(peak, connectivity=8)
    seeds: dict[int, list[int]] = {}  # object id -> plateau ids of its seeds
    for g in range(1, n):
        x, y, w, h = stats[g, :4]
        ys, xs = np.nonzero(groups[y : y + h, x : x + w] == g)
        py, px = int(ys[0] + y), int(xs[0] + x)
        if _tops_its_disc(dist, labels, py, px):
            seeds.setdefault(int(labels[py, px]), []).append(g)
    out = labels.copy()
    next_id = int(labels.max()) + 1
    for obj, plateaus in seeds.items():
        if len(plateaus) > 1:
            next_id = _flood(out, dist, groups, obj, plateaus, boxes[obj], next_id)
    return out if next_id == int(labels.max()) + 1 else _raster_order(out)


def _tops_its_disc(dist: np.ndarray, labels: np.ndarray, y: int, x: int) -> bool:
    """Whether no pixel of the same object within distance ``dist[y, x]`` of (y, x) lies
    deeper inside it than (y, x)."""
    r = float(dist[y, x])
    k = int(np.ceil(r))
    top, left = max(0, y - k), max(0, x - k)
    d = dist[top : y + k + 1, left : x + k + 1]
    same = labels[top : y + k + 1, left : x + k + 1] == labels[y, x]
    yy, xx = np.ogrid[top - y : top - y + d.shape[0], left - x : left - x + d.shape[1]]
    inside = (yy * yy + xx * xx <= r * r) & same
    return bool(d[inside].max() <= r + 1e-4)


def _flood(
    out: np.ndarray,
    dist: np.ndarray,
    groups: np.ndarray,
    obj: int,
    plateaus: list[int],
    bbox: np.ndarray,
    next_id: int,
) -> int:
    """Split object ``obj`` (bounding box ``bbox``: x, y, w, h) of ``out`` in place from the
    seed ``plateaus`` (ids in ``groups``); its parts take ``obj`` and ids from ``next_id``
    on. Returns the next free id."""
    x0, y0, bw, bh = (int(v) for v in bbox[:4])
    crop = (slice(y0, y0 + bh), slice(x0, x0 + bw))
    # A 1-px ring around the crop: cv2.watershed claims the image's border pixels.
    inside = np.pad(out[crop] == obj, 1)
    d = np.pad(dist[crop], 1)
    g = np.pad(groups[crop], 1)
    h, w = inside.shape
    height = np.full((h, w), 255, np.uint8)  # outside the object: flooded last, never used
    height[inside] = 1 + np.rint((1 - d[inside] / d[inside].max()) * 253).astype(np.uint8)
    markers = np.zeros((h, w), np.int32)
    for i, plateau in enumerate(plateaus, 1):
        markers[(g == plateau) & inside] = i
    odd = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.where(odd, 0, height)
    image[..., 1] = np.where(odd, height, 0)
    cv2.watershed(image, markers)
    _fill_lines(markers, inside)
    ids = np.array([0, obj, *range(next_id, next_id + len(plateaus) - 1)], np.uint32)
    part = out[crop]
    part[inside[1:-1, 1:-1]] = ids[markers[1:-1, 1:-1][inside[1:-1, 1:-1]]]
    return next_id + len(plateaus) - 1


def _fill_lines(markers: np.ndarray, inside: np.ndarray) -> None:
    """Give each watershed-line pixel (-1) of the object a neighbouring part's id, in place."""
    markers[~inside] = 0
    for _ in range(markers.size):
        line = inside & (markers <= 0)
        if not line.any():
            return
        grown = cv2.dilate(np.maximum(markers, 0).astype(np.float32), _CROSS)
        markers[line] = grown[line].astype(np.int32)


def _raster_order(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 1..N in raster order of each object's first pixel (0 stays 0)."""
    ids, first = np.unique(labels.ravel(), return_index=True)
    order = np.argsort(first[ids > 0], kind="stable")
    lut = np.zeros(int(ids.max()) + 1, np.uint32)
    lut[ids[ids > 0][order]] = np.arange(1, len(order) + 1, dtype=np.uint32)
    return lut[labels]
