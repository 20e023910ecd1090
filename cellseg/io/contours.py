"""Trace each object of a 2D label image as polygons that follow its pixels' edges exactly.

Coordinates are ``(x, y)`` on pixel edges: pixel ``(row r, col c)`` is the square ``x`` in ``[c, c + 1]``, ``y`` in
``[r, r + 1]``, as in ImageJ's traced selections and QuPath's objects. Filling the polygons (even-odd rule, holes
subtracted) gives back every object's pixels exactly, which midpoint contours (``skimage.measure.find_contours``)
do not: they cut the corners of every boundary pixel and lose 1-pixel-wide parts.

How: every pixel side between an object and anything else is a directed unit edge, oriented so that rings around
an object have positive signed area (``x`` right, ``y`` down: clockwise on screen) and rings around its holes
negative. Each edge's successor is found for all edges at once with numpy; at a corner shared by two diagonal
pixels of one label the successor turns towards the edge's own pixel, so 4-connected components stay separate parts.
The cycles of the successor permutation are the rings; only the vertices where the direction changes are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from skimage.measure import label as connected_components

Ring = npt.NDArray[np.float64]
"""An ``(M, 2)`` array of ``(x, y)`` vertices on pixel edges; the last vertex joins the first (not repeated)."""

# Pixel sides, in clockwise order on screen: the next side of the same pixel is (side + 1) % 4.
_TOP, _RIGHT, _BOTTOM, _LEFT = range(4)
# Where each side's edge starts, as (dx, dy) from the pixel's top-left corner; it runs to the next side's start.
_START_DX = np.array([0, 1, 1, 0])
_START_DY = np.array([0, 0, 1, 1])


def object_polygons(labels2d: npt.NDArray[np.integer[Any] | np.bool_]) -> dict[int, list[list[Ring]]]:
    """The polygons that cover each object of a label image exactly, on pixel edges.

    Args:
        labels2d: shape ``(H, W)``, integer labels, 0 = background.

    Returns:
        For each label (ascending) its parts, largest first: a part is a 4-connected component (pixels touching only
        diagonally are separate parts). Each part is a list of rings, its outer ring first (positive signed area by
        the shoelace formula on ``(x, y)``: counter-clockwise with ``y`` up, clockwise on screen), then its holes
        (negative area). A ring is an ``(M, 2)`` float array of ``(x, y)`` pixel-corner vertices, ``M >= 4``, not
        closed (the first vertex is not repeated), with no two consecutive edges collinear. A ring never passes
        through the same vertex twice; a hole that meets the outer ring or another hole at a corner is a ring of
        its own touching it there, as the OGC simple-features rules want.

    Raises:
        ValueError: ``labels2d`` is not a 2D integer (or bool) array.
    """
    labels = np.asarray(labels2d)
    if labels.ndim != 2 or labels.dtype.kind not in "biu":
        raise ValueError(
            f"object_polygons needs a 2D integer label image (H, W), got shape {labels.shape} of {labels.dtype}; "
            "trace 3D labels one z-slice at a time"
        )
    padded = np.pad(labels.astype(np.uint8) if labels.dtype.kind == "b" else labels, 1)
    edges = _boundary_edges(padded)
    if edges.size == 0:
        return {}
    successor = _successors(edges, padded)
    order, ring_starts = _cycles(successor)
    return _assemble(edges[order], ring_starts, padded)


def _boundary_edges(padded: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The ids ``side * N + pixel`` (sorted) of the object pixel sides that face another label or the background.

    ``pixel`` is the flat index into ``padded`` (shape ``(H + 2, W + 2)``, a zero border around the labels), ``N``
    its size.
    """
    inner = padded[1:-1, 1:-1]
    is_boundary = np.zeros((4, *padded.shape), dtype=bool)
    is_object = inner != 0
    is_boundary[_TOP, 1:-1, 1:-1] = is_object & (padded[:-2, 1:-1] != inner)
    is_boundary[_RIGHT, 1:-1, 1:-1] = is_object & (padded[1:-1, 2:] != inner)
    is_boundary[_BOTTOM, 1:-1, 1:-1] = is_object & (padded[2:, 1:-1] != inner)
    is_boundary[_LEFT, 1:-1, 1:-1] = is_object & (padded[1:-1, :-2] != inner)
    return np.flatnonzero(is_boundary)


def _successors(edges: npt.NDArray[np.int64], padded: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """For each boundary edge (position in ``edges``), the position of the edge that follows it on its ring.

    At the edge's end point the ring turns right (onto the next side of the same pixel) where that side is a
    boundary, else goes straight on (same side of the next pixel), else turns left (onto the diagonal pixel). Trying
    right first keeps diagonal-only neighbours apart: the ring hugs its own pixel.
    """
    size, width = padded.size, padded.shape[1]
    travel = np.array([1, width, -1, -width])  # flat step along each side's direction: +x, +y, -x, -y
    outward = np.roll(travel, 1)  # flat step from a pixel to the neighbour behind each side: -y, +x, +y, -x
    side, pixel = np.divmod(edges, size)
    right_side = (side + 1) % 4
    turn_right = right_side * size + pixel
    ahead = pixel + travel[side]
    go_straight = side * size + ahead
    turn_left = ((side + 3) % 4) * size + ahead + outward[side]
    is_edge = np.zeros(4 * size, dtype=bool)
    is_edge[edges] = True
    following = np.where(is_edge[turn_right], turn_right, np.where(is_edge[go_straight], go_straight, turn_left))
    return np.searchsorted(edges, following)


def _cycles(successor: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The edges in ring order and where each ring starts in that order (plus a final end), from the successors."""
    following = successor.tolist()
    visited = bytearray(len(following))
    order: list[int] = []
    starts: list[int] = []
    append = order.append
    for start in range(len(following)):
        if visited[start]:
            continue
        starts.append(len(order))
        edge = start
        while not visited[edge]:
            visited[edge] = 1
            append(edge)
            edge = following[edge]
    starts.append(len(order))
    return np.asarray(order, dtype=np.intp), np.asarray(starts, dtype=np.intp)


def _assemble(
    ordered_edges: npt.NDArray[np.int64], ring_starts: npt.NDArray[np.intp], padded: npt.NDArray[Any]
) -> dict[int, list[list[Ring]]]:
    """Turn edges in ring order into vertex rings, grouped by label and part, outer rings first."""
    size, width = padded.size, padded.shape[1]
    side, pixel = np.divmod(ordered_edges, size)
    ring_of_edge = np.repeat(np.arange(len(ring_starts) - 1), np.diff(ring_starts))
    previous = np.arange(len(side)) - 1
    previous[ring_starts[:-1]] = ring_starts[1:] - 1
    is_corner = side != side[previous]
    row, col = np.divmod(pixel[is_corner], width)
    # A corner's position in the padded image is also its position in the label image's corner grid, (H+1, W+1).
    x = col + _START_DX[side[is_corner]] - 1
    y = row + _START_DY[side[is_corner]] - 1
    ring_of_corner = ring_of_edge[is_corner]
    corner_starts = np.searchsorted(ring_of_corner, np.arange(len(ring_starts)))
    rings = np.split(np.stack([x, y], axis=1).astype(np.float64), corner_starts[1:-1])
    # Every edge of a ring is a side of a pixel of the same 4-connected part: its first edge tells which.
    parts = connected_components(padded, background=0, connectivity=1).ravel()
    first_pixel = pixel[ring_starts[:-1]]
    self_touching = set(_rings_with_repeated_corners(ring_of_corner, y * width + x, size).tolist())
    areas = _ring_areas(side, pixel % width, ring_of_edge, len(rings))
    return _group(rings, areas, padded.ravel()[first_pixel], parts[first_pixel], self_touching)


def _ring_areas(
    side: npt.NDArray[np.int64], col: npt.NDArray[np.int64], ring_of_edge: npt.NDArray[np.intp], num_rings: int
) -> npt.NDArray[np.float64]:
    """Each ring's signed area, by Green's theorem over its unit edges: the sum of ``x * dy``.

    Only vertical sides have ``dy``: a right side runs down (+1) at ``x = col`` (padded ``col - 1``, plus 1), a left
    side up (-1) at ``x = col - 1``.
    """
    x_dy = np.where(side == _RIGHT, col, 0) - np.where(side == _LEFT, col - 1, 0)
    return np.bincount(ring_of_edge, weights=x_dy, minlength=num_rings).astype(np.float64)


def _rings_with_repeated_corners(
    ring_of_corner: npt.NDArray[np.intp], corner_key: npt.NDArray[np.int64], keys_per_ring: int
) -> npt.NDArray[np.int64]:
    """The rings that pass through one corner twice (unique ring numbers); ``corner_key`` < ``keys_per_ring``."""
    keys = np.sort(ring_of_corner.astype(np.int64) * keys_per_ring + corner_key)
    return np.unique(keys[1:][keys[1:] == keys[:-1]] // keys_per_ring)


def _group(
    rings: list[Ring],
    areas: npt.NDArray[np.float64],
    ring_labels: npt.NDArray[Any],
    ring_parts: npt.NDArray[Any],
    self_touching: set[int],
) -> dict[int, list[list[Ring]]]:
    """Rings grouped per label into parts (largest first), each part's outer ring first and then its holes."""
    by_part: dict[int, tuple[int, list[tuple[float, Ring]]]] = {}
    rows = zip(rings, areas.tolist(), ring_labels.tolist(), ring_parts.tolist(), strict=True)
    for index, (ring, area, label, part) in enumerate(rows):
        entry = by_part.setdefault(part, (label, []))
        if index in self_touching:
            entry[1].extend((signed_area(piece), piece) for piece in _split_at_repeated_vertices(ring))
        else:
            entry[1].append((area, ring))
    polygons: dict[int, list[tuple[float, list[Ring]]]] = {}
    for label, area_rings in by_part.values():
        area_rings.sort(key=lambda area_ring: -area_ring[0])  # the outer ring is the only positive one
        part_area = sum(area for area, _ in area_rings)
        polygons.setdefault(label, []).append((part_area, [ring for _, ring in area_rings]))
    return {
        label: [part for _, part in sorted(parts, key=lambda area_part: -area_part[0])]
        for label, parts in sorted(polygons.items())
    }


def _split_at_repeated_vertices(ring: Ring) -> list[Ring]:
    """Split a ring that passes through a vertex twice into simple rings that touch there.

    Hugging each pixel makes an outer ring pass twice through the corner where a part closes around a bay of
    background that opens only diagonally; splitting it there turns the bay into a hole touching the outer ring.
    """
    points = [(x, y) for x, y in ring.tolist()]
    pieces: list[Ring] = []
    stack: list[int] = []
    position: dict[tuple[float, float], int] = {}
    for index in [*range(len(points)), 0]:
        point = points[index]
        at = position.get(point)
        if at is None:
            position[point] = len(stack)
            stack.append(index)
            continue
        pieces.append(ring[stack[at:]])
        for later in stack[at + 1 :]:
            del position[points[later]]
        del stack[at + 1 :]
    return pieces


def signed_area(ring: Ring) -> float:
    """The shoelace area of a ring of ``(x, y)`` vertices, shape ``(M, 2)``: positive for outer rings here."""
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0
