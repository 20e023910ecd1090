from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.path import Path as PolygonPath
from skimage.draw import disk

from cellseg.io.contours import Ring, object_polygons, signed_area


def rasterise(polygons: dict[int, list[list[Ring]]], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """Fill polygons on pixel edges back into labels: a pixel is inside when its centre is (even-odd per part).

    Pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``, never on an edge of a polygon whose vertices are
    pixel corners, so the test is exact (``skimage.draw.polygon`` would need the same half-pixel shift).
    """
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    filled = np.zeros(height * width, dtype=np.int64)
    for label, parts in polygons.items():
        for part in parts:
            inside = np.zeros(height * width, dtype=bool)
            for ring in part:
                inside ^= PolygonPath(ring).contains_points(centres)
            assert not filled[inside].any(), "parts or objects overlap"
            filled[inside] = label
    return filled.reshape(shape)


def _check_rings(polygons: dict[int, list[list[Ring]]]) -> None:
    """Every ring is simple and axis-aligned on pixel corners, without collinear vertices; outer rings first."""
    for parts in polygons.values():
        for part in parts:
            assert signed_area(part[0]) > 0
            assert all(signed_area(hole) < 0 for hole in part[1:])
            for ring in part:
                assert ring.dtype == np.float64
                assert ring.shape[1] == 2
                assert len(ring) >= 4
                np.testing.assert_array_equal(ring, np.round(ring))
                assert len(np.unique(ring, axis=0)) == len(ring), "a vertex is visited twice"
                steps = np.diff(np.vstack([ring, ring[:1]]), axis=0)
                is_horizontal = steps[:, 1] == 0
                assert ((steps[:, 0] == 0) != is_horizontal).all(), "an edge is not axis-aligned"
                assert (is_horizontal != np.roll(is_horizontal, 1)).all(), "two consecutive edges are collinear"


def _assert_traced_exactly(labels: npt.NDArray[Any]) -> dict[int, list[list[Ring]]]:
    polygons = object_polygons(labels)
    assert sorted(polygons) == sorted(int(v) for v in np.unique(labels) if v != 0)
    np.testing.assert_array_equal(rasterise(polygons, labels.shape), labels)
    _check_rings(polygons)
    return polygons


def test_single_pixel_is_a_unit_square() -> None:
    labels = np.zeros((3, 4), dtype=np.int32)
    labels[1, 2] = 7
    polygons = _assert_traced_exactly(labels)
    (ring,) = polygons[7][0]
    assert {tuple(v) for v in ring.tolist()} == {(2.0, 1.0), (3.0, 1.0), (3.0, 2.0), (2.0, 2.0)}


def test_rectangle_has_four_vertices_on_its_pixel_edges() -> None:
    labels = np.zeros((6, 8), dtype=np.uint16)
    labels[1:4, 2:7] = 1  # rows 1..3, cols 2..6
    (ring,) = _assert_traced_exactly(labels)[1][0]
    assert len(ring) == 4
    assert (ring.min(axis=0).tolist(), ring.max(axis=0).tolist()) == ([2.0, 1.0], [7.0, 4.0])


def test_disc_and_touching_neighbours() -> None:
    labels = np.zeros((32, 32), dtype=np.int32)
    labels[disk((12, 12), 8)] = 1
    labels[disk((20, 22), 7)] = 2  # overlaps disc 1: they share a border
    labels[28:, 2:9] = 3
    _assert_traced_exactly(labels)


def test_object_with_holes_has_outer_ring_then_holes() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[disk((10, 10), 8)] = 4
    labels[disk((10, 10), 3)] = 0
    labels[4, 10] = 0  # a second, 1-pixel hole
    labels[disk((10, 10), 1)] = 5  # an island inside the hole is another object
    polygons = _assert_traced_exactly(labels)
    assert len(polygons[4]) == 1
    assert len(polygons[4][0]) == 3
    assert signed_area(polygons[4][0][0]) + sum(signed_area(hole) for hole in polygons[4][0][1:]) == (labels == 4).sum()


def test_diagonal_only_touch_makes_separate_parts_largest_first() -> None:
    labels = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 0],
        ]
    )
    polygons = _assert_traced_exactly(labels)
    assert len(polygons[1]) == 2
    assert [signed_area(part[0]) for part in polygons[1]] == [4.0, 1.0]


def test_diagonal_bay_becomes_a_hole_touching_the_outer_ring() -> None:
    # The background pixel at (1, 1) is enclosed but for its diagonal contact with (2, 2): tracing hugs pixels
    # and passes the corner (x=2, y=2) twice; the ring is split there into an outer ring and a hole.
    labels = np.array(
        [
            [1, 1, 1],
            [1, 0, 1],
            [1, 1, 0],
        ]
    )
    polygons = _assert_traced_exactly(labels)
    (part,) = polygons[1]
    outer, hole = part
    assert signed_area(outer) == 8.0
    assert signed_area(hole) == -1.0
    assert [2.0, 2.0] in outer.tolist()
    assert [2.0, 2.0] in hole.tolist()


def test_objects_on_every_image_edge_and_corner() -> None:
    labels = np.zeros((5, 6), dtype=np.int32)
    labels[0, :] = 1
    labels[:, 0] = 2
    labels[-1, :] = 3
    labels[1:4, -1] = 4
    labels[2, 2] = 5
    _assert_traced_exactly(labels)
    full = np.full((3, 4), 9, dtype=np.uint32)
    (ring,) = _assert_traced_exactly(full)[9][0]
    assert sorted(ring.tolist()) == [[0.0, 0.0], [0.0, 3.0], [4.0, 0.0], [4.0, 3.0]]


def test_large_label_values_and_bool_masks() -> None:
    labels = np.zeros((4, 4), dtype=np.uint32)
    labels[1:3, 1:3] = 2**32 - 1
    assert list(_assert_traced_exactly(labels)) == [2**32 - 1]
    (key,) = object_polygons(labels > 0)
    assert type(key) is int
    assert key == 1


def test_empty_image_has_no_objects() -> None:
    assert object_polygons(np.zeros((4, 5), dtype=np.int32)) == {}


@pytest.mark.parametrize("labels", [np.zeros((2, 3, 4), np.int32), np.zeros((3, 4), np.float32), np.zeros(5, int)])
def test_not_a_2d_integer_image_is_refused(labels: npt.NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="2D integer label image"):
        object_polygons(labels)


@settings(max_examples=150, deadline=None)
@given(arrays(np.int32, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 3)))
def test_random_label_images_are_traced_exactly(labels: npt.NDArray[np.int32]) -> None:
    _assert_traced_exactly(labels)
