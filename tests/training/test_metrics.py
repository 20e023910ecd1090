from __future__ import annotations

import pytest
import torch

from cellseg.training.metrics import ForegroundOverlap


def test_counts_pool_over_updates() -> None:
    metric = ForegroundOverlap()
    metric.update(torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False]))
    metric.update(torch.tensor([True, True]), torch.tensor([True, True]))
    scores = metric.compute()
    # TP = 3, FP = 1, FN = 1
    assert scores["dice"].item() == pytest.approx(6 / 8)
    assert scores["iou"].item() == pytest.approx(3 / 5)


def test_both_empty_scores_one_and_disjoint_scores_zero() -> None:
    empty = ForegroundOverlap()
    empty.update(torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    assert empty.compute()["dice"].item() == 1.0
    disjoint = ForegroundOverlap()
    disjoint.update(torch.tensor([True, False]), torch.tensor([False, True]))
    assert disjoint.compute()["iou"].item() == 0.0
