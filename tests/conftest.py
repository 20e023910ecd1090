"""Shared pytest set-up: markers, a fixed seed, and small trained checkpoints.

The ``slow`` and ``gpu`` markers skip by default; every test starts from torch seed 0; the checkpoints are trained
once per session and shared by the inference, evaluation and review tests.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from cellseg.training.module import SegmentationModule
from tests.training.conftest import PATCH, SyntheticPatches


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU and none is visible")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


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
