"""``SegmentationModule``: trains ``ResAttUNet`` with Lightning; its checkpoint is all ``predict`` needs.

Batches are dictionaries: ``image`` ``(N, C, *S)`` float (normalised) and ``label`` ``(N, 1, *S)`` integer instance
labels (0 = background; a binary mask is one instance). After the batch reaches the device, the module augments it
there (``BatchAugmenter``) and derives the 3-class target (background / interior / boundary) and, with
``distance_head``, each object's normalised distance to its border, so augmentation and targets both run on the GPU
when there is one, and boundaries stay one pixel wide whatever the zoom.

The network's output channels are the class logits, then the distance logit: ``probabilities`` turns them into
``(N, 3 or 4, *S)`` probabilities in the order ``OUTPUT_NAMES``.
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
from cellseg.data.targets_torch import distance_target_batch, three_class_target_batch
from cellseg.inference.instances import DEFAULT_FOREGROUND_THRESHOLD, InstanceConfig
from cellseg.models import ResAttUNet
from cellseg.training.metrics import ForegroundOverlap, InstanceMatching
from cellseg.training.schedule import warmup_cosine_factor

Batch = dict[str, torch.Tensor]
CLASS_NAMES = [c.name.lower() for c in TargetClass]
DISTANCE_NAME = "distance"


def foreground_dice_loss(class_logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 -`` soft Dice of the foreground, pooled over the batch (so patches without objects weigh nothing apart).

    Args:
        class_logits: ``(N, 3, *S)`` class logits (background first).
        target: ``(N, 1, *S)`` int64 classes; anything but background is foreground.
        smooth: added to numerator and denominator, so an all-background batch predicted empty scores 0.

    Returns:
        A scalar tensor in ``[0, 1]``.
    """
    foreground_probability = 1 - class_logits.float().softmax(dim=1)[:, TargetClass.BACKGROUND]
    foreground = (target[:, 0] != TargetClass.BACKGROUND).float()
    overlap = (foreground_probability * foreground).sum()
    total = foreground_probability.sum() + foreground.sum()
    return 1 - (2 * overlap + smooth) / (total + smooth)


class SegmentationModule(L.LightningModule):
    """Trains a ``ResAttUNet`` on the 3-class target with Dice + cross-entropy, AdamW, warm-up and cosine decay.

    With ``distance_head`` the network has a fourth output, each object's distance to its border scaled to 1 at its
    centre, trained with binary cross-entropy on the soft target; ``predict`` can seed its watershed from it.

    Every argument is plain data and saved with ``save_hyperparameters``, so a checkpoint rebuilds the network and
    knows how to prepare images for it (``load_from_checkpoint(path, weights_only=True)``; no pickled code runs).

    Args:
        network: ``ResAttUNet`` keyword arguments (names for norm and activation); ``out_channels`` (3 classes, plus
            1 with ``distance_head``) is filled in when absent.
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
        distance_head: also predict the per-object normalised distance map. On by default: as a second target it
            raised instance F1@0.5 on DSB2018 validation images from 0.462 to 0.501 (``benchmarks/target_study.py``).
        distance_loss_weight: weight of the distance head's loss against the Dice + cross-entropy of the classes.
        instance_metrics: also log instance scores of the validation images (``val/f1@0.5``, ``val/f1@0.75``,
            ``val/dsb_score``, ``val/pq@0.5``; the post-processing and matching of ``cellseg predict`` and
            ``cellseg evaluate``), at some CPU cost per validation image.
        object_diameter: the typical object diameter in pixels, which the post-processing's size settings scale to
            (``InstanceConfig``); ``None``: measured at the start of fitting as the median over the training masks
            (``CellDataModule.object_diameter``) and stored in the checkpoint.
        foreground_threshold: the probability of a cell above which a pixel is foreground in this model's instances
            (``InstanceConfig.foreground_threshold``): stored in the checkpoint, so ``cellseg predict`` uses it unless
            told otherwise, and used by the validation's instance scores. A setting of post-processing tuned with
            the model (``configs/dsb2018.yaml``: 0.6).
        foreground_loss_weight: weight of a soft Dice loss on the foreground (``1 - P(background)`` against
            ``interior | boundary``, pooled over the batch) added to the classes' Dice + cross-entropy, in every head:
            the 3-class Dice weighs the thin boundary class like the interior, while the masks (and their Dice) are
            cut from ``1 - P(background)``. 0 leaves it out.
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
        distance_head: bool = True,
        distance_loss_weight: float = 1.0,
        instance_metrics: bool = True,
        object_diameter: float | None = None,
        foreground_threshold: float = DEFAULT_FOREGROUND_THRESHOLD,
        foreground_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.output_names = CLASS_NAMES + [DISTANCE_NAME] * distance_head
        network_arguments = {"out_channels": len(self.output_names), **(network or {})}
        if network_arguments["out_channels"] != len(self.output_names):
            raise ValueError(
                f"network.out_channels must be {len(self.output_names)} ({', '.join(self.output_names)}), "
                f"got {network_arguments['out_channels']}; leave it out of the config."
            )
        self.save_hyperparameters(ignore=["network"])
        self.hparams["network"] = network_arguments  # with out_channels filled in, so the checkpoint says it
        self.network = ResAttUNet(**network_arguments)
        if self.network.spatial_dims == 2:  # NHWC convolutions: 1.9x faster inference, 1.2x training on a CPU
            self.network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.augmenter = (
            BatchAugmenter(AugmentationConfig(**(augmentation or {})), self.network.spatial_dims, seed=seed)
            if augment
            else None
        )
        self.loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
        self.val_overlap = ForegroundOverlap()
        validation_instances = InstanceConfig(foreground_threshold=foreground_threshold)
        self.val_instances = InstanceMatching(validation_instances) if instance_metrics else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Write what the checkpoint's outputs mean and which cellseg wrote it, as plain data."""
        checkpoint["cellseg"] = {"version": __version__, "class_names": CLASS_NAMES, "output_names": self.output_names}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, *S)`` for a normalised ``image`` ``(N, C, *S)``: 3 classes, then the distance if any."""
        logits: torch.Tensor = self.network(image)
        return logits

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax) and the distance map (sigmoid) from logits, both ``(N, K, *S)``."""
        classes = logits[:, : len(TargetClass)].softmax(dim=1)
        return torch.cat([classes, logits[:, len(TargetClass) :].sigmoid()], dim=1)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Augment a training batch on its device, then add the 3-class ``target`` ``(N, 1, *S)`` (and ``distance``)."""
        image, label = batch["image"], batch["label"]
        if self.augmenter is not None and self.training:  # Lightning puts the module in eval mode to validate
            image, label = self.augmenter(image, label)
        if image.ndim == 4:  # 2D: the network's weights are channels-last (NHWC); its input follows
            image = image.contiguous(memory_format=torch.channels_last)
        targets = {"target": three_class_target_batch(label)}
        if self.hparams["distance_head"]:
            targets["distance"] = distance_target_batch(label)
        return {**batch, "image": image, "label": label, **targets}

    def on_fit_start(self) -> None:
        """Take the training masks' median object diameter when none was given; scale validation instances to it."""
        datamodule = getattr(self._trainer, "datamodule", None)
        measured = getattr(datamodule, "object_diameter", None)
        if self.hparams["object_diameter"] is None and measured is not None:
            self.hparams["object_diameter"] = float(measured)
        if self.val_instances is not None:
            self.val_instances.instances = self.val_instances.instances.for_model(self.hparams["object_diameter"])

    def on_train_start(self) -> None:
        """Forget validation counts from the sanity check, so the first epoch's numbers are its own."""
        self.val_overlap.reset()
        if self.val_instances is not None:
            self.val_instances.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Loss of one training batch."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Loss of one validation batch; foreground counts go to ``val_overlap``."""
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's pooled foreground Dice and IoU (``val/dice``, ``val/iou``) and instance scores."""
        scores = self.val_overlap.compute()
        self.log("val/dice", scores["dice"], prog_bar=True, sync_dist=False)
        self.log("val/iou", scores["iou"], sync_dist=False)
        self.val_overlap.reset()
        if self.val_instances is not None:
            for name, value in self.val_instances.compute().items():
                self.log(f"val/{name}", value, prog_bar=name == "f1@0.5", sync_dist=False)
            self.val_instances.reset()

    def _shared_step(self, batch: Batch, stage: str) -> torch.Tensor:
        image, target, distance = batch["image"], batch["target"], batch.get("distance")
        if stage == "train" and self.network.deep_supervision:
            output = self.network.forward_with_aux(image)
            logits = output.logits
            loss = self._loss(logits, target, distance) + self._deep_supervision_loss(
                output.deep_logits, target, distance
            )
        else:
            logits = self.network(image)
            loss = self._loss(logits, target, distance)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", sync_dist=stage != "train", batch_size=len(image))
        if stage != "train":
            foreground = target[:, 0] != TargetClass.BACKGROUND
            classes = logits[:, : len(TargetClass)].argmax(dim=1)
            self.val_overlap.update(classes != TargetClass.BACKGROUND, foreground)
            if self.val_instances is not None:
                self.val_instances.update(self.probabilities(logits.detach()), batch["label"])
        return loss

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, distance: torch.Tensor | None) -> torch.Tensor:
        """Dice + cross-entropy of the classes, plus the weighted foreground Dice and distance losses where set.

        Args:
            logits: ``(N, K, *S)`` network output.
            target: ``(N, 1, *S)`` int64 classes.
            distance: ``(N, 1, *S)`` float normalised distance, or ``None`` without a distance head.
        """
        class_logits = logits[:, : len(TargetClass)]
        loss: torch.Tensor = self.loss_function(class_logits, target)
        if self.hparams["foreground_loss_weight"]:
            loss = loss + self.hparams["foreground_loss_weight"] * foreground_dice_loss(class_logits, target)
        if distance is not None:
            distance_loss = F.binary_cross_entropy_with_logits(logits[:, len(TargetClass) :], distance)
            loss = loss + self.hparams["distance_loss_weight"] * distance_loss
        return loss

    def _deep_supervision_loss(
        self, deep_logits: list[torch.Tensor], target: torch.Tensor, distance: torch.Tensor | None
    ) -> torch.Tensor:
        """Weighted loss of the coarser heads against the targets resampled to each head's grid.

        Classes are downsampled by nearest neighbour, the distance map by area averaging.
        """
        total = torch.zeros((), device=target.device)
        for level, logits in enumerate(deep_logits):
            size = logits.shape[2:]
            coarse_target = F.interpolate(target.float(), size=size, mode="nearest").long()
            coarse_distance = None if distance is None else F.interpolate(distance, size=size, mode="area")
            weight = self.hparams["deep_supervision_weight"] / 2**level
            total = total + weight * self._loss(logits, coarse_target, coarse_distance)
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
