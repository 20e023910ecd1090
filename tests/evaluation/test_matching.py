from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from monai.metrics.meandice import DiceMetric
from monai.metrics.meaniou import MeanIoU

from cellseg.evaluation.matching import (
    IOU_THRESHOLDS,
    InstanceScores,
    MatchCounts,
    as_instances,
    iou_matrix,
    match,
    match_instances,
    overlap_counts,
)

Labels = npt.NDArray[np.int32]


def square(shape: tuple[int, ...], corner: tuple[int, ...], size: int, label: int = 1) -> Labels:
    """A label image of ``shape`` holding one cube (square in 2D) of side ``size`` at ``corner``."""
    labels = np.zeros(shape, dtype=np.int32)
    labels[tuple(slice(c, c + size) for c in corner)] = label
    return labels


def two_objects() -> Labels:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:6, 2:6] = 1
    labels[10:15, 10:15] = 2
    return labels


def test_iou_thresholds_are_the_dsb2018_sweep() -> None:
    assert IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_overlap_counts_pixels_of_each_pair() -> None:
    truth = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])
    predicted = np.array([[3, 3, 3, 0], [0, 3, 3, 0], [4, 4, 0, 0]])
    overlap = overlap_counts(truth, predicted)
    np.testing.assert_array_equal(overlap.intersection, [[3, 0], [2, 0]])
    np.testing.assert_array_equal(overlap.true_areas, [4, 4])
    np.testing.assert_array_equal(overlap.predicted_areas, [5, 2])
    np.testing.assert_array_equal(overlap.predicted_ids, [3, 4])
    assert overlap.intersection.dtype == np.int64
    np.testing.assert_allclose(iou_matrix(overlap), [[3 / 6, 0.0], [2 / 7, 0.0]])


def test_empty_prediction_misses_every_object() -> None:
    scores = match_instances(two_objects(), np.zeros((20, 20), dtype=np.int32))
    assert (scores.n_true, scores.n_predicted) == (2, 0)
    for counts in scores.counts:
        assert (counts.tp, counts.fp, counts.fn) == (0, 0, 2)
        assert (counts.precision, counts.recall, counts.f1, counts.dsb_score) == (1.0, 0.0, 0.0, 0.0)
        assert counts.panoptic_quality == counts.mean_matched_iou == 0.0
    assert scores.dice == scores.iou == 0.0
    assert scores.merges == scores.splits == 0


def test_empty_truth_makes_every_prediction_false() -> None:
    scores = match_instances(np.zeros((20, 20), dtype=np.int32), two_objects())
    assert (scores.n_true, scores.n_predicted) == (0, 2)
    for counts in scores.counts:
        assert (counts.tp, counts.fp, counts.fn) == (0, 2, 0)
        assert (counts.precision, counts.recall, counts.f1, counts.dsb_score) == (0.0, 1.0, 0.0, 0.0)
    assert scores.dice == scores.iou == 0.0


def test_both_empty_is_perfect() -> None:
    empty = np.zeros((8, 8), dtype=np.uint8)
    scores = match_instances(empty, empty)
    assert (scores.n_true, scores.n_predicted, scores.merges, scores.splits) == (0, 0, 0, 0)
    for counts in scores.counts:
        assert (counts.tp, counts.fp, counts.fn) == (0, 0, 0)
        assert counts.f1 == counts.dsb_score == counts.panoptic_quality == 1.0
    assert scores.dice == scores.iou == scores.mean_dsb_score == 1.0


def test_zero_size_images_are_empty() -> None:
    scores = match_instances(np.zeros((0, 5), dtype=np.int32), np.zeros((0, 5), dtype=np.uint8))
    assert (scores.n_true, scores.n_predicted, scores.dice) == (0, 0, 1.0)


def test_one_object_split_in_two() -> None:
    truth = np.zeros((4, 12), dtype=np.int32)
    truth[:, :10] = 1  # 40 pixels
    predicted = np.zeros_like(truth)
    predicted[:, :6] = 1  # 24 pixels inside: IoU 0.6
    predicted[:, 6:10] = 2  # 16 pixels inside: IoU 0.4
    scores = match_instances(truth, predicted, thresholds=(0.5,))
    assert (scores.splits, scores.merges) == (1, 0)
    counts = scores.at(0.5)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)
    assert counts.f1 == pytest.approx(2 / 3)
    assert counts.sum_matched_iou == pytest.approx(0.6)
    assert scores.dice == scores.iou == 1.0  # the foreground is right


def test_two_objects_merged_in_one() -> None:
    truth = np.zeros((4, 12), dtype=np.int32)
    truth[:, :6] = 1  # 24 pixels: IoU 0.6 with the merged object
    truth[:, 6:10] = 2  # 16 pixels: IoU 0.4
    predicted = (truth > 0).astype(np.int32)
    scores = match_instances(truth, predicted, thresholds=(0.3, 0.5))
    assert (scores.merges, scores.splits) == (1, 0)
    assert (scores.at(0.5).tp, scores.at(0.5).fp, scores.at(0.5).fn) == (1, 0, 1)
    assert scores.at(0.5).f1 == pytest.approx(2 / 3)
    # below 0.5 both true objects are candidates, but the one predicted object still matches only one
    assert (scores.at(0.3).tp, scores.at(0.3).fn) == (1, 1)
    assert scores.at(0.3).sum_matched_iou == pytest.approx(0.6)


def test_half_covered_objects_are_neither_merged_nor_split() -> None:
    truth = np.zeros((4, 8), dtype=np.int32)
    truth[:, :4], truth[:, 4:] = 1, 2
    predicted = np.zeros_like(truth)
    predicted[:, 2:6] = 1  # half of each true object, "more than half" is needed
    scores = match_instances(truth, predicted)
    assert scores.merges == scores.splits == 0


@pytest.mark.parametrize(
    ("shift", "iou"),
    [
        ((0, 2), 80 / 120),  # 10x10 square moved 2 pixels sideways: 10x8 shared
        ((1, 1), 81 / 119),  # moved diagonally: 9x9 shared
        ((0, 5), 50 / 150),  # StarDist's doctest case
        ((3, 0), 70 / 130),
    ],
)
def test_shifted_square_matches_up_to_its_iou(shift: tuple[int, int], iou: float) -> None:
    truth = square((30, 30), (10, 10), 10)
    predicted = square((30, 30), (10 + shift[0], 10 + shift[1]), 10, label=4)
    assert iou_matrix(overlap_counts(truth, predicted))[0, 0] == pytest.approx(iou)
    scores = match_instances(truth, predicted, thresholds=(iou - 0.01, iou + 0.01))
    below, above = scores.counts
    assert (below.tp, below.fp, below.fn) == (1, 0, 0)
    assert below.mean_matched_iou == below.panoptic_quality == pytest.approx(iou)
    assert (above.tp, above.fp, above.fn) == (0, 1, 1)
    assert scores.dice == pytest.approx(2 * iou / (1 + iou))
    assert scores.iou == pytest.approx(iou)


def test_iou_equal_to_the_threshold_matches() -> None:
    truth = square((10, 10), (0, 0), 10)
    predicted = np.zeros_like(truth)
    predicted[:7] = 1  # 70 of the 100 pixels: IoU exactly 0.7
    assert match_instances(truth, predicted, thresholds=(0.7,)).at(0.7).tp == 1


def _greedy_matches(iou: npt.NDArray[np.float64], threshold: float) -> int:
    """Matches found by taking the pair of highest IoU first, the way a naive matcher does."""
    taken_rows: set[int] = set()
    taken_columns: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        row, column = (int(i) for i in np.unravel_index(flat, iou.shape))
        if iou[row, column] >= threshold and row not in taken_rows and column not in taken_columns:
            taken_rows.add(row)
            taken_columns.add(column)
    return len(taken_rows)


def test_low_threshold_needs_optimal_not_greedy_matching() -> None:
    # one row: true A = [0, 10), B = [10, 14); predicted Q = [0, 3), P = [3, 14)
    truth = np.zeros((1, 16), dtype=np.int32)
    truth[0, :10], truth[0, 10:14] = 1, 2
    predicted = np.zeros_like(truth)
    predicted[0, :3], predicted[0, 3:14] = 1, 2
    iou = iou_matrix(overlap_counts(truth, predicted))
    np.testing.assert_allclose(iou, [[3 / 10, 7 / 14], [0.0, 4 / 11]])
    # greedy takes A-P (0.5) first and strands both B and Q
    assert _greedy_matches(iou, 0.25) == 1
    true_index, predicted_index = match(iou, 0.25)
    np.testing.assert_array_equal(true_index, [0, 1])
    np.testing.assert_array_equal(predicted_index, [0, 1])
    counts = match_instances(truth, predicted, thresholds=(0.25,)).at(0.25)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)
    assert counts.sum_matched_iou == pytest.approx(3 / 10 + 4 / 11)


def test_equal_match_counts_prefer_the_larger_summed_iou() -> None:
    iou = np.array([[0.9, 0.6], [0.6, 0.55]])
    np.testing.assert_array_equal(match(iou, 0.5)[1], [0, 1])  # 1.45 beats 1.2
    iou = np.array([[0.9, 0.8], [0.8, 0.3]])
    np.testing.assert_array_equal(match(iou, 0.5)[1], [1, 0])  # two matches beat the best single one


def _brute_force_best(iou: npt.NDArray[np.float64], threshold: float) -> tuple[int, float]:
    """The most matches and, among those, the largest summed IoU, over every one-to-one assignment."""
    n_true, n_pred = iou.shape
    best = (0, 0.0)
    for columns in itertools.permutations(range(max(n_true, n_pred)), n_true):
        pairs = [(row, column) for row, column in enumerate(columns) if column < n_pred]
        matched = [iou[row, column] for row, column in pairs if iou[row, column] >= threshold]
        best = max(best, (len(matched), float(sum(matched))))
    return best


@settings(max_examples=150, deadline=None)
@given(
    iou=st.integers(0, 4).flatmap(
        lambda rows: st.integers(0, 4).flatmap(
            lambda columns: arrays(np.float64, (rows, columns), elements=st.sampled_from([0.0, 0.2, 0.3, 0.45, 0.7]))
        )
    ),
    threshold=st.sampled_from([0.2, 0.3, 0.45]),
)
def test_match_is_optimal(iou: npt.NDArray[np.float64], threshold: float) -> None:
    true_index, predicted_index = match(iou, threshold)
    assert len(set(true_index.tolist())) == true_index.size
    assert len(set(predicted_index.tolist())) == predicted_index.size
    assert (iou[true_index, predicted_index] >= threshold).all()
    n_matches, sum_iou = _brute_force_best(iou, threshold)
    assert true_index.size == n_matches
    assert iou[true_index, predicted_index].sum() == pytest.approx(sum_iou)


def test_3d_labels() -> None:
    truth = square((12, 12, 12), (2, 2, 2), 6)  # 216 voxels
    truth[9:11, 9:11, 9:11] = 2
    predicted = square((12, 12, 12), (3, 2, 2), 6)  # 5x6x6 = 180 shared, union 252
    scores = match_instances(truth, predicted, thresholds=(0.7, 0.75))
    assert (scores.n_true, scores.n_predicted) == (2, 1)
    assert (scores.at(0.7).tp, scores.at(0.7).fp, scores.at(0.7).fn) == (1, 0, 1)
    assert scores.at(0.7).sum_matched_iou == pytest.approx(180 / 252)
    assert scores.at(0.75).tp == 0
    assert scores.dice == pytest.approx(2 * 180 / (224 + 216))


def test_3d_merge_and_split() -> None:
    truth = np.zeros((4, 4, 8), dtype=np.int32)
    truth[..., :3], truth[..., 3:] = 1, 2
    merged = (truth > 0).astype(np.int32)
    assert (match_instances(truth, merged).merges, match_instances(truth, merged).splits) == (1, 0)
    truth[..., :4], truth[..., 4:] = 1, 2
    split = np.zeros_like(truth)
    split[:2, :, :3], split[2:, :, :3] = 1, 2  # two halves of true object 1
    split[:, :, 3:] = 3
    scores = match_instances(truth, split)
    assert (scores.splits, scores.merges) == (1, 0)


def test_non_sequential_ids_are_kept_and_change_nothing() -> None:
    truth = np.zeros((20, 20), dtype=np.uint16)
    truth[2:8, 2:8], truth[10:16, 10:16] = 7, 300
    predicted = np.zeros((20, 20), dtype=np.int64)
    predicted[2:8, 3:9], predicted[11:16, 10:16] = 2**40, 5
    overlap = overlap_counts(truth, predicted)
    np.testing.assert_array_equal(overlap.true_ids, [7, 300])
    np.testing.assert_array_equal(overlap.predicted_ids, [5, 2**40])
    np.testing.assert_array_equal(overlap.intersection, [[0, 30], [30, 0]])
    huge = np.array([[0, 2**63 + 5]], dtype=np.uint64)
    assert overlap_counts(huge, huge).true_ids.tolist() == [2**63 + 5]
    sequential_truth = np.searchsorted([0, 7, 300], truth)
    sequential_predicted = np.searchsorted([0, 5, 2**40], predicted)
    assert match_instances(truth, predicted) == match_instances(sequential_truth, sequential_predicted)


def test_mismatched_shapes_name_both() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        overlap_counts(np.zeros((4, 4), dtype=np.int32), np.zeros((4, 5), dtype=np.int32))
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(1, 4, 4\)"):
        match_instances(np.zeros((4, 4), dtype=np.int32), np.zeros((1, 4, 4), dtype=np.int32))


def test_bad_labels_and_thresholds_are_refused() -> None:
    labels = np.zeros((4, 4), dtype=np.int32)
    with pytest.raises(ValueError, match="negative"):
        overlap_counts(labels - 1, labels)
    with pytest.raises(ValueError, match="float"):
        overlap_counts(labels, labels.astype(np.float32))
    for threshold in (0.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            match(np.zeros((1, 1)), threshold)
    with pytest.raises(ValueError, match="threshold"):
        match_instances(labels, labels, thresholds=())


def test_dsb2018_score_of_one_object_at_iou_0_7() -> None:
    # Kaggle DSB2018: at each t in 0.5..0.95, TP / (TP + FP + FN), averaged over t. IoU 0.7 matches at 0.5, 0.55,
    # 0.6, 0.65, 0.7 (score 1) and not above (TP = 0, FP = 1, FN = 1: score 0), so the mean is 5 / 10.
    truth = square((10, 10), (0, 0), 10)
    predicted = np.zeros_like(truth)
    predicted[:7] = 3
    scores = match_instances(truth, predicted)
    assert [counts.dsb_score for counts in scores.counts] == [1.0] * 5 + [0.0] * 5
    assert scores.mean_dsb_score == pytest.approx(0.5)


def test_match_counts_pool_over_images() -> None:
    first = match_instances(two_objects(), two_objects(), thresholds=(0.5,)).at(0.5)
    second = match_instances(two_objects(), np.zeros((20, 20), dtype=np.int32), thresholds=(0.5,)).at(0.5)
    pooled = first + second
    assert pooled == MatchCounts(threshold=0.5, tp=2, fp=0, fn=2, sum_matched_iou=2.0, n_true=4, n_predicted=2)
    assert (pooled.precision, pooled.recall) == (1.0, 0.5)
    with pytest.raises(ValueError, match="thresholds"):
        _ = first + MatchCounts(0.7, 0, 0, 0, 0.0, 0, 0)


def test_many_objects_all_match_after_a_one_pixel_shift() -> None:
    truth = np.zeros((400, 400), dtype=np.int32)
    for index, (row, column) in enumerate(itertools.product(range(0, 400, 20), range(0, 400, 20))):
        truth[row + 2 : row + 12, column + 2 : column + 12] = index + 1  # 400 squares of 10x10
    predicted = np.roll(truth, 1, axis=1)  # each shares 90 of 110 pixels with its own
    scores = match_instances(truth, predicted)
    assert (scores.n_true, scores.n_predicted) == (400, 400)
    assert [counts.tp for counts in scores.counts] == [400] * 7 + [0] * 3
    assert scores.at(0.5).mean_matched_iou == pytest.approx(90 / 110)


def test_as_instances_labels_binary_masks_by_face_connectivity() -> None:
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=np.uint8)  # diagonal neighbours stay apart
    labels, was_binary = as_instances(mask)
    assert was_binary
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 2, 2], [0, 0, 0]])
    volume = np.zeros((3, 3, 3), dtype=bool)
    volume[0, 0, 0], volume[1, 0, 0], volume[2, 2, 2] = True, True, True
    labels, was_binary = as_instances(volume)
    assert was_binary
    assert labels.max() == 2


def test_as_instances_keeps_label_masks() -> None:
    labels = np.array([[0, 7, 7], [300, 0, 7]], dtype=np.uint16)
    kept, was_binary = as_instances(labels)
    assert not was_binary
    assert kept is labels


def _monai_foreground(
    metric: DiceMetric | MeanIoU, truth: npt.NDArray[np.bool_], predicted: npt.NDArray[np.bool_]
) -> float:
    """MONAI's score of the foreground, given as a batch of one image with one (foreground) channel."""
    metric(y_pred=torch.from_numpy(predicted)[None, None].float(), y=torch.from_numpy(truth)[None, None].float())
    score = metric.aggregate()
    assert isinstance(score, torch.Tensor)
    return float(score.item())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(64, 48), (12, 16, 20)])
def test_foreground_dice_and_iou_agree_with_monai(seed: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(shape) < 0.4
    predicted = rng.random(shape) < 0.3 + 0.1 * seed
    scores = match_instances(truth, predicted, thresholds=(0.5,))
    assert scores.dice == pytest.approx(_monai_foreground(DiceMetric(include_background=True), truth, predicted))
    assert scores.iou == pytest.approx(_monai_foreground(MeanIoU(include_background=True), truth, predicted))


label_images = arrays(np.int32, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(labels=label_images, new_ids=st.permutations([3, 8, 21, 99, 1000]))
def test_a_label_image_matches_itself_and_its_relabelling(labels: Labels, new_ids: list[int]) -> None:
    relabelled = np.array([0, *new_ids])[labels]
    n_objects = np.unique(labels[labels > 0]).size
    for predicted in (labels, relabelled):
        scores = match_instances(labels, predicted)
        assert all(counts.f1 == 1.0 and counts.tp == n_objects for counts in scores.counts)
        assert all(counts.mean_matched_iou == (1.0 if n_objects else 0.0) for counts in scores.counts)
        assert scores.dice == scores.iou == 1.0
        assert scores.merges == scores.splits == 0


@settings(max_examples=60, deadline=None)
@given(truth=label_images, predicted=label_images)
def test_counts_add_up(truth: Labels, predicted: Labels) -> None:
    predicted = np.resize(predicted, truth.shape)
    scores = match_instances(truth, predicted)
    for counts in scores.counts:
        assert counts.tp + counts.fn == counts.n_true == scores.n_true
        assert counts.tp + counts.fp == counts.n_predicted == scores.n_predicted
    tps = [counts.tp for counts in scores.counts]
    assert tps == sorted(tps, reverse=True)


def test_instance_scores_lookup() -> None:
    scores: InstanceScores = match_instances(two_objects(), two_objects(), thresholds=(0.5, 0.9))
    assert scores.at(0.9).threshold == 0.9
    with pytest.raises(KeyError, match=r"0\.7"):
        scores.at(0.7)
