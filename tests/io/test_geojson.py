from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from skimage.draw import disk

from cellseg.io.contours import Ring, signed_area
from cellseg.io.geojson import feature_id, labels_to_geojson, write_geojson
from tests.io.test_contours import rasterise


def _labels() -> npt.NDArray[np.int32]:
    labels = np.zeros((24, 28), dtype=np.int32)
    labels[disk((7, 7), 5)] = 1
    labels[disk((7, 7), 2)] = 0  # a hole
    labels[disk((15, 19), 6)] = 2
    labels[22:, :4] = 3  # on the image's corner
    labels[0, 27] = 3  # and a second part: a MultiPolygon
    labels[12, 5] = 5  # one pixel
    return labels


def _polygons(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    """A geometry's polygons, each a list of closed rings of ``[x, y]`` positions."""
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else list(geometry["coordinates"])


def _filled(collection: dict[str, Any], shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    polygons: dict[int, list[list[Ring]]] = {}
    for feature in collection["features"]:
        label = int(feature["properties"]["name"].removeprefix("cell_"))
        parts = _polygons(feature["geometry"])
        polygons[label] = [[np.array(ring[:-1], dtype=np.float64) for ring in part] for part in parts]
    return rasterise(polygons, shape)


def test_features_fill_back_to_the_labels(tmp_path: Path) -> None:
    labels = _labels()
    collection = json.loads(write_geojson(tmp_path / "cells.geojson", labels).read_text())
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == 4
    np.testing.assert_array_equal(_filled(collection, labels.shape), labels)


def test_each_feature_is_a_qupath_detection_with_a_stable_unique_id() -> None:
    features = labels_to_geojson(_labels())["features"]
    assert [feature["properties"]["name"] for feature in features] == [
        "cell_00001",
        "cell_00002",
        "cell_00003",
        "cell_00005",
    ]
    for feature in features:
        assert feature["type"] == "Feature"
        properties = feature["properties"]
        assert properties["objectType"] == "detection"
        assert properties["classification"]["name"] == "Cell"
        assert len(properties["classification"]["color"]) == 3
        assert properties["measurements"] == {}
    ids = [feature["id"] for feature in features]
    assert len(set(ids)) == len(ids)
    assert ids == [feature["id"] for feature in labels_to_geojson(_labels())["features"]]
    assert ids[0] == feature_id(1)


def test_rings_are_closed_exteriors_counter_clockwise_holes_clockwise() -> None:
    features = labels_to_geojson(_labels())["features"]
    geometry_types = [feature["geometry"]["type"] for feature in features]
    assert geometry_types == ["Polygon", "Polygon", "MultiPolygon", "Polygon"]
    assert len(features[0]["geometry"]["coordinates"]) == 2  # outer ring and hole
    for feature in features:
        for polygon in _polygons(feature["geometry"]):
            for index, ring in enumerate(polygon):
                assert ring[0] == ring[-1]
                area = signed_area(np.array(ring[:-1], dtype=np.float64))
                assert area > 0 if index == 0 else area < 0


def test_measurements_are_carried(tmp_path: Path) -> None:
    measurements = {1: {"area": 66.0, "mean_intensity": 0.25}, 2: {"area": 113.0, "eccentricity": math.nan}}
    path = write_geojson(tmp_path / "cells.geojson", _labels(), measurements)
    features = json.loads(path.read_text())["features"]
    assert features[0]["properties"]["measurements"] == {"area": 66.0, "mean_intensity": 0.25}
    assert features[1]["properties"]["measurements"] == {"area": 113.0, "eccentricity": None}
    assert features[2]["properties"]["measurements"] == {}


def test_3d_labels_are_refused_with_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cells\.geojson: GeoJSON holds 2D outlines.*use tif or nii"):
        write_geojson(tmp_path / "cells.geojson", np.zeros((2, 4, 4), np.int32))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_write_then_fail(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with self.open("w") as file:
            file.write(text[:10])
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", half_write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_geojson(tmp_path / "cells.geojson", _labels())
    assert list(tmp_path.iterdir()) == []


def test_empty_labels_give_an_empty_collection() -> None:
    assert labels_to_geojson(np.zeros((3, 3), np.uint16)) == {"type": "FeatureCollection", "features": []}
