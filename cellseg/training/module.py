"""``SegmentationModule``: trains ``ResAttUNet`` with Lightning; its checkpoint is all ``predict`` needs.

Batches are dictionaries: ``image`` ``(N, C, *S)`` float (normalised) and ``label`` ``(N, 1, *S)`` integer instance
labels (0 = background; a binary mask is one instance). After the batch reaches the device, the module augments it
there (``BatchAugmenter``) and derives the 3-class target (background / interior / boundary), so augmentation and
target both run on the GPU when there is one, and boundaries stay one pixel wide whatever the zoom.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from monai.losses.dice import DiceCELoss

from cellseg import __version__
from cellseg.data.augment import AugmentationConfig, BatchAugmenter
from cellseg.data.targets import TargetClass
from cellseg.data.targets_torch import three_class_target_batch
from cellseg.models import ResAttUNet
from cellseg.training.metrics import ForegroundOverlap
from cellseg.training.schedule import warmup_cosine_factor

Batch = dict[str, torch.Tensor]
CLASS_NAMES = [c.name.lower() for c in TargetClass]


class SegmentationModule(L.LightningModule):
    """Trains a ``ResAttUNet`` on the 3-class target with Dice + cross-entropy, AdamW, warm-up and cosine decay.

    Every argument is plain data and saved with ``save_hyperparameters``, so a checkpoint rebuilds the network and
    knows how to prepare images for it (``load_from_checkpoint(path, weights_only=True)``; no pickled code runs).

    Args:
        network: ``ResAttUNet`` keyword arguments (names for norm and activation); ``out_channels`` is the number of
            target classes (3) and is filled in when absent.
        learning_rate: AdamW's peak learning rate.
        weight_decay: AdamW's decoupled weight decay, applied to conv weights only (not to norms and biases).
        warmup_fraction: share of the training steps spent warming the learning rate up linearly.
        final_lr_factor: learning rate at the end of the cosine decay, as a fraction of the peak.
        deep_supervision_weight: weight of the first deep supervision head's loss (halved at each coarser level),
            used when ``network["deep_supervision"]`` is true.
        augmentation: ``AugmentationConfig`` fields to override; ``None`` keeps the defaults.
        augment: augment training batches at all.
        seed: seed of the augmentation's random draws.
        patch_size: the training patch size, which ``predict`` uses as its tile size.
        percentiles: the intensity normalisation percentiles the images were prepared with.
        channel_order: the channel selection the images were prepared with.
    """

    def __init__(
        self,
        network: dict[str, Any] | None = None,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.05,
        final_lr_factor: float = 0.01,
        deep_supervision_weight: float = 0.5,
        augmentation: dict[str, Any] | None = None,
        augment: bool = True,
        seed: int = 0,
        patch_size: list[int] | None = None,
        percentiles: tuple[float, float] = (1.0, 99.8),
        channel_order: list[int] | None = None,
    ) -> None:
        super().__init__()
        network_arguments = {"out_channels": len(TargetClass), **(network or {})}
        if network_arguments["out_channels"] != len(TargetClass):
            raise ValueError(
                f"network.out_channels must be {len(TargetClass)} ({', '.join(CLASS_NAMES)}), "
                f"got {network_arguments['out_channels']}; leave it out of the config."
            )
        self.save_hyperparameters(ignore=["network"])
        self.hparams["network"] = network_arguments  # with out_channels filled in, so the checkpoint says it
        self.network = ResAttUNet(**network_arguments)
        self.augmenter = (
            BatchAugmenter(AugmentationConfig(**(augmentation or {})), self.network.spatial_dims, seed=seed)
            if augment
            else None
        )
        self.loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
        self.val_overlap = ForegroundOverlap()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Write what the checkpoint's outputs mean and which cellseg wrote it, as plain data."""
        checkpoint["cellseg"] = {"version": __version__, "class_names": CLASS_NAMES}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, 3, *S)`` for a normalised ``image`` ``(N, C, *S)``."""
        logits: torch.Tensor = self.network(image)
        return logits

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Augment a training batch on its device, then add the 3-class ``target`` ``(N, 1, *S)``."""
        image, label = batch["image"], batch["label"]
        if self.augmenter is not None and self.training:  # Lightning puts the module in eval mode to validate
            image, label = self.augmenter(image, label)
        return {**batch, "image": image, "label": label, "target": three_class_target_batch(label)}

    def on_train_start(self) -> None:
        """Forget validation counts from the sanity check, so the first epoch's numbers are its own."""
        self.val_overlap.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Loss of one training batch."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Loss of one validation batch; foreground counts go to ``val_overlap``."""
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's pooled foreground Dice and IoU as ``val/dice`` and ``val/iou``."""
        scores = self.val_overlap.compute()
        self.log("val/dice", scores["dice"], prog_bar=True, sync_dist=False)
        self.log("val/iou", scores["iou"], sync_dist=False)
        self.val_overlap.reset()

    def _shared_step(self, batch: Batch, stage: str) -> torch.Tensor:
        image, target = batch["image"], batch["target"]
        if stage == "train" and self.network.deep_supervision:
            output = self.network.forward_with_aux(image)
            logits = output.logits
            loss = self.loss_function(logits, target) + self._deep_supervision_loss(output.deep_logits, target)
        else:
            logits = self.network(image)
            loss = self.loss_function(logits, target)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", sync_dist=stage != "train", batch_size=len(image))
        if stage != "train":
            foreground = target[:, 0] != TargetClass.BACKGROUND
            self.val_overlap.update(logits.argmax(dim=1) != TargetClass.BACKGROUND, foreground)
        return loss  # type: ignore[no-any-return]

    def _deep_supervision_loss(self, deep_logits: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Weighted loss of the coarser heads against the target, nearest-downsampled to each head's grid."""
        total = torch.zeros((), device=target.device)
        for level, logits in enumerate(deep_logits):
            coarse_target = F.interpolate(target.float(), size=logits.shape[2:], mode="nearest").long()
            total = total + self.hparams["deep_supervision_weight"] / 2**level * self.loss_function(
                logits, coarse_target
            )
        return total

    def configure_optimizers(self) -> Any:
        """AdamW (weight decay on conv weights only) with per-step warm-up and cosine decay."""
        decayed = [p for p in self.parameters() if p.ndim > 1]
        not_decayed = [p for p in self.parameters() if p.ndim <= 1]
        optimizer = torch.optim.AdamW(
            [
                {"params": decayed, "weight_decay": self.hparams["weight_decay"]},
                {"params": not_decayed, "weight_decay": 0.0},
            ],
            lr=self.hparams["learning_rate"],
        )
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup_steps = max(round(self.hparams["warmup_fraction"] * total_steps), 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, self.hparams["final_lr_factor"]),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
