"""A small trained checkpoint for inference tests: trained for a few seconds on synthetic nuclei."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from torch.utils.data import DataLoader

from cellseg.training.module import SegmentationModule
from tests.training.conftest import PATCH, SyntheticPatches


def train_checkpoint(path: Path, distance_head: bool) -> Path:
    """Train a tiny network for 150 steps on 64 x 64 synthetic patches and save it to ``path``."""
    L.seed_everything(0)
    module = SegmentationModule(
        network={"channels": [8, 16, 32]},
        learning_rate=5e-3,
        warmup_fraction=0.1,
        patch_size=[PATCH, PATCH],
        distance_head=distance_head,
    )
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=150, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, DataLoader(SyntheticPatches(32, seed=0), batch_size=8, shuffle=True))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class (boundary) model's checkpoint."""
    return train_checkpoint(tmp_path_factory.mktemp("model") / "boundary.ckpt", distance_head=False)


@pytest.fixture(scope="session")
def distance_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with a distance head."""
    return train_checkpoint(tmp_path_factory.mktemp("model") / "distance.ckpt", distance_head=True)
