from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk

from cellseg.data.targets import TargetClass, normalised_distance_map, three_class_target


def touching_discs(shape: tuple[int, int] = (40, 60), radius: int = 10) -> np.ndarray:
    """Two discs whose borders touch along a vertical line, labelled 3 and 7 (non-consecutive on purpose)."""
    labels = np.zeros(shape, dtype=np.uint16)
    labels[disk((20, 18), radius, shape=shape)] = 3
    right = disk((20, 38), radius, shape=shape)
    labels[right] = np.where(labels[right] == 0, 7, labels[right])
    return labels


def test_three_class_interiors_of_touching_cells_are_apart() -> None:
    labels = touching_discs()
    target = three_class_target(labels)
    assert set(np.unique(target)) == {TargetClass.BACKGROUND, TargetClass.INTERIOR, TargetClass.BOUNDARY}
    assert np.array_equal(target == TargetClass.BACKGROUND, labels == 0)
    interior_components, count = ndimage.label(target == TargetClass.INTERIOR)
    assert count == 2
    assert {int(labels[interior_components == c][0]) for c in (1, 2)} == {3, 7}


def test_binary_mask_gives_foreground_with_a_boundary_ring() -> None:
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[disk((15, 15), 8)] = 1
    target = three_class_target(mask)
    _, count = ndimage.label(target == TargetClass.INTERIOR)
    assert count == 1
    ring = target == TargetClass.BOUNDARY
    assert np.array_equal(ring, (mask > 0) & ~ndimage.binary_erosion(mask > 0))


def test_three_class_works_on_volumes() -> None:
    labels = np.zeros((5, 6, 6), dtype=np.uint16)
    labels[1:4, 1:4, 1:4] = 1
    target = three_class_target(labels)
    assert target.shape == labels.shape
    assert target[2, 2, 2] == TargetClass.INTERIOR
    assert (target == TargetClass.BOUNDARY).sum() == 27 - 1


@pytest.mark.parametrize("labels", [touching_discs(), np.pad(np.ones((4, 5, 5), dtype=np.uint16), 1)])
def test_distance_map_peaks_at_one_per_object(labels: np.ndarray) -> None:
    distance = normalised_distance_map(labels)
    assert distance.dtype == np.float32
    assert distance.shape == labels.shape
    assert np.all(distance[labels == 0] == 0)
    assert np.all(distance[labels > 0] > 0)
    for label in np.unique(labels[labels > 0]):
        assert distance[labels == label].max() == pytest.approx(1.0)


def test_distance_map_falls_towards_the_shared_border() -> None:
    labels = touching_discs()
    distance = normalised_distance_map(labels)
    row = distance[20]
    assert row[18] == pytest.approx(1.0)
    assert row[38] == pytest.approx(1.0)
    assert row[28] < 0.2  # where the discs touch, each sees the other as its border


def test_empty_labels_give_empty_targets() -> None:
    labels = np.zeros((8, 8), dtype=np.uint16)
    assert not three_class_target(labels).any()
    assert not normalised_distance_map(labels).any()
