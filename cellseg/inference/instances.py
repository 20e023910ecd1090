"""Instance masks from the network's probability maps: seeds, a watershed, then clean-up.

The network predicts, per pixel, background / interior / boundary probabilities and (with a distance head) each
object's distance to its border scaled to 1 at its centre. Touching cells are separated by seeding a watershed
with one marker per cell:

* ``method="boundary"``: markers are the connected regions where the interior probability exceeds
  ``seed_threshold`` (the boundary class cuts touching cells apart); the flooding follows the interior probability.
* ``method="distance"``: markers are the regions where the predicted distance exceeds ``seed_threshold`` (cell
  centres); the flooding follows the distance.

In both, the cells' extent is where the background probability is below ``1 - foreground_threshold``; a piece of
that extent the flooding does not reach (a cell without a seed) becomes an object of its own. Then holes are
filled per object, objects under ``min_size`` pixels dropped and, optionally, objects touching the image border.
Works for 2D ``(H, W)`` and 3D ``(D, H, W)`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.segmentation import clear_border, relabel_sequential, watershed

from cellseg.data.targets import TargetClass

SeedMethod = Literal["boundary", "distance"]
Labels = npt.NDArray[np.int32]
DISTANCE_CHANNEL = len(TargetClass)
# Seed thresholds by method, the best of each on DSB2018's validation split (benchmarks/target_study.py: boundary
# seeds peaked at 0.3-0.4 of the grid 0.3-0.7, distance seeds at 0.6 of 0.2-0.6).
DEFAULT_SEED_THRESHOLDS: dict[str, float] = {"boundary": 0.4, "distance": 0.6}


@dataclass(frozen=True)
class InstanceConfig:
    """How probability maps become instance labels.

    Attributes:
        method: what seeds the watershed: ``"boundary"`` (interior probability) or ``"distance"`` (the distance head;
            needs a model trained with ``distance_head``).
        foreground_threshold: a pixel belongs to a cell where ``1 - P(background)`` exceeds this.
        seed_threshold: a pixel belongs to a seed where the interior probability (or the distance) exceeds this.
        min_seed_size: seeds with fewer pixels are dropped (specks that would split a cell in two).
        min_size: objects with fewer pixels are dropped.
        fill_holes: fill each object's holes.
        remove_border: drop objects touching the image border.
    """

    method: SeedMethod = "boundary"
    foreground_threshold: float = 0.5
    seed_threshold: float = 0.4
    min_seed_size: int = 8
    min_size: int = 16
    fill_holes: bool = True
    remove_border: bool = False


def instances_from_probabilities(probabilities: npt.NDArray[np.floating], config: InstanceConfig) -> Labels:
    """Instance labels from one image's probability maps.

    Args:
        probabilities: ``(K, *S)`` with ``K`` 3 (background, interior, boundary) or 4 (then the distance), ``S`` 2D
            or 3D, as ``SegmentationModule.probabilities`` gives them.
        config: thresholds and clean-up.

    Returns:
        int32 labels ``S``, 0 = background, objects numbered 1..N without gaps.

    Raises:
        ValueError: ``method="distance"`` without a distance channel.

    Example:
        >>> probabilities = np.zeros((3, 6, 9), dtype=np.float32)
        >>> probabilities[0] = 1.0
        >>> for columns in (slice(0, 4), slice(5, 9)):  # two cells, each with an interior core
        ...     probabilities[:, 1:5, columns] = np.array([0.0, 0.2, 0.8])[:, None, None]
        ...     probabilities[:, 2:4, columns.start + 1 : columns.stop - 1] = np.array([0.0, 0.9, 0.1])[:, None, None]
        >>> instances_from_probabilities(probabilities, InstanceConfig(min_seed_size=1, min_size=1))
        array([[0, 0, 0, 0, 0, 0, 0, 0, 0],
               [1, 1, 1, 1, 0, 2, 2, 2, 2],
               [1, 1, 1, 1, 0, 2, 2, 2, 2],
               [1, 1, 1, 1, 0, 2, 2, 2, 2],
               [1, 1, 1, 1, 0, 2, 2, 2, 2],
               [0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=int32)
    """
    if config.method == "distance" and len(probabilities) <= DISTANCE_CHANNEL:
        raise ValueError(
            "method 'distance' needs a model trained with distance_head; this one predicts "
            f"{len(probabilities)} channels. Use method 'boundary'."
        )
    cells = probabilities[TargetClass.BACKGROUND] < 1.0 - config.foreground_threshold
    relief = probabilities[TargetClass.INTERIOR if config.method == "boundary" else DISTANCE_CHANNEL]
    seeds = _seeds(cells & (relief > config.seed_threshold), config.min_seed_size)
    labels: Labels = watershed(-relief, seeds, mask=cells).astype(np.int32)
    unseeded, _ = ndimage.label(cells & (labels == 0))
    labels[unseeded > 0] = unseeded[unseeded > 0] + labels.max()
    return clean_instances(labels, config)


def clean_instances(labels: Labels, config: InstanceConfig) -> Labels:
    """Fill holes, drop small (and, if asked, border-touching) objects, and renumber 1..N.

    Args:
        labels: int32 instance labels ``S`` (2D or 3D).
        config: ``fill_holes``, ``min_size`` and ``remove_border`` are read.

    Returns:
        int32 labels ``S``, numbered without gaps.
    """
    if config.fill_holes:
        labels = _fill_holes_per_object(labels)
    if config.min_size > 1:
        areas = np.bincount(labels.ravel())
        too_small = np.flatnonzero(areas < config.min_size)
        labels[np.isin(labels, too_small[too_small > 0])] = 0
    if config.remove_border:
        labels = clear_border(labels)
    relabelled: Labels = relabel_sequential(labels)[0].astype(np.int32)
    return relabelled


def _seeds(candidates: npt.NDArray[np.bool_], min_seed_size: int) -> Labels:
    """Connected seed regions (face connectivity) with at least ``min_seed_size`` pixels, numbered 1..N."""
    seeds, _ = ndimage.label(candidates)
    sizes = np.bincount(seeds.ravel())
    small = np.flatnonzero(sizes < min_seed_size)
    seeds[np.isin(seeds, small[small > 0])] = 0
    numbered: Labels = seeds.astype(np.int32)
    return numbered


def _fill_holes_per_object(labels: Labels) -> Labels:
    """Fill every object's holes with its own label, object by object within its bounding box."""
    filled = labels.copy()
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == label
        holes = ndimage.binary_fill_holes(inside) & ~inside & (labels[box] == 0)
        filled[box][holes] = label
    return filled
