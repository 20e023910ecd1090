from __future__ import annotations

import numpy as np
import pytest
import torch

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.data.targets import three_class_target
from cellseg.data.targets_torch import three_class_target_batch


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
