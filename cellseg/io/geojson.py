"""Export 2D instance labels as GeoJSON detections that QuPath imports (File > Import objects, or drag and drop)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cellseg.io.atomic import atomic_output
from cellseg.io.contours import Ring, object_polygons

CELL_CLASS = "Cell"
CELL_COLOUR = (255, 200, 0)
# A fixed namespace, so that a label always gets the same feature id and re-exports diff cleanly.
_ID_NAMESPACE = uuid.UUID("1f0c3a52-5d1e-4c55-9a83-7c2f4b8e6d10")


def labels_to_geojson(
    labels2d: npt.NDArray[np.integer[Any]], measurements: dict[int, dict[str, float]] | None = None
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with one QuPath detection per object, its outline exactly on pixel edges.

    Coordinates are pixels, ``(x, y)`` with pixel ``(row r, col c)`` covering ``[c, c + 1] x [r, r + 1]``, as
    QuPath's own exports. An object is a ``Polygon`` (outer ring, then holes) or, when it has several 4-connected
    parts, a ``MultiPolygon`` (largest part first). Every feature has an ``id`` (a UUID derived from the label, the
    same in every export) and ``properties``: ``objectType`` ``"detection"``, ``classification`` ``"Cell"``, ``name``
    ``cell_00001`` after the label, and ``measurements`` (``{}`` where none are given).

    Args:
        labels2d: shape ``(H, W)``, integer labels, 0 = background.
        measurements: per label, measurement name -> value (e.g. ``{"area_um2": 41.5}``), shown in QuPath's
            measurement table; labels absent here get none.

    Returns:
        The FeatureCollection, ready for ``json.dump``.

    Raises:
        ValueError: ``labels2d`` is not a 2D integer array.
    """
    measurements = measurements or {}
    features = [
        _feature(label, parts, measurements.get(label, {})) for label, parts in object_polygons(labels2d).items()
    ]
    return {"type": "FeatureCollection", "features": features}


def write_geojson(
    path: str | Path,
    labels: npt.NDArray[np.integer[Any]],
    measurements: dict[int, dict[str, float]] | None = None,
) -> Path:
    """Write ``labels_to_geojson(labels, measurements)`` to a ``.geojson`` file.

    Args:
        path: the file to write; an existing file is replaced.
        labels: shape ``(H, W)``, integer labels, 0 = background.
        measurements: as in ``labels_to_geojson``.

    Returns:
        ``path``.

    Raises:
        ValueError: the labels are not 2D (QuPath's objects are 2D polygons).
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"{path}: GeoJSON holds 2D outlines, these labels have shape {labels.shape}; use tif or nii for 3D labels"
        )
    collection = labels_to_geojson(labels, measurements)
    text = json.dumps(collection, separators=(",", ":"), allow_nan=False)
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def feature_id(label: int) -> str:
    """The GeoJSON feature id of an object: a UUID (version 5) from its label, the same in every export."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"cell_{label}"))


def _feature(label: int, parts: list[list[Ring]], measurements: dict[str, float]) -> dict[str, Any]:
    """The GeoJSON Feature of one object made of ``parts`` (each a list of rings, outer first)."""
    polygons = [[_closed_ring(ring) for ring in part] for part in parts]
    if len(polygons) == 1:
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
    else:
        geometry = {"type": "MultiPolygon", "coordinates": polygons}
    return {
        "type": "Feature",
        "id": feature_id(label),
        "geometry": geometry,
        "properties": {
            "objectType": "detection",
            "classification": {"name": CELL_CLASS, "color": list(CELL_COLOUR)},
            "name": f"cell_{label:05d}",
            "measurements": {name: _json_number(value) for name, value in measurements.items()},
        },
    }


def _json_number(value: float) -> float | None:
    """``value`` as a JSON number; ``None`` (``null``, which QuPath reads as NaN) where it is NaN or infinite."""
    number = float(value)
    return number if np.isfinite(number) else None


def _closed_ring(ring: Ring) -> list[list[int]]:
    """A ring as GeoJSON positions, first position repeated at the end.

    ``object_polygons`` gives outer rings positive shoelace area on ``(x, y)`` and holes negative, which is
    RFC 7946's counter-clockwise exterior and clockwise holes as a validator computes them on the numbers (QuPath
    does not care about orientation). The vertices are pixel corners, so integers keep the file small.
    """
    positions: list[list[int]] = ring.astype(np.int64).tolist()
    return [*positions, positions[0]]
