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


def _probabilities_of(labels: torch.Tensor) -> torch.Tensor:
    """Confident 3-class probabilities ``(1, 3, H, W)`` drawing exactly ``labels`` ``(H, W)``: interiors, 1-px rims."""
    from cellseg.data.targets_torch import three_class_target_batch

    classes = three_class_target_batch(labels[None, None])[:, 0]
    return torch.nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()


def test_instance_scores_are_those_of_cellseg_evaluate() -> None:
    from cellseg.evaluation.matching import match_instances
    from cellseg.training.metrics import InstanceMatching

    truth = torch.zeros(32, 48, dtype=torch.long)
    truth[2:12, 2:12], truth[2:12, 20:30], truth[18:28, 4:14], truth[18:28, 30:44] = 1, 2, 3, 4
    drawn = truth.clone()
    drawn[18:28, 30:44] = 0  # the prediction misses object 4 ...
    drawn[20:26, 20:26] = 5  # ... and adds one
    metric = InstanceMatching()
    metric.update(_probabilities_of(drawn), truth[None, None])
    metric.update(_probabilities_of(truth), truth[None, None])  # a perfect second image
    scores = {name: value.item() for name, value in metric.compute().items()}
    # Pooled over both images: TP 3 + 4, FP 1, FN 1.
    assert scores["f1@0.5"] == pytest.approx(2 * 7 / (2 * 7 + 2))
    first = match_instances(truth.numpy(), drawn.numpy())
    assert first.at(0.5).tp == 3
    assert first.at(0.5).fp == 1
    assert 0 < scores["pq@0.5"] <= scores["f1@0.5"]
    assert 0 < scores["dsb_score"] <= 1
