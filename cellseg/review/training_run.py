"""The training-run section of the report: learning curves, final validation metrics and validation overlays.

A run folder is a Lightning log folder written by ``cellseg fit`` (``runs/NAME/lightning_logs/version_0``) holding
``metrics.csv``, ``learning_curves.png``, ``split.json`` (the data folder and the validation images) and
``checkpoints/best-*.ckpt``. The validation overlays come from predicting the validation images again with the best
checkpoint: torch loads only here, and only when a run is given.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellseg.io.errors import DatasetError

MAX_VALIDATION_IMAGES = 12
OVERLAY_MAX_SIDE = 1024
METRICS_CSV = "metrics.csv"
CURVES_PNG = "learning_curves.png"
SPLIT_JSON = "split.json"
_TRUTH_COLOUR = (255, 255, 255)


@dataclass
class RunSection:
    """The run section of the report's data, and notes on what could not be shown.

    Attributes:
        data: ``{"folder", "curves", "metrics", "checkpoint", "validation"}`` as the report's data holds it.
        notes: one line each, for the terminal.
    """

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def final_metrics(metrics_csv: Path) -> dict[str, float | int]:
    r"""The last row of a Lightning ``metrics.csv`` that has ``val/dice``: its non-empty values.

    ``epoch`` and ``step`` are integers, everything else floats rounded to 4 decimals; empty when no row has
    ``val/dice`` (or there is no file).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text("epoch,step,train/loss,val/dice\n0,3,1.5,\n0,3,,0.91234\n1,7,1.2,\n")
        >>> final_metrics(path)
        {'epoch': 0, 'step': 3, 'val/dice': 0.9123}
    """
    if not metrics_csv.is_file():
        return {}
    last: dict[str, str] = {}
    with metrics_csv.open(newline="") as stream:
        for row in csv.DictReader(stream):
            if row.get("val/dice"):
                last = row
    metrics: dict[str, float | int] = {}
    for key, text in last.items():
        if not text:
            continue
        try:
            metrics[key] = int(float(text)) if key in ("epoch", "step") else round(float(text), 4)
        except ValueError:
            continue
    return metrics


def best_checkpoint(run_dir: Path) -> Path | None:
    """The run's best checkpoint (``checkpoints/best-*.ckpt``, the newest if several), else ``last.ckpt``."""
    folder = run_dir / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"), key=lambda path: (path.stat().st_mtime, path.name))
    if best:
        return best[-1]
    last = folder / "last.ckpt"
    return last if last.is_file() else None


def build_run_section(run_dir: Path, report: Path, max_images: int = MAX_VALIDATION_IMAGES) -> RunSection:
    """Copy the curves, read the final metrics and draw validation overlays into ``report/run``.

    Args:
        run_dir: the run's Lightning log folder.
        report: the report folder.
        max_images: the most validation images to predict and draw.

    Returns:
        The section's data (paths relative to the report) and notes on what was missing.

    Raises:
        DatasetError: ``run_dir`` is not a folder.
    """
    if not run_dir.is_dir():
        raise DatasetError(
            f"{run_dir}: no such run folder; give a log folder of cellseg fit (lightning_logs/version_N)"
        )
    folder = report / "run"
    folder.mkdir(parents=True, exist_ok=True)
    section = RunSection(
        {"folder": str(run_dir), "curves": None, "metrics": final_metrics(run_dir / METRICS_CSV), "checkpoint": None,
         "validation": []}
    )  # fmt: skip
    if not section.data["metrics"]:
        section.notes.append(f"{run_dir / METRICS_CSV}: missing or without a val/dice row; no final metrics shown")
    curves = run_dir / CURVES_PNG
    if curves.is_file():
        shutil.copyfile(curves, folder / CURVES_PNG)
        section.data["curves"] = f"run/{CURVES_PNG}"
    else:
        section.notes.append(f"{curves}: not found; no learning curves shown")
    checkpoint = best_checkpoint(run_dir)
    if checkpoint is None:
        section.notes.append(f"{run_dir / 'checkpoints'}: no best-*.ckpt or last.ckpt; no validation overlays")
        return section
    section.data["checkpoint"] = checkpoint.name
    pairs, note = _validation_pairs(run_dir / SPLIT_JSON)
    if note:
        section.notes.append(note)
    if pairs:
        _draw_validation(checkpoint, pairs[:max_images], folder, section)
    return section


def _validation_pairs(split_json: Path) -> tuple[list[Any], str]:
    """The validation images' pairs (``ImagePair``) listed in ``split.json``, and a note on what was not found."""
    import json

    from cellseg.io.discovery import discover_pairs

    if not split_json.is_file():
        return [], f"{split_json}: not found; no validation overlays"
    try:
        split = json.loads(split_json.read_text(encoding="utf-8"))
        data_dir, names = Path(split["data_dir"]), list(split["validation"])
    except (ValueError, KeyError, TypeError) as error:
        return [], f"{split_json}: unreadable ({error}); no validation overlays"
    try:
        by_name = discover_pairs(data_dir).by_name
    except DatasetError as error:
        return [], f"validation data not found ({error}); no validation overlays"
    missing = [name for name in names if name not in by_name]
    note = f"{len(missing)} validation images of {split_json} not found in {data_dir}" if missing else ""
    return [by_name[name] for name in names if name in by_name], note


def _draw_validation(checkpoint: Path, pairs: list[Any], folder: Path, section: RunSection) -> None:
    """Predict each validation image with the checkpoint, score it and write its overlay ``run/val_NNN.png``."""
    from cellseg.inference.model import CheckpointError, load_model
    from cellseg.inference.prepare import Preparation, prepare
    from cellseg.inference.segment import segment_image
    from cellseg.io import ImageReadError, read_image, read_mask
    from cellseg.review.collect import truth_scores

    try:
        model = load_model(checkpoint)
    except CheckpointError as error:
        section.notes.append(f"no validation overlays: {error}")
        return
    preparation = Preparation.of(model)
    for number, pair in enumerate(pairs):
        try:
            image = read_image(pair.image)
            truth = read_mask(pair.mask)
            labels = segment_image(model, prepare(image, preparation)).labels
            dice, f1 = truth_scores(truth, labels)
        except (ImageReadError, ValueError, RuntimeError) as error:
            section.notes.append(f"validation image {pair.name!r} skipped: {error}")
            continue
        overlay = f"run/val_{number:03d}.png"
        _write_overlay(folder.parent / overlay, image, labels, truth)
        section.data["validation"].append({"name": pair.name, "overlay": overlay, "dice": round(dice, 4),
                                           "f1": round(f1, 4)})  # fmt: skip


def _write_overlay(path: Path, image: Any, labels: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]) -> None:
    """The image with the predicted contours in their colours and the true contours in white, side at most 1024."""
    from cellseg.review.layers import (
        as_rgb,
        display_channels,
        draw_contours,
        shrink_factor,
        shrink_image,
        shrink_labels,
        to_display,
        write_png,
    )

    if labels.ndim == 3:
        labels, truth = labels[labels.shape[0] // 2], truth[truth.shape[0] // 2]
    factor = shrink_factor(labels.shape, OVERLAY_MAX_SIDE)
    rgb = as_rgb(to_display(shrink_image(display_channels(image), factor)))
    draw_contours(rgb, shrink_labels(truth, factor), _TRUTH_COLOUR)
    draw_contours(rgb, shrink_labels(labels, factor))
    write_png(path, rgb)
