"""Instance matching: which predicted object is which true object, and the counts that the scores are made of.

The conventions are the field's (StarDist's ``stardist.matching.matching``, Cellpose's
``metrics.average_precision``, the Data Science Bowl 2018 score): a predicted and a true object may match when their
IoU is at least the threshold; each object matches at most one other; among the one-to-one assignments the one with
the most matches is taken, and among those the one with the largest summed IoU.

Everything is counted from one histogram of (true label, predicted label) pixel pairs, in 2D or 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.segmentation import relabel_sequential

from cellseg.evaluation import counts

LabelImage: TypeAlias = npt.NDArray[np.integer[Any] | np.bool_]
"""A label image ``(H, W)`` or ``(D, H, W)``: 0 is background, each positive value one object."""

Int64Array: TypeAlias = npt.NDArray[np.int64]
IndexArray: TypeAlias = npt.NDArray[np.intp]
IdArray: TypeAlias = npt.NDArray[np.integer[Any]]

IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * step, 2) for step in range(10))
"""The IoU thresholds of the DSB2018 score and the COCO-style sweep: 0.5, 0.55, ..., 0.95."""


@dataclass(frozen=True)
class Overlap:
    """Pixel counts of every (true object, predicted object) pair, background left out.

    Row ``i`` is the true object ``true_ids[i]``, column ``j`` the predicted object ``predicted_ids[j]``; both id
    arrays are sorted. The matrix is dense: its memory is ``8 * n_true * n_pred`` bytes.

    Attributes:
        intersection: ``(n_true, n_pred)`` pixels in both objects.
        true_areas: ``(n_true,)`` pixels of each true object.
        predicted_areas: ``(n_pred,)`` pixels of each predicted object.
        true_ids: ``(n_true,)`` the label value of each true object in the input image (its integer dtype, or
            ``uint8`` for bool).
        predicted_ids: ``(n_pred,)`` the label value of each predicted object in the input image.
    """

    intersection: Int64Array
    true_areas: Int64Array
    predicted_areas: Int64Array
    true_ids: IdArray
    predicted_ids: IdArray


def overlap_counts(truth: LabelImage, predicted: LabelImage) -> Overlap:
    """Count the pixels shared by every pair of true and predicted objects, from one label-pair histogram.

    Args:
        truth: true labels ``(H, W)`` or ``(D, H, W)``, non-negative integers (or bool), 0 = background; the ids
            need not be sequential.
        predicted: predicted labels of the same shape and kind.

    Returns:
        The overlap of the ``n_true`` true and ``n_pred`` predicted objects.

    Raises:
        ValueError: the shapes differ, a label is negative, or an array is not integer or bool.

    Examples:
        >>> truth = np.array([[7, 7, 0], [0, 300, 300]])
        >>> predicted = np.array([[1, 1, 1], [0, 0, 2]])
        >>> overlap = overlap_counts(truth, predicted)
        >>> overlap.intersection
        array([[2, 0],
               [0, 1]])
        >>> overlap.true_areas, overlap.predicted_areas
        (array([2, 2]), array([3, 1]))
        >>> overlap.true_ids, overlap.predicted_ids
        (array([  7, 300]), array([1, 2]))
    """
    if truth.shape != predicted.shape:
        raise ValueError(
            f"truth has shape {truth.shape} and prediction {predicted.shape}: label images must have the same shape"
        )
    true_sequential, true_ids = _sequential(truth, "truth")
    predicted_sequential, predicted_ids = _sequential(predicted, "prediction")
    n_true, n_pred = true_ids.size, predicted_ids.size
    pair_codes = true_sequential.ravel() * (n_pred + 1) + predicted_sequential.ravel()
    histogram = np.bincount(pair_codes, minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    histogram = histogram.astype(np.int64, copy=False)
    return Overlap(
        intersection=histogram[1:, 1:],
        true_areas=histogram[1:].sum(axis=1),
        predicted_areas=histogram[:, 1:].sum(axis=0),
        true_ids=true_ids,
        predicted_ids=predicted_ids,
    )


def _sequential(labels: LabelImage, name: str) -> tuple[Int64Array, IdArray]:
    """``labels`` renumbered 1..n as int64 (same shape; 0 stays 0), and the ``(n,)`` original id of each, sorted."""
    if labels.dtype.kind == "b":
        labels = labels.astype(np.uint8)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {labels.dtype}: label images must hold integers (or bool)")
    if labels.size == 0:
        return np.zeros(labels.shape, dtype=np.int64), np.zeros(0, dtype=labels.dtype)
    if labels.min() < 0:
        raise ValueError(f"{name} has negative labels (down to {labels.min()}): 0 is background, objects are > 0")
    sequential, _, inverse = relabel_sequential(labels)
    ids: IdArray = np.asarray(inverse)[1:]
    return sequential.astype(np.int64, copy=False), ids


def iou_matrix(overlap: Overlap) -> npt.NDArray[np.float64]:
    """The intersection over union of every (true, predicted) pair: ``(n_true, n_pred)``, values in [0, 1].

    Examples:
        >>> truth = np.array([[1, 1, 1, 1]])
        >>> predicted = np.array([[0, 2, 2, 2]])
        >>> iou_matrix(overlap_counts(truth, predicted))
        array([[0.75]])
    """
    union = overlap.true_areas[:, None] + overlap.predicted_areas[None, :] - overlap.intersection
    # every object has at least one pixel, so no union is 0
    iou: npt.NDArray[np.float64] = overlap.intersection / union
    return iou


def match(iou: npt.NDArray[np.float64], threshold: float) -> tuple[IndexArray, IndexArray]:
    """The optimal one-to-one matching of true and predicted objects whose IoU is at least ``threshold``.

    It maximises the number of matches, then their summed IoU (StarDist's cost: a match is worth 1, plus its IoU
    divided by twice the most matches possible, so all the IoU bonuses together never outweigh one match; unlike
    StarDist, pairs below the threshold earn no bonus, so they cannot sway the choice among equal counts). Below a
    threshold of 0.5 an object can overlap several others enough to match; the assignment, unlike greedy matching,
    then still finds the most matches.

    Args:
        iou: ``(n_true, n_pred)`` IoU of each pair (:func:`iou_matrix`).
        threshold: the least IoU of a match, in (0, 1].

    Returns:
        ``(true_index, predicted_index)``: two ``(n_matches,)`` arrays of row and column indices of ``iou``, one
        entry per matched pair, sorted by row.

    Raises:
        ValueError: ``threshold`` is not in (0, 1].

    Examples:
        >>> iou = np.array([[0.4, 0.3], [0.35, 0.0]])
        >>> match(iou, threshold=0.3)  # greedy would take (0, 0) and leave row 1 unmatched
        (array([0, 1]), array([1, 0]))
        >>> match(iou, threshold=0.5)
        (array([], dtype=int64), array([], dtype=int64))
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold {threshold} is not in (0, 1]: objects that do not overlap cannot match")
    candidates = iou >= threshold
    # only rows and columns with a candidate can match: solving on them alone keeps sparse problems small
    rows = np.flatnonzero(candidates.any(axis=1))
    columns = np.flatnonzero(candidates.any(axis=0))
    if rows.size == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty.copy()
    sub_iou = iou[np.ix_(rows, columns)]
    sub_candidates = candidates[np.ix_(rows, columns)]
    most_matches = min(sub_iou.shape)
    cost = np.where(sub_candidates, -1.0 - sub_iou / (2 * most_matches), 0.0)
    true_index, predicted_index = linear_sum_assignment(cost)
    kept = sub_candidates[true_index, predicted_index]
    return rows[true_index[kept]], columns[predicted_index[kept]]


@dataclass(frozen=True)
class MatchCounts:
    """The matching of one image (or several, pooled with ``+``) at one IoU threshold, and its scores.

    Attributes:
        threshold: the least IoU of a match.
        tp: matched pairs.
        fp: predicted objects left unmatched.
        fn: true objects left unmatched.
        sum_matched_iou: the IoUs of the matched pairs, summed.
        n_true: true objects (``tp + fn``).
        n_predicted: predicted objects (``tp + fp``).
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    sum_matched_iou: float
    n_true: int
    n_predicted: int

    def __add__(self, other: MatchCounts) -> MatchCounts:
        """The counts of both, pooled (as StarDist's ``matching_dataset`` does with ``by_image=False``).

        Raises:
            ValueError: the thresholds differ.
        """
        if other.threshold != self.threshold:
            raise ValueError(f"cannot pool counts at IoU thresholds {self.threshold} and {other.threshold}")
        return MatchCounts(
            threshold=self.threshold,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            sum_matched_iou=self.sum_matched_iou + other.sum_matched_iou,
            n_true=self.n_true + other.n_true,
            n_predicted=self.n_predicted + other.n_predicted,
        )

    @property
    def precision(self) -> float:
        """TP / (TP + FP); see :func:`cellseg.evaluation.counts.precision`."""
        return counts.precision(self.tp, self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); see :func:`cellseg.evaluation.counts.recall`."""
        return counts.recall(self.tp, self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); see :func:`cellseg.evaluation.counts.f1_score`."""
        return counts.f1_score(self.tp, self.fp, self.fn)

    @property
    def dsb_score(self) -> float:
        """TP / (TP + FP + FN); see :func:`cellseg.evaluation.counts.dsb_score`."""
        return counts.dsb_score(self.tp, self.fp, self.fn)

    @property
    def panoptic_quality(self) -> float:
        """Sum of matched IoUs / (TP + FP/2 + FN/2); see :func:`cellseg.evaluation.counts.panoptic_quality`."""
        return counts.panoptic_quality(self.sum_matched_iou, self.tp, self.fp, self.fn)

    @property
    def mean_matched_iou(self) -> float:
        """Sum of matched IoUs / TP; see :func:`cellseg.evaluation.counts.mean_matched_iou`."""
        return counts.mean_matched_iou(self.sum_matched_iou, self.tp)


@dataclass(frozen=True)
class InstanceScores:
    """How a predicted label image compares with the true one: matches per threshold, errors and overlap.

    Attributes:
        counts: the matching at each IoU threshold, in the order the thresholds were given.
        merges: predicted objects that each cover more than half of two or more true objects.
        splits: true objects that each hold more than half of two or more predicted objects.
        dice: foreground Dice (all objects against background).
        iou: foreground IoU.
        n_true: true objects.
        n_predicted: predicted objects.
        foreground_intersection: pixels in the foreground of both (for Dice/IoU pooled over images).
        foreground_true: true foreground pixels.
        foreground_predicted: predicted foreground pixels.
    """

    counts: list[MatchCounts]
    merges: int
    splits: int
    dice: float
    iou: float
    n_true: int
    n_predicted: int
    foreground_intersection: int = 0
    foreground_true: int = 0
    foreground_predicted: int = 0

    def at(self, threshold: float) -> MatchCounts:
        """The counts at ``threshold``.

        Raises:
            KeyError: ``threshold`` was not one of those matched at.
        """
        for match_counts in self.counts:
            if match_counts.threshold == threshold:
                return match_counts
        raise KeyError(f"no counts at IoU threshold {threshold}; thresholds: {[c.threshold for c in self.counts]}")

    @property
    def mean_dsb_score(self) -> float:
        """The DSB2018 score of the image: the mean over the thresholds of TP / (TP + FP + FN)."""
        return float(np.mean([match_counts.dsb_score for match_counts in self.counts]))


def match_instances(
    truth: LabelImage, predicted: LabelImage, thresholds: tuple[float, ...] = IOU_THRESHOLDS
) -> InstanceScores:
    """Match predicted objects to true ones at each IoU threshold and count merges, splits and foreground overlap.

    Args:
        truth: true labels ``(H, W)`` or ``(D, H, W)``, 0 = background, ids in any order.
        predicted: predicted labels of the same shape.
        thresholds: the IoU thresholds to match at, each in (0, 1]; at least one.

    Returns:
        The counts and scores of the image.

    Raises:
        ValueError: the shapes differ, a label is negative or not an integer, or a threshold is bad.

    Examples:
        >>> truth = np.zeros((4, 8), dtype=np.uint16)
        >>> truth[:, :4] = 1
        >>> predicted = np.zeros_like(truth)
        >>> predicted[:, 1:4] = 5  # IoU 12 / 16 = 0.75 with the true object
        >>> predicted[:, 6:] = 9  # nothing there in the truth
        >>> scores = match_instances(truth, predicted, thresholds=(0.5, 0.8))
        >>> [(c.threshold, c.tp, c.fp, c.fn) for c in scores.counts]
        [(0.5, 1, 1, 0), (0.8, 0, 2, 1)]
        >>> scores.at(0.5).f1, scores.at(0.5).panoptic_quality
        (0.6666666666666666, 0.5)
        >>> scores.dice  # 2 * 12 / (16 + 20)
        0.6666666666666666
    """
    if not thresholds:
        raise ValueError("no IoU threshold given: pass at least one, e.g. IOU_THRESHOLDS")
    overlap = overlap_counts(truth, predicted)
    iou = iou_matrix(overlap)
    n_true, n_predicted = iou.shape
    match_counts = [_count_matches(iou, threshold) for threshold in thresholds]
    foreground_intersection = int(overlap.intersection.sum())
    foreground_true, foreground_predicted = int(overlap.true_areas.sum()), int(overlap.predicted_areas.sum())
    return InstanceScores(
        counts=match_counts,
        merges=_merges(overlap),
        splits=_splits(overlap),
        dice=counts.dice_from_counts(foreground_intersection, foreground_predicted, foreground_true),
        iou=counts.iou_from_counts(foreground_intersection, foreground_predicted, foreground_true),
        n_true=n_true,
        n_predicted=n_predicted,
        foreground_intersection=foreground_intersection,
        foreground_true=foreground_true,
        foreground_predicted=foreground_predicted,
    )


def _count_matches(iou: npt.NDArray[np.float64], threshold: float) -> MatchCounts:
    """The :class:`MatchCounts` of the optimal matching of ``iou`` ``(n_true, n_pred)`` at ``threshold``."""
    true_index, predicted_index = match(iou, threshold)
    n_true, n_predicted = iou.shape
    tp = int(true_index.size)
    return MatchCounts(
        threshold=threshold,
        tp=tp,
        fp=n_predicted - tp,
        fn=n_true - tp,
        sum_matched_iou=float(iou[true_index, predicted_index].sum()),
        n_true=n_true,
        n_predicted=n_predicted,
    )


def _merges(overlap: Overlap) -> int:
    """Predicted objects that each cover more than half the area of two or more true objects."""
    mostly_covered = 2 * overlap.intersection > overlap.true_areas[:, None]  # (n_true, n_pred)
    return int(np.count_nonzero(mostly_covered.sum(axis=0) >= 2))


def _splits(overlap: Overlap) -> int:
    """True objects of which two or more predicted objects each lie more than half inside."""
    mostly_inside = 2 * overlap.intersection > overlap.predicted_areas[None, :]  # (n_true, n_pred)
    return int(np.count_nonzero(mostly_inside.sum(axis=1) >= 2))


def as_instances(mask: LabelImage) -> tuple[LabelImage, bool]:
    """Instance labels for a mask: a binary mask is split into connected components, a label mask kept as it is.

    A mask is binary when it holds 0 and at most one other value; its objects are then the connected components
    of the foreground, pixels joined through faces only (4-connectivity in 2D, 6 in 3D). A label mask with a single
    object is binary by this rule, so an object in several pieces becomes several objects.

    Args:
        mask: ``(H, W)`` or ``(D, H, W)`` binary or label mask, 0 = background.

    Returns:
        ``(labels, was_binary)``: labels of the mask's shape (``int32`` when labelled here, else ``mask`` itself),
        and whether the mask was binary and so labelled here.

    Examples:
        >>> labels, was_binary = as_instances(np.array([[1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool))
        >>> labels, was_binary
        (array([[1, 1, 0, 2],
               [0, 0, 0, 2],
               [3, 0, 0, 0]], dtype=int32), True)
        >>> as_instances(np.array([[0, 4], [9, 9]]))[1]
        False
    """
    values = np.unique(mask)
    if np.count_nonzero(values) > 1:
        return mask, False
    labels, _ = ndimage.label(mask != 0)
    return labels.astype(np.int32, copy=False), True
