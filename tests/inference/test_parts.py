from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.data.targets import three_class_target
from cellseg.inference import parts
from cellseg.inference.instances import InstanceConfig, instances_from_probabilities
from cellseg.inference.parts import cut, part_count


def in_raster_order(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered by the raster position of each object's first pixel: equal for equal partitions."""
    values, first = np.unique(labels.ravel(), return_index=True)
    order = np.zeros(int(values.max()) + 1, dtype=np.int64)
    objects = values > 0
    order[values[objects]] = np.argsort(np.argsort(first[objects])) + 1
    ordered: np.ndarray = order[labels]
    return ordered


def field(seed: int) -> np.ndarray:
    """Blurred, noisy probabilities ``(3, 256, 192)`` of touching nuclei, three rings and a bar across every slab.

    One ring is empty (its hole is filled), the others hold a nucleus (their holes stay background); all straddle a
    slab's first row (64 or 128 when cut in four), as do many nuclei; the nucleus of the third ring starts below that
    row, so another slab owns it than the ring's; the bar spans the image from top to bottom.
    """
    config = SyntheticConfig(shape=(256, 192), n_nuclei=(90, 110), radius=(5.0, 9.0), cluster_fraction=0.5)
    truth = generate_sample(config, seed=seed).labels.astype(np.int32)
    truth[:, 2:8] = 0
    truth[:, 3:7] = truth.max() + 1  # the bar, along the cut axis
    rings = (((64, 60), 16, 10, None), ((128, 140), 16, 10, ((128, 140), 5)), ((130, 60), 18, 12, ((134, 60), 4)))
    for centre, radius, hole_radius, nucleus in rings:
        truth[disk(centre, radius, shape=truth.shape)] = truth.max() + 1
        truth[disk(centre, hole_radius, shape=truth.shape)] = 0
        if nucleus is not None:
            truth[disk(*nucleus, shape=truth.shape)] = truth.max() + 1
    classes = three_class_target(truth)
    one_hot = np.stack([classes == k for k in range(3)]).astype(np.float32)
    rng = np.random.default_rng(seed)
    blurred = ndimage.gaussian_filter(one_hot, (0, 1.2, 1.2)) + rng.normal(0, 0.05, one_hot.shape)
    blurred = np.clip(blurred, 1e-3, None)
    probabilities: np.ndarray = (blurred / blurred.sum(axis=0, keepdims=True)).astype(np.float32)
    return probabilities


def test_large_images_are_cut_into_slabs_of_about_a_million_pixels() -> None:
    assert part_count((2048, 2048)) == 4
    assert part_count((1040, 1388)) == 1
    assert part_count((8192, 8192)) == parts.MAX_PARTS
    assert part_count((100, 40000)) == 1  # slabs of at least 64 rows
    assert part_count((32, 512, 512)) == 1


def test_each_component_goes_to_the_slab_of_its_first_row_and_the_slab_spans_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parts, "PART_PIXELS", 64 * 64)
    cells = np.zeros((256, 64), dtype=bool)
    cells[10:20, 5:10] = True  # slab 0
    cells[60:100, 20:30] = True  # first row 60: slab 0, reaching into slab 1's share
    cells[130:140, 5:10] = True  # slab 2
    cells[200:250, 40:50] = True  # slab 3
    cut_cells = cut(cells, pad=3)
    assert [(slab.rows.start, slab.rows.stop, slab.index) for slab in cut_cells.slabs] == [
        (7, 103, 0),
        (127, 143, 2),  # slab 1 owns nothing
        (197, 253, 3),
    ]
    owner = cut_cells.owner()
    assert owner is not None
    assert set(np.unique(owner[60:100, 20:30])) == {0}
    assert set(np.unique(owner[~cells])) == {-1}
    for slab in cut_cells.slabs:  # a slab's own components: those of its rows the owner map gives it
        own = cut_cells.own(slab, cells[slab.rows])
        np.testing.assert_array_equal(own, owner[slab.rows] == slab.index)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slabs_find_the_objects_of_the_whole_image_whatever_the_threads(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    probabilities = field(seed)
    config = InstanceConfig(object_diameter=14.0)
    monkeypatch.setattr(parts, "PART_PIXELS", 10**9)
    whole = instances_from_probabilities(probabilities, config)
    monkeypatch.setattr(parts, "PART_PIXELS", 256 * 192 // 4)
    assert len(cut(probabilities[0] < 0.5, pad=7).slabs) >= 3
    one_thread = instances_from_probabilities(probabilities, config, workers=1)
    two_threads = instances_from_probabilities(probabilities, config, workers=2)
    np.testing.assert_array_equal(one_thread, two_threads)
    assert int(one_thread.max()) == int(whole.max()) == len(np.unique(one_thread)) - 1  # numbered 1..N
    np.testing.assert_array_equal(in_raster_order(one_thread), in_raster_order(whole))
    filled_hole = (64, 60)  # the empty ring's hole is filled in its slab too
    assert one_thread[filled_hole] > 0
    assert one_thread[128 + 8, 140] == 0  # between the ring and the nucleus it holds
    assert one_thread[128, 140] > 0
    assert one_thread[130 - 8, 60] == 0  # the same where the ring's slab does not own the nucleus
    assert 0 < one_thread[134, 60] != one_thread[130 - 15, 60] > 0


def test_border_objects_are_removed_from_the_whole_image_not_from_each_slab(monkeypatch: pytest.MonkeyPatch) -> None:
    probabilities = field(0)
    monkeypatch.setattr(parts, "PART_PIXELS", 256 * 192 // 4)
    config = InstanceConfig(object_diameter=14.0, remove_border=True)
    labels = instances_from_probabilities(probabilities, config, workers=2)
    kept = instances_from_probabilities(probabilities, InstanceConfig(object_diameter=14.0), workers=2)
    assert labels[:, 3:7].max() == 0  # the bar touches the image's top and bottom
    on_border = np.unique(np.concatenate([kept[0], kept[-1], kept[:, 0], kept[:, -1]]))
    assert int(labels.max()) == int(kept.max()) - int((on_border > 0).sum())
