"""Training targets derived from instance labels: what the predictor needs to separate touching cells.

Two representations, both computed per image on the CPU before caching:

* a 3-class map (background / cell interior / cell boundary), the boundary being the object's own outermost pixels,
  so two touching cells are split by their boundaries and the interiors can seed a watershed;
* a per-object normalised distance map (1 at each object's centre, falling to 0 at its border), the shape cue
  StarDist-like and watershed post-processing use.

Shapes: ``labels`` is ``(H, W)`` or ``(D, H, W)`` with 0 = background and 1..N = objects.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries


class TargetClass(IntEnum):
    """The classes of the 3-class target."""

    BACKGROUND = 0
    INTERIOR = 1
    BOUNDARY = 2


def three_class_target(labels: np.ndarray) -> np.ndarray:
    """Background / interior / boundary classes from instance labels.

    Boundary pixels are every object's outermost pixels (``find_boundaries(mode="inner")``), so where two objects
    touch both sides are boundary and the interiors stay apart. A binary mask (one label) gives a plain
    foreground/boundary split.

    Args:
        labels: instance labels ``(H, W)`` or ``(D, H, W)``, integer, 0 = background.

    Returns:
        uint8 classes of the same shape (see ``TargetClass``).

    Example:
        >>> labels = np.zeros((5, 8), dtype=np.uint16)
        >>> labels[1:4, 1:4], labels[1:4, 4:7] = 1, 2  # two touching 3x3 squares
        >>> three_class_target(labels)
        array([[0, 0, 0, 0, 0, 0, 0, 0],
               [0, 2, 2, 2, 2, 2, 2, 0],
               [0, 2, 1, 2, 2, 1, 2, 0],
               [0, 2, 2, 2, 2, 2, 2, 0],
               [0, 0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    target = np.where(labels > 0, TargetClass.INTERIOR, TargetClass.BACKGROUND).astype(np.uint8)
    target[find_boundaries(labels, mode="inner", connectivity=1)] = TargetClass.BOUNDARY
    return target


def normalised_distance_map(labels: np.ndarray) -> np.ndarray:
    """Per-object Euclidean distance to the object's border, scaled to 1 at the object's deepest pixel.

    Each object is measured on its own (touching objects do not see each other as background), so every object
    has its own peak and the map separates touching cells.

    Args:
        labels: instance labels ``(H, W)`` or ``(D, H, W)``, integer, 0 = background.

    Returns:
        float32 map of the same shape, 0 on the background, in (0, 1] inside objects.

    Example:
        >>> labels = np.zeros((5, 8), dtype=np.uint16)
        >>> labels[1:4, 1:4], labels[1:4, 4:7] = 1, 2  # two touching 3x3 squares
        >>> normalised_distance_map(labels)[2]
        array([0. , 0.5, 1. , 0.5, 0.5, 1. , 0.5, 0. ], dtype=float32)
    """
    distance = np.zeros(labels.shape, dtype=np.float32)
    for label, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        # Pad the object's box by one so the border is measured against background on every side.
        padded_region = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in region)
        inside = labels[padded_region] == label
        object_distance = ndimage.distance_transform_edt(np.pad(inside, 1))[(slice(1, -1),) * inside.ndim]
        peak = object_distance.max()
        distance[padded_region][inside] = object_distance[inside] / peak
    return distance
