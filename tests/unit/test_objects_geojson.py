"""unet_edge.objects.geojson: a valid FeatureCollection with closed, oriented rings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unet_edge.objects.geojson import feature_collection, write_geojson
from unet_edge.objects.measure import measure_labels, measure_stack
from unet_edge.objects.outlines import ring_area


def _labels() -> np.ndarray:
    lab = np.zeros((10, 12), np.uint32)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0
    lab[7:9, 8:11] = 2
    return lab


def _check_feature_collection(fc: dict) -> None:  # type: ignore[type-arg]
    """RFC 7946's rules for Polygons, checked field by field."""
    assert fc["type"] == "FeatureCollection" and isinstance(fc["features"], list)
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        rings = f["geometry"]["coordinates"]
        for i, ring in enumerate(rings):
            assert len(ring) >= 4 and ring[0] == ring[-1]
            assert all(len(p) == 2 and all(isinstance(v, int) for v in p) for p in ring)
            # exterior counter-clockwise in (x, y) axes, holes clockwise
            area = ring_area(np.array(ring[:-1]))  # > 0: clockwise on screen (y down)
            assert (area > 0) == (i == 0)


def test_features_with_measurements(tmp_path: Path) -> None:
    lab = _labels()
    table = measure_labels(lab, prob=np.full(lab.shape, 0.9))
    path = write_geojson(tmp_path / "x_objects.geojson", lab, table, "cell")
    fc = json.loads(path.read_text())
    _check_feature_collection(fc)
    first, second = fc["features"]
    assert first["properties"]["name"] == "1" and first["properties"]["objectType"] == "detection"
    assert first["properties"]["classification"] == {"name": "cell"}
    assert first["properties"]["measurements"]["area_px"] == 24
    assert len(first["geometry"]["coordinates"]) == 2  # the hole
    assert second["geometry"]["coordinates"][0][0] in ([8, 7], [11, 7], [11, 9], [8, 9])
    assert len({f["id"] for f in fc["features"]}) == 2


def test_stack_features_carry_their_plane() -> None:
    stack = np.stack([_labels(), _labels()[::-1]])
    fc = feature_collection(stack, measure_stack(stack))
    _check_feature_collection(fc)
    assert [f["geometry"]["plane"]["z"] for f in fc["features"]] == [0, 0, 1, 1]
    assert fc["features"][2]["properties"]["name"] == "z2-1"
    assert fc["features"][2]["properties"]["measurements"]["slice"] == 2
    assert "measurements" not in feature_collection(stack)["features"][0]["properties"]
