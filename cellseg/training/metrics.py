"""Validation metrics accumulated over an epoch (and summed across processes under DDP).

The scores are the functions ``cellseg evaluate`` reports (``cellseg.evaluation``), applied to counts summed over
the epoch, so a number logged in training means what the same name means in an evaluation.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from cellseg.evaluation.counts import dice_from_counts, dsb_score, f1_score, iou_from_counts, panoptic_quality
from cellseg.evaluation.matching import IOU_THRESHOLDS, match_instances
from cellseg.inference.instances import InstanceConfig, instances_from_probabilities


class ForegroundOverlap(Metric):
    """Pooled foreground Dice and IoU: counts true/false positives and false negatives over every pixel seen.

    Dice = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN), from counts summed over the epoch (and over DDP
    processes), so large images weigh by their pixels; both are 1 when prediction and truth are both empty.
    """

    full_state_update = False
    true_positives: torch.Tensor
    false_positives: torch.Tensor
    false_negatives: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("true_positives", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("false_positives", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("false_negatives", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        """Add the counts of boolean foreground maps ``predicted`` and ``truth`` (same shape, any)."""
        self.true_positives += (predicted & truth).sum()
        self.false_positives += (predicted & ~truth).sum()
        self.false_negatives += (~predicted & truth).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        """``{"dice": ..., "iou": ...}`` as float tensors."""
        tp, fp, fn = (int(count) for count in (self.true_positives, self.false_positives, self.false_negatives))
        device = self.true_positives.device
        return {
            "dice": torch.tensor(dice_from_counts(tp, tp + fp, tp + fn), device=device),
            "iou": torch.tensor(iou_from_counts(tp, tp + fp, tp + fn), device=device),
        }


class InstanceMatching(Metric):
    """Instance F1, DSB score and panoptic quality of validation images, pooled over their objects.

    Each image's probabilities become instances by the post-processing ``cellseg predict`` uses, matched to the true
    labels at every threshold of ``IOU_THRESHOLDS``; true/false positives, false negatives and matched IoUs are
    summed over the epoch (and over DDP processes), then scored.
    """

    full_state_update = False
    true_positives: torch.Tensor
    false_positives: torch.Tensor
    false_negatives: torch.Tensor
    sum_matched_iou: torch.Tensor

    def __init__(self, instances: InstanceConfig | None = None) -> None:
        super().__init__()
        self.instances = instances or InstanceConfig()
        for name in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(name, default=torch.zeros(len(IOU_THRESHOLDS), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state(
            "sum_matched_iou", default=torch.zeros(len(IOU_THRESHOLDS), dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of images.

        Args:
            probabilities: ``(N, K, *S)``, as ``SegmentationModule.probabilities`` gives them.
            labels: true instance labels ``(N, 1, *S)``.
        """
        batch = zip(probabilities.float().cpu().numpy(), labels.cpu().numpy(), strict=True)
        for image_probabilities, image_labels in batch:
            predicted = instances_from_probabilities(image_probabilities, self.instances)
            scores = match_instances(image_labels[0].astype(np.int64), predicted)
            self.true_positives += self.true_positives.new_tensor([c.tp for c in scores.counts])
            self.false_positives += self.false_positives.new_tensor([c.fp for c in scores.counts])
            self.false_negatives += self.false_negatives.new_tensor([c.fn for c in scores.counts])
            self.sum_matched_iou += self.sum_matched_iou.new_tensor([c.sum_matched_iou for c in scores.counts])

    def compute(self) -> dict[str, torch.Tensor]:
        """``f1@0.5``, ``f1@0.75``, ``dsb_score`` (pooled counts, averaged over the thresholds 0.5-0.95), ``pq@0.5``."""
        tp, fp, fn = (state.tolist() for state in (self.true_positives, self.false_positives, self.false_negatives))
        matched = self.sum_matched_iou.tolist()
        at = {threshold: index for index, threshold in enumerate(IOU_THRESHOLDS)}
        scores = {
            "f1@0.5": f1_score(tp[at[0.5]], fp[at[0.5]], fn[at[0.5]]),
            "f1@0.75": f1_score(tp[at[0.75]], fp[at[0.75]], fn[at[0.75]]),
            "dsb_score": float(np.mean([dsb_score(*counts) for counts in zip(tp, fp, fn, strict=True)])),
            "pq@0.5": panoptic_quality(matched[at[0.5]], tp[at[0.5]], fp[at[0.5]], fn[at[0.5]]),
        }
        return {name: torch.tensor(value, device=self.true_positives.device) for name, value in scores.items()}
