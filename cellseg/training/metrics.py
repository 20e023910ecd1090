"""Foreground overlap metrics accumulated over a validation epoch (and across processes under DDP)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


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
        tp, fp, fn = (s.double() for s in (self.true_positives, self.false_positives, self.false_negatives))
        union = tp + fp + fn
        if union == 0:
            one = torch.tensor(1.0, device=tp.device)
            return {"dice": one, "iou": one}
        dice = 2 * tp / (2 * tp + fp + fn)
        iou = tp / union
        return {"dice": dice.float(), "iou": iou.float()}
