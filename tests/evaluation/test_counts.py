from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellseg.evaluation.counts import (
    dice_from_counts,
    dsb_score,
    f1_score,
    iou_from_counts,
    mean_matched_iou,
    panoptic_quality,
    precision,
    recall,
)

counts = st.integers(min_value=0, max_value=1000)


def test_object_scores_by_hand() -> None:
    # 6 true objects, 5 predicted, 4 matched: TP = 4, FP = 1, FN = 2
    assert precision(4, 1) == pytest.approx(4 / 5)
    assert recall(4, 2) == pytest.approx(4 / 6)
    assert f1_score(4, 1, 2) == pytest.approx(8 / 11)
    assert dsb_score(4, 1, 2) == pytest.approx(4 / 7)
    assert panoptic_quality(3.2, 4, 1, 2) == pytest.approx(3.2 / 5.5)
    assert mean_matched_iou(3.2, 4) == pytest.approx(0.8)


def test_pixel_scores_by_hand() -> None:
    # 6 predicted pixels, 10 true, 4 in both: 12 in the union
    assert dice_from_counts(4, 6, 10) == pytest.approx(8 / 16)
    assert iou_from_counts(4, 6, 10) == pytest.approx(4 / 12)


def test_nothing_to_find_and_nothing_found_is_perfect() -> None:
    assert precision(0, 0) == recall(0, 0) == f1_score(0, 0, 0) == dsb_score(0, 0, 0) == 1.0
    assert panoptic_quality(0.0, 0, 0, 0) == 1.0
    assert dice_from_counts(0, 0, 0) == iou_from_counts(0, 0, 0) == 1.0


def test_mean_matched_iou_without_matches_is_zero() -> None:
    assert mean_matched_iou(0.0, 0) == 0.0


def test_nothing_predicted_scores_zero_but_makes_no_false_claim() -> None:
    tp, fp, fn = 0, 0, 3
    assert precision(tp, fp) == 1.0
    assert recall(tp, fn) == f1_score(tp, fp, fn) == dsb_score(tp, fp, fn) == panoptic_quality(0.0, tp, fp, fn) == 0.0
    assert dice_from_counts(0, 0, 50) == iou_from_counts(0, 0, 50) == 0.0


def test_nothing_to_find_but_something_predicted_scores_zero() -> None:
    tp, fp, fn = 0, 2, 0
    assert recall(tp, fn) == 1.0
    assert precision(tp, fp) == f1_score(tp, fp, fn) == dsb_score(tp, fp, fn) == 0.0
    assert dice_from_counts(0, 50, 0) == iou_from_counts(0, 50, 0) == 0.0


@settings(max_examples=200, deadline=None)
@given(tp=counts, fp=counts, fn=counts, mean_iou=st.floats(min_value=0.0, max_value=1.0))
def test_object_scores_agree_with_each_other(tp: int, fp: int, fn: int, mean_iou: float) -> None:
    sum_iou = mean_iou * tp
    scores = [precision(tp, fp), recall(tp, fn), f1_score(tp, fp, fn), dsb_score(tp, fp, fn)]
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert 0.0 <= panoptic_quality(sum_iou, tp, fp, fn) <= 1.0 + 1e-12
    if tp > 0:
        p, r = precision(tp, fp), recall(tp, fn)
        assert f1_score(tp, fp, fn) == pytest.approx(2 * p * r / (p + r))
        # panoptic quality = segmentation quality x recognition quality (Kirillov et al., Eq. 3)
        assert panoptic_quality(sum_iou, tp, fp, fn) == pytest.approx(
            mean_matched_iou(sum_iou, tp) * f1_score(tp, fp, fn)
        )
    # the DSB score J = TP/(TP+FP+FN) and F1 are tied: F1 = 2J / (1 + J)
    j = dsb_score(tp, fp, fn)
    assert f1_score(tp, fp, fn) == pytest.approx(2 * j / (1 + j))


@settings(max_examples=200, deadline=None)
@given(intersection=counts, predicted_only=counts, true_only=counts)
def test_dice_and_iou_are_tied(intersection: int, predicted_only: int, true_only: int) -> None:
    predicted, true = intersection + predicted_only, intersection + true_only
    dice, iou = dice_from_counts(intersection, predicted, true), iou_from_counts(intersection, predicted, true)
    assert 0.0 <= iou <= dice <= 1.0
    assert dice == pytest.approx(2 * iou / (1 + iou))
    assert dice_from_counts(intersection, predicted, true) == f1_score(intersection, predicted_only, true_only)
