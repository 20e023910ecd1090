"""Build a review report: collect a prediction folder, flag its images, render their pictures, write the page.

:func:`collect_report_data` does everything but the HTML: it writes ``thumbs/``, ``layers/`` and ``run/`` into the
report folder and returns the data the page embeds; :func:`build_report` then has ``page`` write ``index.html``.
Images are measured and rendered in worker processes from 16 images on.

The data: ``title``, ``created``, ``cellseg_version``, ``report_id`` (SHA-1 of the prediction folder's absolute
path), ``prediction_dir``, ``has_truth``, ``has_probability``, ``flag_rules`` (code to rule in words, in
``FLAG_CODES`` order), ``notes`` (lines on what was not found), ``run`` (``None``, or ``{"folder", "curves",
"metrics", "checkpoint", "validation": [{"name", "overlay", "dice", "f1"}]}``) and ``images``, one per image sorted
by name: ``id`` (its number, which names its files), ``name`` (plain text), ``width`` and ``height`` (the image
file's pixels), ``thumbnail``, ``layers`` (``image``, ``mask``, ``contours``, ``probability``, ``truth``), ``objects``,
``median_area``, ``mean_confidence``, ``border_objects``, ``cut_objects``, ``dice``, ``f1``, ``status``, ``flags``
(``[{"code", "reason"}]``) and ``decision`` (``None`` or ``{"decision", "note"}``). Paths are relative to the report;
any value may be ``None`` where it is not known (a failed image has no thumbnail and no layers).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cellseg import __version__
from cellseg.io import ImageData, ImageReadError, read_image, read_mask
from cellseg.io.errors import DatasetError
from cellseg.review.collect import ImageEntry, ImageStats, find_entries, image_stats
from cellseg.review.decisions import Decision, read_decisions
from cellseg.review.flags import FLAG_CODES, Flag, FlagThresholds, flag_rules, image_flags, run_medians
from cellseg.review.layers import LAYER_KINDS, RenderedImage, render_image

INDEX_HTML = "index.html"
REPORT_FOLDERS = ("thumbs", "layers", "run")  # what a report writes besides index.html (cleared by overwrite)
_PARALLEL_FROM = 16
T = TypeVar("T")
Progress = Callable[[Iterable[Any], int], Iterable[Any]]


@dataclass(frozen=True)
class ReportOptions:
    """How a report is built.

    Attributes:
        mask_suffix: what a mask's name adds to its image's name.
        thresholds: the flag rules' thresholds (``--min-confidence``, ``--min-dice``).
        workers: processes rendering images; ``None`` takes the CPU count from 16 images on (1 below).
        overwrite: replace a report already in the output folder.
        max_validation_images: the most validation images of a training run to predict and draw.
        progress: wraps the image loop to show progress (``progress(results, total)``); ``None`` for none.
    """

    mask_suffix: str = "_masks"
    thresholds: FlagThresholds = field(default_factory=FlagThresholds)
    workers: int | None = None
    overwrite: bool = False
    max_validation_images: int = 12
    progress: Progress | None = None


@dataclass(frozen=True)
class ReportSummary:
    """What a report holds, for the terminal.

    Attributes:
        output: the report folder.
        index: its ``index.html``.
        images: images in the report.
        failed: of those, images that could not be predicted.
        flagged: images with at least one flag.
        flag_counts: images per flag code, codes in ``FLAG_CODES`` order, only those raised.
        decisions: images with a decision read from ``--decisions``.
        notes: what was not found or could not be shown, one line each.
        seconds: how long the report took.
    """

    output: Path
    index: Path
    images: int
    failed: int
    flagged: int
    flag_counts: dict[str, int]
    decisions: int
    notes: list[str]
    seconds: float


@dataclass(frozen=True)
class _Task:
    """One image to read, measure and render (plain data: it travels to a worker process)."""

    index: int
    entry: ImageEntry
    report: Path


@dataclass(frozen=True)
class _Rendered:
    """What a worker sends back for one image."""

    stats: ImageStats
    pictures: RenderedImage
    width: int | None
    height: int | None
    notes: list[str]


def build_report(
    pred_dir: Path,
    output: Path,
    images_dir: Path | None = None,
    gt_dir: Path | None = None,
    decisions: Path | Mapping[str, Decision] | None = None,
    run_dir: Path | None = None,
    options: ReportOptions | None = None,
) -> ReportSummary:
    """Write the review report of a prediction folder into ``output`` (``index.html``, ``thumbs/``, ``layers/``).

    Args:
        pred_dir: a ``cellseg predict`` output folder.
        output: the report folder (created).
        images_dir: where the input images are (else ``predictions.csv``'s paths, else beside the masks).
        gt_dir: ground-truth masks, for Dice and F1.
        decisions: a ``review.csv`` (or its decisions) to start the page's decisions from.
        run_dir: a training run's log folder, for its curves and validation overlays.
        options: how to build it.

    Returns:
        What the report holds.

    Raises:
        DatasetError: a folder is missing, holds nothing to review, or ``output`` holds a report and not
            ``overwrite``.
        DecisionsError: the decisions file cannot be read.
    """
    from cellseg.review.page import write_page

    started = time.perf_counter()
    data = collect_report_data(pred_dir, output, images_dir, gt_dir, decisions, run_dir, options)
    index = write_page(output, data)
    return summarise(data, index, time.perf_counter() - started)


def summarise(data: dict[str, Any], index: Path, seconds: float) -> ReportSummary:
    """The :class:`ReportSummary` of a report's data."""
    images = data["images"]
    counts = Counter(flag["code"] for image in images for flag in image["flags"])
    return ReportSummary(
        output=index.parent,
        index=index,
        images=len(images),
        failed=sum(image["status"] == "failed" for image in images),
        flagged=sum(bool(image["flags"]) for image in images),
        flag_counts={code: counts[code] for code in FLAG_CODES if counts[code]},
        decisions=sum(image["decision"] is not None for image in images),
        notes=list(data["notes"]),
        seconds=round(seconds, 2),
    )


def collect_report_data(
    pred_dir: Path,
    output: Path,
    images_dir: Path | None = None,
    gt_dir: Path | None = None,
    decisions: Path | Mapping[str, Decision] | None = None,
    run_dir: Path | None = None,
    options: ReportOptions | None = None,
) -> dict[str, Any]:
    """Everything :func:`build_report` does except writing ``index.html``: the pictures, and the page's data.

    Arguments as :func:`build_report`. Returns the data ``index.html`` embeds (JSON-ready: no NaN, no paths of the
    user's files other than the folders given), with ``notes`` added: lines on what was not found.
    """
    options = options or ReportOptions()
    pred_dir, output = Path(pred_dir), Path(output)
    chosen = read_decisions(decisions) if isinstance(decisions, str | Path) else dict(decisions or {})
    collection = find_entries(pred_dir, images_dir, gt_dir, options.mask_suffix)
    _prepare_output(output, pred_dir, options.overwrite)
    tasks = [_Task(index, entry, output) for index, entry in enumerate(collection.entries)]
    rendered = _render_all(tasks, options)
    run = run_medians([result.stats for result in rendered])
    notes = [*collection.notes, *(note for result in rendered for note in result.notes)]
    unknown = chosen.keys() - {entry.name for entry in collection.entries}
    if unknown:
        notes.append(f"{len(unknown)} decisions are for images not in this report; they are left out")
    images = [
        _image_record(task.index, task.entry, result, image_flags(result.stats, run, options.thresholds), chosen)
        for task, result in zip(tasks, rendered, strict=True)
    ]
    section = None
    if run_dir is not None:
        from cellseg.review.training_run import build_run_section

        built = build_run_section(Path(run_dir), output, options.max_validation_images)
        section, notes = built.data, [*notes, *built.notes]
    return {
        "title": f"cellseg review: {pred_dir}",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cellseg_version": __version__,
        "report_id": hashlib.sha1(str(pred_dir.resolve()).encode("utf-8")).hexdigest(),
        "prediction_dir": str(pred_dir),
        "has_truth": gt_dir is not None,
        "has_probability": any(image["layers"]["probability"] is not None for image in images),
        "flag_rules": flag_rules(run, options.thresholds, has_truth=gt_dir is not None),
        "images": images,
        "run": section,
        "notes": notes,
    }


def _prepare_output(output: Path, pred_dir: Path, overwrite: bool) -> None:
    """Create the report folder; refuse to replace a report unless ``overwrite``, and clear the one replaced."""
    if output.resolve() == pred_dir.resolve():
        raise DatasetError(f"{output}: is the prediction folder; give the report its own --output folder")
    if (output / INDEX_HTML).exists():
        if not overwrite:
            raise DatasetError(f"{output}: holds a report already ({INDEX_HTML}); pass --overwrite or another --output")
        for folder in REPORT_FOLDERS:  # an earlier report's pictures, which may not all be redrawn
            shutil.rmtree(output / folder, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)


def _render_all(tasks: list[_Task], options: ReportOptions) -> list[_Rendered]:
    """Measure and render every image, in worker processes when there are enough of them."""
    workers = options.workers
    if workers is None:
        workers = (os.cpu_count() or 1) if len(tasks) >= _PARALLEL_FROM else 1
    progress = options.progress or _no_progress
    if workers <= 1 or len(tasks) < 2:
        return list(progress(map(render_task, tasks), len(tasks)))
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        chunks = max(1, len(tasks) // (8 * workers))
        return list(progress(pool.map(render_task, tasks, chunksize=chunks), len(tasks)))


def _no_progress(results: Iterable[T], total: int) -> Iterator[T]:
    yield from results


def render_task(task: _Task) -> _Rendered:
    """Read one image's files, measure it and write its pictures; a file that cannot be used becomes a note."""
    entry, notes = task.entry, list[str]()
    # a failed image's input is often what failed: its being unreadable needs no second note
    image = _read(entry.image, read_image, notes if entry.status != "failed" else [], entry.name, "image")
    labels = _read(entry.mask, read_mask, notes, entry.name, "mask")
    probability_image = _read(entry.probability, read_image, notes, entry.name, "probability map")
    truth = _read(entry.truth, read_mask, notes, entry.name, "ground truth")
    if entry.mask is not None and labels is None:
        stats = ImageStats(status="failed", error=f"the mask {entry.mask.name} cannot be read")
        return _Rendered(stats, render_image(task.report, task.index, image, None), *_size(image, None), notes)
    probability = probability_image.array[0] if probability_image is not None else None
    if labels is not None:
        image = _matching(image, labels, notes, entry.name, "image", lambda i: tuple(i.array.shape[1:]))
        probability = _matching(probability, labels, notes, entry.name, "probability map", lambda p: p.shape)
        truth = _matching(truth, labels, notes, entry.name, "ground truth", lambda t: t.shape)
    stats = image_stats(entry, labels, truth)
    try:
        pictures = render_image(task.report, task.index, image, labels, probability, truth)
    except ValueError as error:  # an image and its mask of different sizes, both without a mask
        notes.append(f"{entry.name!r}: not drawn: {error}")
        pictures = RenderedImage(None, dict.fromkeys(LAYER_KINDS), 0, 0)
    return _Rendered(stats, pictures, *_size(image, labels), notes)


def _read(path: Path | None, reader: Callable[[Path], T], notes: list[str], name: str, what: str) -> T | None:
    if path is None:
        return None
    try:
        return reader(path)
    except (ImageReadError, OSError, ValueError) as error:
        notes.append(f"{name!r}: {what} not used: {error}")
        return None


def _matching(
    value: T | None, labels: npt.NDArray[Any], notes: list[str], name: str, what: str, shape: Callable[[T], Any]
) -> T | None:
    """``value`` when its spatial shape is the mask's, else ``None`` and a note."""
    if value is None or tuple(shape(value)) == labels.shape:
        return value
    notes.append(f"{name!r}: {what} of shape {tuple(shape(value))} does not match the mask {labels.shape}; not used")
    return None


def _size(image: ImageData | None, labels: npt.NDArray[Any] | None) -> tuple[int | None, int | None]:
    """The image's width and height in pixels (its file's, not the layers'), ``None`` when neither is known."""
    shape = tuple(image.array.shape[1:]) if image is not None else labels.shape if labels is not None else None
    return (None, None) if shape is None else (int(shape[-1]), int(shape[-2]))


def _image_record(
    index: int, entry: ImageEntry, result: _Rendered, flags: list[Flag], decisions: Mapping[str, Decision]
) -> dict[str, Any]:
    """One image as the page's data holds it."""
    stats = result.stats
    decision = decisions.get(entry.name)
    return {
        "id": index,
        "name": entry.name,
        "width": result.width,
        "height": result.height,
        "thumbnail": result.pictures.thumbnail,
        "layers": dict(result.pictures.layers),
        "objects": stats.objects,
        "median_area": _rounded(stats.median_area, 1),
        "mean_confidence": _rounded(stats.mean_confidence, 4),
        "border_objects": stats.border_objects,
        "cut_objects": stats.cut_objects,
        "dice": _rounded(stats.dice, 4),
        "f1": _rounded(stats.f1, 4),
        "status": stats.status,
        "flags": [flag.as_dict() for flag in flags],
        "decision": None if decision is None else {"decision": decision.decision, "note": decision.note},
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)
