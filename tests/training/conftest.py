"""Tiny synthetic data sets for training tests: real images and labels from the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cellseg.data.intensity import percentile_normalise
from cellseg.data.synthetic import SyntheticConfig, generate_sample

PATCH = 64


class SyntheticPatches(Dataset[dict[str, torch.Tensor]]):
    """``n`` synthetic nuclei patches: ``image`` ``(1, P, P)`` float32 normalised, ``label`` ``(1, P, P)`` int64."""

    def __init__(self, n: int, seed: int) -> None:
        config = SyntheticConfig(shape=(PATCH, PATCH), n_nuclei=(4, 8), radius=(5.0, 8.0))
        self.samples = [generate_sample(config, (seed, index)) for index in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        image = percentile_normalise(sample.image[None])
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(sample.labels[None].astype(np.int64))}


@pytest.fixture(scope="session")
def train_loader() -> DataLoader[dict[str, torch.Tensor]]:
    return DataLoader(SyntheticPatches(16, seed=0), batch_size=4, shuffle=True)


@pytest.fixture(scope="session")
def val_loader() -> DataLoader[dict[str, torch.Tensor]]:
    return DataLoader(SyntheticPatches(4, seed=1), batch_size=4)
