from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
from skimage.draw import disk

from cellseg.data.targets import normalised_distance_map, three_class_target
from cellseg.evaluation.matching import match_instances
from cellseg.inference.instances import (
    InstanceConfig,
    clean_instances,
    instances_from_probabilities,
    renumber,
    split_seeds,
)


def touching_discs(shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Two discs of radius 12 whose centres are 22 px apart, so they share a border."""
    labels = np.zeros(shape, dtype=np.int32)
    labels[disk((24, 20), 12, shape=shape)] = 1
    labels[disk((24, 42), 12, shape=shape)] = 2
    return labels


def ideal_probabilities(labels: np.ndarray) -> np.ndarray:
    """What a perfect network would predict for ``labels``: one-hot classes, then the distance map. ``(4, *S)``."""
    classes = three_class_target(labels)
    one_hot = np.stack([classes == k for k in range(3)]).astype(np.float32)
    return np.concatenate([one_hot, normalised_distance_map(labels)[None]])


@pytest.mark.parametrize("method", ["boundary", "distance"])
def test_touching_discs_are_separated(method: Literal["boundary", "distance"]) -> None:
    truth = touching_discs()
    probabilities = ideal_probabilities(truth)
    # A real network blurs: smooth the maps so the seeds must come from the relief, not from exact classes.
    noisy = probabilities + np.random.default_rng(0).normal(0, 0.05, probabilities.shape).astype(np.float32)
    labels = instances_from_probabilities(noisy.clip(0, 1), InstanceConfig(method=method))
    assert labels.max() == 2
    scores = match_instances(truth, labels)
    assert scores.at(0.75).tp == 2


def test_merged_foreground_without_a_distance_channel_cannot_use_the_distance_method() -> None:
    probabilities = ideal_probabilities(touching_discs())[:3]
    with pytest.raises(ValueError, match="distance_head"):
        instances_from_probabilities(probabilities, InstanceConfig(method="distance"))


def test_holes_are_filled_and_small_objects_dropped() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:12, 2:12] = 1
    labels[5:8, 5:8] = 0  # a hole
    labels[15:17, 15:17] = 2  # 4 pixels
    cleaned = clean_instances(labels.copy(), InstanceConfig(min_size=5))
    assert np.all(cleaned[2:12, 2:12] == 1)
    assert cleaned.max() == 1
    kept = clean_instances(labels.copy(), InstanceConfig(min_size=4, fill_holes=False))
    assert kept.max() == 2
    assert np.all(kept[5:8, 5:8] == 0)


def test_a_hole_holding_another_object_keeps_that_object() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:18, 2:18] = 1
    labels[6:14, 6:14] = 2  # an object inside a ring
    cleaned = clean_instances(labels.copy(), InstanceConfig(min_size=1))
    assert np.array_equal(cleaned, labels)


def test_a_hole_enclosed_by_two_objects_together_stays_background() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:18, 2:10] = 1
    labels[2:18, 10:18] = 2
    labels[6:14, 6:14] = 0  # a hole with object 1 on its left and object 2 on its right
    labels[1:4, 1:4] = 0
    cleaned = clean_instances(labels.copy(), InstanceConfig(min_size=1))
    assert np.all(cleaned[6:14, 6:14] == 0)
    two_holes = labels.copy()
    two_holes[6:14, 6:14] = 1
    two_holes[7:9, 7:9] = 0  # two holes inside object 1, one pixel apart
    two_holes[7:9, 10:12] = 0
    assert np.all(clean_instances(two_holes.copy(), InstanceConfig(min_size=1))[7:9, 7:12] == 1)


def test_a_hole_beside_a_second_object_stays_background_when_that_pixel_also_borders_another_hole() -> None:
    # a one-pixel hole inside object 1 but for its neighbour below, a pixel of object 2 that also borders a second,
    # larger hole (numbered after the small one): that pixel counts for both holes, so neither goes to object 1
    labels = np.ones((9, 9), dtype=np.int32)
    labels[2, 3] = 0  # the small hole
    labels[3, 3] = 2  # object 2, one pixel
    labels[4:7, 2:5] = 0  # the larger hole, below it
    cleaned = clean_instances(labels.copy(), InstanceConfig(min_size=1))
    assert cleaned[2, 3] == 0
    assert np.all(cleaned[4:7, 2:5] == 0)
    alone = labels.copy()
    alone[3, 3] = 1
    filled = clean_instances(alone, InstanceConfig(min_size=1))
    assert filled[2, 3] == 1  # each enclosed by object 1 alone: filled
    assert np.all(filled[4:7, 2:5] == 1)


def test_shifted_maxima_and_erosion_are_scipys() -> None:
    from scipy import ndimage

    from cellseg.inference.instances import _dilated, _interior

    rng = np.random.default_rng(3)
    for shape in [(1, 7), (5, 1), (33, 47), (6, 9, 11), (1, 4, 5)]:
        values = rng.integers(0, 4, size=shape).astype(np.float64)  # many ties
        assert np.array_equal(_dilated(values), ndimage.grey_dilation(values, size=(3,) * len(shape)))
        mask = rng.random(shape) < 0.8
        assert np.array_equal(_interior(mask), ndimage.binary_erosion(mask, border_value=1))


def test_a_seeds_smoothed_distance_in_a_mosaic_does_not_depend_on_where_its_box_lies() -> None:
    # the split copies each seed's relief from its first mosaic to the second: a box at a mosaic's edge (the smoothing
    # mirrors the edge) must be smoothed as one in the middle
    from cellseg.inference.instances import GAUSSIAN_TRUNCATE, _smoothed_distance

    for sigma in (1.0, 2.0):
        margin = 1 + math.ceil(GAUSSIAN_TRUNCATE * sigma) // 2  # what split_seeds leaves around a packed seed
        rows, columns = np.mgrid[:13, :13]
        disc = (rows - 6) ** 2 + (columns - 6) ** 2 <= 42  # fills its 13 x 13 bounding box
        box = np.pad(disc, margin)
        at_the_edge = _smoothed_distance(box, sigma)
        mosaic = np.zeros((60, 60), dtype=bool)
        mosaic[20 : 20 + box.shape[0], 25 : 25 + box.shape[1]] = box
        in_the_middle = _smoothed_distance(mosaic, sigma)[20 : 20 + box.shape[0], 25 : 25 + box.shape[1]]
        assert np.array_equal(at_the_edge[box], in_the_middle[box])  # on the seed's pixels, where it is read


def test_split_seeds_are_numbered_without_gaps_whatever_the_input_numbers() -> None:
    shape = (40, 90)
    seeds = np.zeros(shape, dtype=np.int32)
    seeds[disk((20, 18), 7, shape=shape)] = 1
    seeds[disk((20, 30), 7, shape=shape)] = 1  # a seed with a waist: two pieces
    seeds[disk((20, 70), 8, shape=shape)] = 2  # a round one
    for numbers in ([1, 2], [3, 9], [9, 3]):
        renumbered = np.select([seeds == 1, seeds == 2], numbers, 0).astype(np.int32)
        split = split_seeds(renumbered, height=1.0)
        assert np.array_equal(np.unique(split), np.arange(4))  # 0 and pieces 1..3
        pieces = np.unique(np.stack([seeds[seeds > 0], split[seeds > 0]]), axis=1)
        assert pieces[0].tolist() == [1, 1, 2]  # the waisted seed in two pieces, the round one whole


def test_a_seed_is_split_by_its_own_shape_whatever_its_neighbours() -> None:
    shape = (40, 60)
    pair = np.zeros(shape, dtype=np.int32)
    pair[disk((20, 18), 7, shape=shape)] = 1
    pair[disk((20, 30), 7, shape=shape)] = 1  # two overlapping discs: one seed with a waist
    alone = split_seeds(pair, height=1.0)
    assert alone.max() == 2
    crowded = pair.copy()
    crowded[disk((20, 47), 7, shape=shape)] = 2  # a third seed, 3 px from the pair
    crowded[(crowded == 2) & (pair == 1)] = 1
    split = split_seeds(crowded, height=1.0)
    assert split.max() == 3
    assert np.array_equal(split[:, :39] > 0, alone[:, :39] > 0)
    pieces = {int(v) for v in np.unique(split[pair == 1])}
    assert len(pieces) == 2
    assert np.array_equal(renumber(np.where(pair == 1, split, 0)), alone)


def test_renumber_closes_gaps_in_order_and_handles_sparse_numbers() -> None:
    labels = np.array([[0, 5, 5], [9, 0, 2]], dtype=np.int32)
    assert np.array_equal(renumber(labels), [[0, 2, 2], [3, 0, 1]])
    sparse = np.array([[0, 10**7], [3, 0]], dtype=np.int32)
    assert np.array_equal(renumber(sparse), [[0, 2], [1, 0]])


def test_border_objects_are_removed_on_request_and_labels_renumbered() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[0:5, 0:5] = 3  # touches the border
    labels[8:14, 8:14] = 7
    assert set(np.unique(clean_instances(labels.copy(), InstanceConfig(min_size=1)))) == {0, 1, 2}
    inner = clean_instances(labels.copy(), InstanceConfig(min_size=1, remove_border=True))
    assert set(np.unique(inner)) == {0, 1}
    assert np.all(inner[8:14, 8:14] == 1)


@pytest.mark.parametrize("method", ["boundary", "distance"])
def test_touching_balls_are_separated_in_3d(method: Literal["boundary", "distance"]) -> None:
    shape = (20, 32, 48)
    grid = np.indices(shape)
    truth = np.zeros(shape, dtype=np.int32)
    for label, centre_x in ((1, 14), (2, 32)):
        truth[((grid - np.array([10, 16, centre_x])[:, None, None, None]) ** 2).sum(axis=0) <= 9.5**2] = label
    labels = instances_from_probabilities(ideal_probabilities(truth), InstanceConfig(method=method))
    assert labels.shape == shape
    assert match_instances(truth, labels).at(0.75).tp == 2


def test_a_cell_without_a_seed_is_kept_as_its_own_object() -> None:
    truth = np.zeros((48, 80), dtype=np.int32)
    truth[disk((24, 16), 10)] = 1
    truth[disk((24, 56), 10)] = 2  # apart from cell 1
    probabilities = ideal_probabilities(truth)
    probabilities[1][truth == 2] = 0.3  # cell 2's interior too faint to seed it
    probabilities[2][truth == 2] = 0.7
    labels = instances_from_probabilities(probabilities, InstanceConfig())
    assert labels.max() == 2
    assert match_instances(truth, labels).at(0.5).tp == 2


def faint_boundary_probabilities(truth: np.ndarray) -> np.ndarray:
    """Ideal maps of ``truth`` whose boundary between touching cells is too weak to cut the interior apart."""
    probabilities = ideal_probabilities(truth)[:3]
    contact = (three_class_target(truth) == 2) & (np.abs(np.gradient(truth.astype(float), axis=-1)) > 0)
    probabilities[1][contact], probabilities[2][contact] = 0.9, 0.1  # the network missed the contact
    return probabilities


def test_seeds_merged_across_a_faint_boundary_are_split_by_their_shape() -> None:
    truth = touching_discs()
    probabilities = faint_boundary_probabilities(truth)
    merged = instances_from_probabilities(probabilities, InstanceConfig(split_height=0))
    split = instances_from_probabilities(probabilities, InstanceConfig())
    assert merged.max() == 1  # without the shape cue the pair is one object
    assert split.max() == 2
    assert match_instances(truth, split).at(0.75).tp == 2


@pytest.mark.parametrize("axes", [(10, 10), (6, 24)])
def test_a_single_round_or_elongated_cell_is_not_split(axes: tuple[int, int]) -> None:
    from skimage.draw import ellipse

    truth = np.zeros((40, 64), dtype=np.int32)
    truth[ellipse(20, 32, *axes)] = 1
    labels = instances_from_probabilities(ideal_probabilities(truth)[:3], InstanceConfig())
    assert labels.max() == 1


def test_touching_balls_with_a_faint_boundary_are_split_in_3d() -> None:
    shape = (20, 32, 48)
    grid = np.indices(shape)
    truth = np.zeros(shape, dtype=np.int32)
    for label, centre_x in ((1, 14), (2, 32)):
        truth[((grid - np.array([10, 16, centre_x])[:, None, None, None]) ** 2).sum(axis=0) <= 9.5**2] = label
    probabilities = faint_boundary_probabilities(truth)
    assert instances_from_probabilities(probabilities, InstanceConfig(split_height=0)).max() == 1
    assert match_instances(truth, instances_from_probabilities(probabilities, InstanceConfig())).at(0.75).tp == 2


def test_size_settings_scale_with_the_object_diameter_unless_given() -> None:
    from cellseg.inference.instances import REFERENCE_DIAMETER

    reference = InstanceConfig()
    assert (reference.split_pixels(), reference.seed_pixels(2), reference.object_pixels(2)) == (1.5, 8, 16)
    twice = reference.for_model(2 * REFERENCE_DIAMETER)
    assert (twice.split_pixels(), twice.seed_pixels(2), twice.object_pixels(2)) == (3.0, 32, 64)
    assert (twice.seed_pixels(3), twice.object_pixels(3)) == (64, 128)  # volumes scale by the cube
    explicit = InstanceConfig(split_height=0.0, min_size=5).for_model(2 * REFERENCE_DIAMETER)
    assert (explicit.split_pixels(), explicit.object_pixels(2), explicit.seed_pixels(2)) == (0.0, 5, 32)
    assert twice.for_model(REFERENCE_DIAMETER) == twice  # a config's own diameter wins over a model's
    assert reference.for_model(None) == reference


def test_the_foreground_threshold_is_the_model_s_unless_given() -> None:
    from cellseg.inference.instances import DEFAULT_FOREGROUND_THRESHOLD

    assert InstanceConfig().foreground_cut() == DEFAULT_FOREGROUND_THRESHOLD
    assert InstanceConfig().for_model(None, 0.6).foreground_cut() == 0.6
    assert InstanceConfig(foreground_threshold=0.4).for_model(None, 0.6).foreground_cut() == 0.4
    probabilities = np.zeros((3, 32, 32), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[:, 8:24, 8:24] = [[[0.1]], [[0.9]], [[0.0]]]  # a 16 x 16 cell
    probabilities[:, 6:8, 8:24] = [[[0.45]], [[0.0]], [[0.55]]]  # a rim the network is unsure of
    looser = instances_from_probabilities(probabilities, InstanceConfig().for_model(None, 0.5))
    stricter = instances_from_probabilities(probabilities, InstanceConfig().for_model(None, 0.6))
    assert np.count_nonzero(looser) == 16 * 16 + 2 * 16
    assert np.count_nonzero(stricter) == 16 * 16


def lobed_cell() -> np.ndarray:
    """One cell of two overlapping discs (radius 25, centres 26 px apart): a large cell with a broad waist."""
    truth = np.zeros((64, 112), dtype=np.int32)
    truth[disk((32, 43), 25, shape=truth.shape)] = 1
    truth[disk((32, 69), 25, shape=truth.shape)] = 1
    return truth


def test_a_large_lobed_cell_is_kept_whole_at_its_own_scale() -> None:
    probabilities = ideal_probabilities(lobed_cell())[:3]
    assert instances_from_probabilities(probabilities, InstanceConfig()).max() == 2  # nucleus-sized settings cut it
    at_scale = InstanceConfig(object_diameter=60.0)
    assert instances_from_probabilities(probabilities, at_scale).max() == 1


def random_seeds(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Blobby seeds of many shapes (some touching the image's edge), face-connected regions of smoothed noise."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 3)
    seeds: np.ndarray = ndimage.label(noise > np.quantile(noise, 0.55))[0].astype(np.int32)
    return seeds


@pytest.mark.parametrize("shape", [(120, 150), (30, 40, 48)])
def test_seeds_split_together_as_each_would_alone(shape: tuple[int, ...]) -> None:
    # the packed (mosaic) measurement of all seeds at once against each seed in an image of its own
    for seed in range(3):
        seeds = random_seeds(shape, seed)
        together = split_seeds(seeds, height=1.0)
        assert together.max() > seeds.max()  # some seeds were split
        for label in range(1, int(seeds.max()) + 1):
            own = seeds == label
            alone = split_seeds(own.astype(np.int32), height=1.0)
            pairs = np.unique(np.stack([together[own], alone[own]]), axis=1)
            assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # the same pieces


def test_holes_are_what_binary_fill_holes_fills() -> None:
    from scipy import ndimage

    from cellseg.inference.instances import _holes

    for seed, shape in enumerate([(64, 80), (20, 24, 28)]):
        noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
        foreground = noise > np.quantile(noise, 0.25)  # mostly foreground: background pockets, most enclosed
        holes, count = _holes(foreground)
        expected, expected_count = ndimage.label(ndimage.binary_fill_holes(foreground) & ~foreground)
        assert count == expected_count > 0
        assert np.array_equal(holes, expected)


def test_flooding_from_the_seeds_rims_is_the_watershed() -> None:
    from skimage.segmentation import watershed

    from cellseg.inference.instances import _flood

    rng = np.random.default_rng(5)
    for shape in [(90, 110), (24, 30, 36)]:
        seeds = random_seeds(shape, 7)
        relief = rng.random(shape)  # no ties: the same labels to the pixel
        cells = (seeds > 0) | (rng.random(shape) < 0.7)
        expected = watershed(-relief, seeds, mask=cells)
        assert np.array_equal(_flood(relief, seeds, cells), expected)


@pytest.mark.parametrize("max_steps", [64, 2, 0])
def test_reconstruction_by_dilation_is_scikit_images(max_steps: int) -> None:
    # the h-maxima's reconstruction of the seed split: the same array, whether the dilations converge, hand over to
    # scikit-image part way (2 steps) or leave it all to it (0)
    from scipy import ndimage
    from skimage.morphology import reconstruction

    from cellseg.inference.instances import _smoothed_distance, reconstruct_by_dilation

    for seed, shape in enumerate([(90, 110), (24, 30, 36)]):
        inside = random_seeds(shape, seed) > 0
        relief = _smoothed_distance(inside, 1.0)
        height = 1.0
        marker, mask = relief - height, np.where(inside, relief, -height)
        expected = reconstruction(marker, mask, method="dilation")
        assert np.array_equal(reconstruct_by_dilation(marker, mask, max_steps), expected)
        rough = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)  # long, shallow ridges
        expected = reconstruction(rough - 0.05, rough, method="dilation")
        assert np.array_equal(reconstruct_by_dilation(rough - 0.05, rough, max_steps), expected)
