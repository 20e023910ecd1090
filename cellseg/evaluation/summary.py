"""Tables of an evaluation: one row per image, aggregates over images and objects, per group, and a terminal table.

Two aggregates, as the field reports both:

- **mean over images** (``mean``): each image's score, averaged; every image weighs the same (the DSB2018 leaderboard
  averaged its per-image score this way);
- **pooled over objects** (``pooled``): the counts of all images summed, then the score of the sums; every object
  weighs the same (StarDist's ``matching_dataset(by_image=False)``, Cellpose's ``average_precision`` summed).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellseg.evaluation import counts
from cellseg.evaluation.matching import MatchCounts
from cellseg.evaluation.scoring import ImageEvaluation
from cellseg.io.errors import DatasetError
from cellseg.io.readers import split_extension

# The per-threshold scores, by column prefix, from a MatchCounts.
THRESHOLD_SCORES: dict[str, str] = {
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "dsb": "dsb_score",
    "pq": "panoptic_quality",
    "matched_iou": "mean_matched_iou",
}
UNGROUPED = "(no group)"


def threshold_key(threshold: float) -> str:
    """The column suffix of an IoU threshold: ``0.5`` -> ``"0.50"``."""
    return f"{threshold:.2f}"


def image_row(evaluation: ImageEvaluation, group: str | None = None) -> dict[str, Any]:
    """The ``per_image.csv`` row of an image: counts, foreground overlap, then every score at every threshold.

    Columns: ``name``, ``group`` (when grouped), ``n_true``, ``n_predicted``, ``dice``, ``iou``, ``dsb_score`` (the
    mean over thresholds: the DSB2018 image score), ``merges``, ``splits``, ``truth_was_binary``,
    ``prediction_was_binary``, then ``{score}@{threshold}`` for ``tp``, ``fp``, ``fn`` and every score of
    ``THRESHOLD_SCORES``.
    """
    scores = evaluation.scores
    row: dict[str, Any] = {"name": evaluation.name}
    if group is not None:
        row["group"] = group
    row |= {
        "n_true": scores.n_true,
        "n_predicted": scores.n_predicted,
        "dice": scores.dice,
        "iou": scores.iou,
        "dsb_score": scores.mean_dsb_score,
        "merges": scores.merges,
        "splits": scores.splits,
        "truth_was_binary": evaluation.truth_was_binary,
        "prediction_was_binary": evaluation.prediction_was_binary,
    }
    for match_counts in scores.counts:
        key = threshold_key(match_counts.threshold)
        row |= {f"tp@{key}": match_counts.tp, f"fp@{key}": match_counts.fp, f"fn@{key}": match_counts.fn}
        row |= {f"{name}@{key}": getattr(match_counts, attribute) for name, attribute in THRESHOLD_SCORES.items()}
    return row


def write_per_image_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (from :func:`image_row`) as CSV with a header; floats with 6 significant digits."""
    if not rows:
        path.write_text("name\n")
        return
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.6g}" if isinstance(value, float) else value for key, value in row.items()})


def aggregate(evaluations: Sequence[ImageEvaluation]) -> dict[str, Any]:
    """Scores of a set of images, averaged over images (``mean``) and pooled over objects and pixels (``pooled``).

    Returns:
        ``{"images", "n_true", "n_predicted", "merges", "splits", "mean": {...}, "pooled": {...}}``; ``mean`` and
        ``pooled`` each hold ``dice``, ``iou``, ``dsb_score`` (mean over thresholds) and ``by_threshold``:
        ``{"0.50": {"precision", "recall", "f1", "dsb", "pq", "matched_iou"}, ...}``; the pooled one also
        ``tp``, ``fp``, ``fn`` per threshold. An empty set gives the counts as 0 and no scores.
    """
    summary: dict[str, Any] = {
        "images": len(evaluations),
        "n_true": sum(e.scores.n_true for e in evaluations),
        "n_predicted": sum(e.scores.n_predicted for e in evaluations),
        "merges": sum(e.scores.merges for e in evaluations),
        "splits": sum(e.scores.splits for e in evaluations),
    }
    if not evaluations:
        return summary
    thresholds = [match_counts.threshold for match_counts in evaluations[0].scores.counts]
    mean_by_threshold = {}
    pooled_by_threshold = {}
    pooled_dsb = []
    for index, threshold in enumerate(thresholds):
        per_image = [e.scores.counts[index] for e in evaluations]
        mean_by_threshold[threshold_key(threshold)] = {
            name: float(np.mean([getattr(c, attribute) for c in per_image]))
            for name, attribute in THRESHOLD_SCORES.items()
        }
        pooled = _pool(per_image)
        pooled_by_threshold[threshold_key(threshold)] = {
            **{name: getattr(pooled, attribute) for name, attribute in THRESHOLD_SCORES.items()},
            "tp": pooled.tp,
            "fp": pooled.fp,
            "fn": pooled.fn,
        }
        pooled_dsb.append(pooled.dsb_score)
    intersection = sum(e.scores.foreground_intersection for e in evaluations)
    predicted = sum(e.scores.foreground_predicted for e in evaluations)
    true = sum(e.scores.foreground_true for e in evaluations)
    summary["mean"] = {
        "dice": float(np.mean([e.scores.dice for e in evaluations])),
        "iou": float(np.mean([e.scores.iou for e in evaluations])),
        "dsb_score": float(np.mean([e.scores.mean_dsb_score for e in evaluations])),
        "by_threshold": mean_by_threshold,
    }
    summary["pooled"] = {
        "dice": counts.dice_from_counts(intersection, predicted, true),
        "iou": counts.iou_from_counts(intersection, predicted, true),
        "dsb_score": float(np.mean(pooled_dsb)),
        "by_threshold": pooled_by_threshold,
    }
    return summary


def _pool(per_image: Iterable[MatchCounts]) -> MatchCounts:
    iterator = iter(per_image)
    total = next(iterator)
    for match_counts in iterator:
        total = total + match_counts
    return total


def summarise(evaluations: Sequence[ImageEvaluation], groups: dict[str, str] | None = None) -> dict[str, Any]:
    """Aggregates over all images and, when ``groups`` maps image names to groups, over each group.

    Returns:
        ``{"all": aggregate, "groups": {group: aggregate}}`` (``groups`` empty when not grouped); images without a
        group fall in ``UNGROUPED``.
    """
    by_group: dict[str, list[ImageEvaluation]] = {}
    if groups is not None:
        for evaluation in evaluations:
            by_group.setdefault(groups.get(evaluation.name, UNGROUPED), []).append(evaluation)
    return {
        "all": aggregate(evaluations),
        "groups": {group: aggregate(members) for group, members in sorted(by_group.items())},
    }


def read_groups(spec: str) -> tuple[dict[str, str], str]:
    """Read image groups from ``FILE.csv:COLUMN``: the first column names the image, ``COLUMN`` its group.

    Image names are matched without extension (``a.png`` and ``a`` are the same image).

    Args:
        spec: ``path/to/metadata.csv:modality``.

    Returns:
        ``({image name: group}, column)``.

    Raises:
        DatasetError: no ``:COLUMN``, the file is missing or has no such column (the message lists the columns).
    """
    path_text, separator, column = spec.rpartition(":")
    if not separator or not path_text or not column:
        raise DatasetError(
            f"--groups {spec}: give the file and the column as FILE.csv:COLUMN, e.g. metadata.csv:modality"
        )
    path = Path(path_text)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; --groups takes a CSV file with a column naming each image")
    with path.open(newline="") as stream:
        reader = csv.DictReader(stream)
        fields = reader.fieldnames or []
        if column not in fields:
            raise DatasetError(f"{path}: no column {column!r}; its columns are {', '.join(fields)}")
        key = fields[0]
        groups = {split_extension(row[key])[0]: row[column] for row in reader if row.get(key)}
    return groups, column


def format_table(summary: dict[str, Any], kind: str = "mean") -> str:
    """A compact text table: one line for all images, one per group; Dice, IoU, F1 at 0.5/0.75, DSB, PQ, counts.

    Args:
        summary: from :func:`summarise`.
        kind: ``"mean"`` (over images) or ``"pooled"`` (over objects).
    """
    headers = ["", "images", "Dice", "IoU", "F1@0.5", "F1@0.75", "F1 .5-.9", "DSB", "PQ@0.5", "true", "pred"]
    lines = [[name, *_table_cells(aggregated, kind)] for name, aggregated in _table_rows(summary)]
    widths = [max(len(str(row[i])) for row in [headers, *lines]) for i in range(len(headers))]
    rendered = [
        "  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(row))
        for row in [headers, *lines]
    ]
    return "\n".join(rendered)


def _table_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("all", summary["all"]), *summary["groups"].items()]


def _table_cells(aggregated: dict[str, Any], kind: str) -> list[str]:
    scores = aggregated.get(kind)
    if scores is None:
        return [str(aggregated["images"]), *["-"] * 7, str(aggregated["n_true"]), str(aggregated["n_predicted"])]
    by_threshold = scores["by_threshold"]

    def at(threshold: str, name: str) -> float:
        return float(by_threshold[threshold][name]) if threshold in by_threshold else math.nan

    f1_range = [value["f1"] for key, value in by_threshold.items() if 0.5 <= float(key) <= 0.9 + 1e-9]
    values = [
        scores["dice"],
        scores["iou"],
        at("0.50", "f1"),
        at("0.75", "f1"),
        float(np.mean(f1_range)) if f1_range else math.nan,
        scores["dsb_score"],
        at("0.50", "pq"),
    ]
    return [
        str(aggregated["images"]),
        *("-" if math.isnan(value) else f"{value:.3f}" for value in values),
        str(aggregated["n_true"]),
        str(aggregated["n_predicted"]),
    ]
