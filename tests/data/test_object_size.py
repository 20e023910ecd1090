"""The median object diameter of instance masks, which post-processing scales to."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk

from cellseg.data.object_size import equivalent_diameters, median_object_diameter


def test_a_disc_measures_its_own_diameter() -> None:
    labels = np.zeros((80, 80), dtype=np.int32)
    labels[disk((40, 40), 20)] = 7
    assert equivalent_diameters(labels) == pytest.approx([40.0], abs=0.3)


def test_a_cube_measures_the_diameter_of_the_ball_of_its_volume() -> None:
    labels = np.zeros((12, 12, 12), dtype=np.int16)
    labels[1:9, 1:9, 1:9] = 1  # 512 voxels
    assert equivalent_diameters(labels) == pytest.approx([2 * (3 * 512 / (4 * math.pi)) ** (1 / 3)])


def test_the_median_pools_every_object_of_every_image_and_skips_missing_labels() -> None:
    small, large = np.zeros((30, 30), dtype=np.int32), np.zeros((30, 30), dtype=np.int32)
    small[0:2, 0:2], small[5:7, 5:7] = 1, 3  # two 4 px objects; label 2 absent
    large[10:20, 10:20] = 1
    diameters = 2 * np.sqrt(np.array([4.0, 4.0, 100.0]) / math.pi)
    assert median_object_diameter([small, large]) == pytest.approx(float(np.median(diameters)))


def test_masks_without_objects_have_no_diameter() -> None:
    assert median_object_diameter([np.zeros((8, 8), dtype=np.int32)]) is None
    assert median_object_diameter([]) is None
