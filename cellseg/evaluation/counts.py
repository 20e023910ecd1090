"""Segmentation scores as pure functions of counts: objects (tp, fp, fn) or pixels (intersection and areas).

Counting comes first (``cellseg.evaluation.matching``); each score here is then one line, as in nnU-Net's
``evaluate_predictions.py``. Counts pooled over many images give pooled scores with the same functions.

Empty denominators: a denominator is zero only when there was nothing to find and nothing was found (or, for
precision and recall, nothing on the side they look at). Every score then returns 1.0, a perfect score, so an empty
image segmented as empty counts as right. The one exception is :func:`mean_matched_iou`, an average over matched
pairs: with no pair it returns 0.0 (StarDist's ``mean_matched_score`` does the same).
"""

from __future__ import annotations


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 1.0 (a perfect score) when the denominator is 0."""
    return numerator / denominator if denominator > 0 else 1.0


def precision(tp: int, fp: int) -> float:
    """The fraction of predicted objects that match a true one: TP / (TP + FP).

    Args:
        tp: matched predicted objects (true positives).
        fp: unmatched predicted objects (false positives).

    Returns:
        A score in [0, 1]; 1.0 when nothing was predicted (no prediction was wrong).

    Examples:
        >>> precision(tp=3, fp=1)
        0.75
        >>> precision(tp=0, fp=0)
        1.0
    """
    return _ratio(tp, tp + fp)


def recall(tp: int, fn: int) -> float:
    """The fraction of true objects that a predicted one matches: TP / (TP + FN).

    Args:
        tp: matched true objects (true positives).
        fn: unmatched true objects (false negatives).

    Returns:
        A score in [0, 1]; 1.0 when there was nothing to find (nothing was missed).

    Examples:
        >>> recall(tp=1, fn=3)
        0.25
        >>> recall(tp=0, fn=0)
        1.0
    """
    return _ratio(tp, tp + fn)


def f1_score(tp: int, fp: int, fn: int) -> float:
    """The harmonic mean of precision and recall: 2 TP / (2 TP + FP + FN).

    Args:
        tp: matched pairs (true positives).
        fp: unmatched predicted objects (false positives).
        fn: unmatched true objects (false negatives).

    Returns:
        A score in [0, 1]; 1.0 when there was nothing to find and nothing was found.

    Examples:
        >>> f1_score(tp=2, fp=1, fn=1)
        0.6666666666666666
        >>> f1_score(tp=0, fp=0, fn=0)
        1.0
    """
    return _ratio(2 * tp, 2 * tp + fp + fn)


def dsb_score(tp: int, fp: int, fn: int) -> float:
    """The Data Science Bowl 2018 score at one IoU threshold: TP / (TP + FP + FN).

    Kaggle's DSB2018 and Cellpose (``metrics.average_precision``) call it "average precision"; StarDist calls it
    "accuracy". The DSB2018 leaderboard score of an image is its mean over the thresholds 0.5, 0.55, ..., 0.95.

    Args:
        tp: matched pairs (true positives).
        fp: unmatched predicted objects (false positives).
        fn: unmatched true objects (false negatives).

    Returns:
        A score in [0, 1]; 1.0 when there was nothing to find and nothing was found.

    Examples:
        >>> dsb_score(tp=2, fp=1, fn=1)
        0.5
        >>> dsb_score(tp=0, fp=0, fn=0)
        1.0
    """
    return _ratio(tp, tp + fp + fn)


def panoptic_quality(sum_matched_iou: float, tp: int, fp: int, fn: int) -> float:
    """Panoptic quality (Kirillov et al., CVPR 2019, Eq. 1): sum of matched IoUs / (TP + FP/2 + FN/2).

    It is the F1 score with each match weighted by its IoU: segmentation quality times recognition quality.

    Args:
        sum_matched_iou: the IoUs of the matched pairs, summed.
        tp: matched pairs (true positives).
        fp: unmatched predicted objects (false positives).
        fn: unmatched true objects (false negatives).

    Returns:
        A score in [0, 1]; 1.0 when there was nothing to find and nothing was found.

    Examples:
        >>> panoptic_quality(sum_matched_iou=1.6, tp=2, fp=0, fn=0)
        0.8
        >>> panoptic_quality(sum_matched_iou=0.9, tp=1, fp=1, fn=1)
        0.45
        >>> panoptic_quality(sum_matched_iou=0.0, tp=0, fp=0, fn=0)
        1.0
    """
    return _ratio(sum_matched_iou, tp + fp / 2 + fn / 2)


def mean_matched_iou(sum_matched_iou: float, tp: int) -> float:
    """The mean IoU of the matched pairs (panoptic "segmentation quality"): sum of matched IoUs / TP.

    Args:
        sum_matched_iou: the IoUs of the matched pairs, summed.
        tp: matched pairs (true positives).

    Returns:
        A score in [0, 1]; 0.0 when nothing matched (there is no pair whose quality to credit), the one score
        here that does not return 1.0 on an empty denominator.

    Examples:
        >>> mean_matched_iou(sum_matched_iou=1.5, tp=2)
        0.75
        >>> mean_matched_iou(sum_matched_iou=0.0, tp=0)
        0.0
    """
    return sum_matched_iou / tp if tp > 0 else 0.0


def dice_from_counts(intersection: int, predicted: int, true: int) -> float:
    """The Dice coefficient of two pixel sets from their sizes: 2 intersection / (predicted + true).

    Args:
        intersection: pixels in both sets.
        predicted: pixels in the predicted set.
        true: pixels in the true set.

    Returns:
        A score in [0, 1]; 1.0 when both sets are empty.

    Examples:
        >>> dice_from_counts(intersection=3, predicted=4, true=4)
        0.75
        >>> dice_from_counts(intersection=0, predicted=0, true=0)
        1.0
    """
    return _ratio(2 * intersection, predicted + true)


def iou_from_counts(intersection: int, predicted: int, true: int) -> float:
    """The intersection over union (Jaccard index) of two pixel sets from their sizes: intersection / union.

    Args:
        intersection: pixels in both sets.
        predicted: pixels in the predicted set.
        true: pixels in the true set.

    Returns:
        A score in [0, 1]; 1.0 when both sets are empty.

    Examples:
        >>> iou_from_counts(intersection=3, predicted=4, true=5)
        0.5
        >>> iou_from_counts(intersection=0, predicted=0, true=0)
        1.0
    """
    return _ratio(intersection, predicted + true - intersection)
