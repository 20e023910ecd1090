"""Evaluation of segmentations: instance matching, and scores as pure functions of counts."""

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
from cellseg.evaluation.matching import (
    IOU_THRESHOLDS,
    InstanceScores,
    LabelImage,
    MatchCounts,
    Overlap,
    as_instances,
    iou_matrix,
    match,
    match_instances,
    overlap_counts,
)

__all__ = [
    "IOU_THRESHOLDS",
    "InstanceScores",
    "LabelImage",
    "MatchCounts",
    "Overlap",
    "as_instances",
    "dice_from_counts",
    "dsb_score",
    "f1_score",
    "iou_from_counts",
    "iou_matrix",
    "match",
    "match_instances",
    "mean_matched_iou",
    "overlap_counts",
    "panoptic_quality",
    "precision",
    "recall",
]
