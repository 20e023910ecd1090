from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from cellseg.training.module import CLASS_NAMES, SegmentationModule, foreground_dice_loss

Loader = DataLoader[dict[str, torch.Tensor]]
TINY_NETWORK = {"channels": [8, 16, 32]}


def make_trainer(**kwargs: Any) -> L.Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**(options | kwargs))


@pytest.mark.parametrize(
    ("deep_supervision", "distance_head", "foreground_loss_weight"),
    [(False, False, 0.0), (True, False, 0.0), (True, True, 0.0), (True, False, 1.0)],
)
def test_fast_dev_run_logs_losses_and_overlap(
    train_loader: Loader, val_loader: Loader, deep_supervision: bool, distance_head: bool, foreground_loss_weight: float
) -> None:
    module = SegmentationModule(
        network=TINY_NETWORK | {"deep_supervision": deep_supervision},
        distance_head=distance_head,
        foreground_loss_weight=foreground_loss_weight,
    )
    trainer = make_trainer(fast_dev_run=2)
    trainer.fit(module, train_loader, val_loader)
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/dice", "val/iou", "val/f1@0.5", "val/dsb_score"} <= set(metrics)
    assert all(torch.isfinite(metrics[key]) for key in ("train/loss", "val/loss"))
    assert 0 <= metrics["val/iou"] <= metrics["val/dice"] <= 1
    assert 0 <= metrics["val/pq@0.5"] <= metrics["val/f1@0.5"] <= 1


def test_training_finds_the_nuclei(train_loader: Loader, val_loader: Loader) -> None:
    L.seed_everything(0)
    module = SegmentationModule(network=TINY_NETWORK, learning_rate=5e-3, warmup_fraction=0.1)
    trainer = make_trainer(max_epochs=12, check_val_every_n_epoch=12)
    trainer.fit(module, train_loader, val_loader)
    assert trainer.callback_metrics["val/dice"] > 0.8
    assert trainer.callback_metrics["val/f1@0.5"] > 0.4  # measured 0.65: cells found one by one, not as blobs


def test_checkpoint_loads_without_pickled_code_and_rebuilds_the_network(
    tmp_path: Path, train_loader: Loader, val_loader: Loader
) -> None:
    module = SegmentationModule(network=TINY_NETWORK, patch_size=[64, 64], channel_order=[0])
    trainer = make_trainer(fast_dev_run=1)
    trainer.fit(module, train_loader, val_loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    assert checkpoint["hyper_parameters"]["network"] == {"out_channels": 4, "channels": [8, 16, 32]}
    assert checkpoint["hyper_parameters"]["patch_size"] == [64, 64]
    assert checkpoint["cellseg"]["class_names"] == CLASS_NAMES

    restored = SegmentationModule.load_from_checkpoint(path, weights_only=True, map_location="cpu").eval()
    image = next(iter(val_loader))["image"]
    with torch.no_grad():
        assert torch.equal(restored(image), module.eval()(image))


def test_out_channels_must_be_the_number_of_classes() -> None:
    with pytest.raises(ValueError, match="out_channels must be 4"):
        SegmentationModule(network={"out_channels": 2})


def test_validation_batches_are_not_augmented(val_loader: Loader) -> None:
    module = SegmentationModule(network=TINY_NETWORK).eval()
    batch = next(iter(val_loader))
    prepared = module.on_after_batch_transfer(batch, 0)
    assert torch.equal(prepared["image"], batch["image"])
    assert prepared["target"].shape == batch["label"].shape
    module.train()
    assert not torch.equal(module.on_after_batch_transfer(batch, 0)["image"], batch["image"])


def test_distance_head_adds_a_fourth_output_and_its_target(val_loader: Loader) -> None:
    module = SegmentationModule(network=TINY_NETWORK, distance_head=True).eval()
    batch = module.on_after_batch_transfer(next(iter(val_loader)), 0)
    assert batch["distance"].shape == batch["label"].shape
    assert torch.all((batch["distance"] > 0) == (batch["label"] > 0))
    with torch.inference_mode():
        probabilities = module.probabilities(module(batch["image"]))
    assert probabilities.shape[1] == 4
    assert module.output_names == [*CLASS_NAMES, "distance"]
    assert torch.allclose(probabilities[:, :3].sum(dim=1), torch.ones(()))
    assert torch.all((probabilities[:, 3] >= 0) & (probabilities[:, 3] <= 1))


def confident_logits(classes: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` logits that put almost all probability on ``classes`` ``(N, 1, H, W)``."""
    return 20.0 * torch.nn.functional.one_hot(classes[:, 0], 3).permute(0, 3, 1, 2).float()


def test_foreground_dice_loss_scores_the_union_of_interior_and_boundary() -> None:
    target = torch.zeros(2, 1, 8, 8, dtype=torch.int64)
    target[0, 0, 2:6, 2:6] = 1
    target[0, 0, 2, 2:6] = 2  # a boundary row: still foreground
    swapped = target.clone()  # interior and boundary exchanged: wrong classes, right foreground
    swapped[target == 1], swapped[target == 2] = 2, 1
    assert foreground_dice_loss(confident_logits(target), target) < 1e-3
    assert foreground_dice_loss(confident_logits(swapped), target) < 1e-3
    assert foreground_dice_loss(confident_logits(torch.zeros_like(target)), target) > 0.9
    empty = torch.zeros_like(target)
    assert foreground_dice_loss(confident_logits(empty), empty) < 1e-3  # nothing to find, nothing found


def test_foreground_loss_weight_adds_the_foreground_dice_to_the_loss() -> None:
    target = torch.zeros(1, 1, 16, 16, dtype=torch.int64)
    target[0, 0, 4:12, 4:12] = 1
    logits = torch.randn(1, 3, 16, 16, requires_grad=True)
    plain = SegmentationModule(network=TINY_NETWORK, distance_head=False)
    weighted = SegmentationModule(network=TINY_NETWORK, distance_head=False, foreground_loss_weight=0.5)
    difference = weighted._loss(logits, target, None) - plain._loss(logits, target, None)
    assert torch.allclose(difference, 0.5 * foreground_dice_loss(logits, target))
    difference.backward()
    assert logits.grad is not None
    assert logits.grad[:, 0].abs().sum() > 0
