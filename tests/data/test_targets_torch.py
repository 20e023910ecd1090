from __future__ import annotations

import numpy as np
import pytest
import torch

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.data.targets import normalised_distance_map, three_class_target
from cellseg.data.targets_torch import distance_target_batch, three_class_target_batch


@pytest.mark.parametrize(
    "config",
    [SyntheticConfig(shape=(96, 80), cluster_fraction=0.6), SyntheticConfig(shape=(16, 48, 40), n_nuclei=(4, 8))],
    ids=["2d", "3d"],
)
def test_batched_target_matches_the_skimage_reference(config: SyntheticConfig) -> None:
    labels = np.stack([generate_sample(config, seed).labels for seed in (0, 1)])
    batched = three_class_target_batch(torch.from_numpy(labels.astype(np.int64))[:, None])
    assert batched.dtype == torch.int64
    for sample in range(2):
        assert np.array_equal(batched[sample, 0].numpy(), three_class_target(labels[sample]))


def test_objects_cut_by_the_image_edge_have_no_boundary_there() -> None:
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    labels[..., :, :2] = 1
    target = three_class_target_batch(labels)[0, 0]
    assert target[:, 0].tolist() == [1, 1, 1, 1]
    assert target[:, 1].tolist() == [2, 2, 2, 2]


def _edge_free_objects(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels of objects that do not touch the image edge."""
    edge_labels: set[int] = set()
    for axis in range(labels.ndim):
        edge_labels |= set(np.unique(np.take(labels, [0, -1], axis=axis)).tolist())
    return np.isin(labels, sorted(edge_labels), invert=True) & (labels > 0)


@pytest.mark.parametrize(
    "config",
    [SyntheticConfig(shape=(128, 128), cluster_fraction=0.6), SyntheticConfig(shape=(24, 64, 64), n_nuclei=(4, 8))],
    ids=["2d", "3d"],
)
def test_distance_target_approximates_the_euclidean_reference(config: SyntheticConfig) -> None:
    labels = np.stack([generate_sample(config, seed).labels for seed in (0, 1)]).astype(np.int64)
    distance = distance_target_batch(torch.from_numpy(labels)[:, None])[:, 0].numpy()
    reference = np.stack([normalised_distance_map(sample) for sample in labels])
    inner = np.stack([_edge_free_objects(sample) for sample in labels])
    assert inner.sum() > 100
    assert np.abs(distance - reference)[inner].mean() < 0.08
    assert np.all(distance[labels == 0] == 0)
    assert np.all((distance[labels > 0] > 0) & (distance[labels > 0] <= 1))


def test_every_object_peaks_at_one_and_touching_objects_keep_their_own_peaks() -> None:
    labels = torch.zeros(2, 1, 12, 20, dtype=torch.int64)
    labels[0, 0, 2:10, 2:10], labels[0, 0, 2:10, 10:18] = 1, 2  # two touching squares
    labels[1, 0, 3:6, 3:6] = 1  # a small object, same label value in another sample
    distance = distance_target_batch(labels)
    for sample, label in ((0, 1), (0, 2), (1, 1)):
        assert distance[sample, 0][labels[sample, 0] == label].max() == 1.0
    # The shared border is low on both sides.
    assert distance[0, 0, 5, 9] < 0.5
    assert distance[0, 0, 5, 10] < 0.5


def test_distance_target_treats_the_image_edge_as_no_border() -> None:
    labels = torch.zeros(1, 1, 6, 6, dtype=torch.int64)
    labels[..., :, :3] = 1  # an object cut by the left edge
    distance = distance_target_batch(labels)[0, 0]
    assert torch.all(distance[:, 0] == 1.0)
    assert torch.all(distance[:, 2] < distance[:, 1])
