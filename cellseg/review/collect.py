"""Find what a prediction folder holds per image, and the numbers the report shows and the flags judge.

A ``cellseg predict`` folder holds ``NAME_masks.tif`` (or ``.png``, ``.nii.gz``), optionally
``NAME_probabilities.tif``, and ``predictions.csv`` with one row per image (its input path, status, counts and mean
confidence). Masks are found both by listing the folder (``cellseg.evaluation.pairing.mask_files``) and from the
CSV's names (which keep sub-folders, ``sub/cell_01``, when predict searched recursively). An image is found in
``--images`` by name, else at the CSV's input path, else beside the masks. Ground truth is paired by name.

Counts and areas come from the mask file itself (it may have been edited since); the mean confidence and the objects
cut between blocks only predict knows, so they come from ``predictions.csv`` (``None`` without it), and so do the
border objects, which ``--remove-border`` takes out of the mask.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cellseg.evaluation.pairing import mask_files
from cellseg.io.errors import DatasetError
from cellseg.io.readers import is_supported, split_extension
from cellseg.io.writers import MASK_EXTENSIONS

PREDICTIONS_CSV = "predictions.csv"
PROBABILITY_SUFFIX = "_probabilities"
F1_THRESHOLD = 0.5


@dataclass(frozen=True)
class PredictionRow:
    """The numbers ``predictions.csv`` holds for one image (``None`` where the row has none).

    Attributes:
        image: the input image's path, as predict was given it.
        name: the output name.
        status: ``ok``, ``skipped`` (done in an earlier run) or ``failed``.
        objects: objects found.
        median_area: median object area in pixels.
        mean_confidence: mean over objects of their mean foreground probability.
        border_objects: objects touching the image border.
        cut_objects: objects cut where blocks met.
        error: why a failed image failed.
    """

    image: str
    name: str
    status: str
    objects: int | None = None
    median_area: float | None = None
    mean_confidence: float | None = None
    border_objects: int | None = None
    cut_objects: int | None = None
    error: str = ""

    @property
    def has_numbers(self) -> bool:
        """Whether the row holds an image's numbers: a skipped image without an earlier row has none."""
        return self.status != "failed" and self.median_area is not None


@dataclass(frozen=True)
class ImageEntry:
    """The files of one image of the run (``None`` where there is none).

    Attributes:
        name: the image's name (the mask's file name less extension and suffix); shown as text, never a path.
        status: ``ok``, ``skipped`` or ``failed`` (from ``predictions.csv``; ``ok`` for a mask without a row).
        mask: the predicted label mask.
        image: the input image.
        probability: the foreground probability map.
        truth: the ground-truth mask.
        row: the image's row of ``predictions.csv``.
    """

    name: str
    status: str
    mask: Path | None
    image: Path | None
    probability: Path | None
    truth: Path | None
    row: PredictionRow | None


@dataclass
class Collection:
    """The images of a prediction folder, sorted by name, and what could not be matched.

    Attributes:
        entries: one per image.
        notes: for the user, one line each: images or truth not found, masks missing.
    """

    entries: list[ImageEntry]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImageStats:
    """The numbers of one image that the report shows and the flags judge (``None``: not known).

    Attributes:
        status: ``ok``, ``skipped`` or ``failed``.
        objects: objects in the mask.
        median_area: median object area in pixels (``None`` without objects).
        mean_confidence: mean object confidence from ``predictions.csv``.
        border_objects: objects touching the image border.
        cut_objects: objects cut where blocks met, from ``predictions.csv``.
        dice: foreground Dice against the ground truth.
        f1: F1 of the objects matched at IoU 0.5 against the ground truth.
        error: why the image failed.
    """

    status: str
    objects: int | None = None
    median_area: float | None = None
    mean_confidence: float | None = None
    border_objects: int | None = None
    cut_objects: int | None = None
    dice: float | None = None
    f1: float | None = None
    error: str = ""


def read_prediction_rows(path: Path) -> dict[str, PredictionRow]:
    """The rows of a ``predictions.csv`` by image name; empty when there is no such file.

    When a name has several rows (a failed duplicate beside the image that took the name), a row with numbers wins.

    Raises:
        DatasetError: the file lacks the ``name`` or ``status`` column.
    """
    if not path.is_file():
        return {}
    rows: dict[str, PredictionRow] = {}
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = {"name", "status"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(
                f"{path}: lacks the column(s) {', '.join(sorted(missing))}; is it a cellseg predict predictions.csv?"
            )
        for record in reader:
            row = PredictionRow(
                image=record.get("image") or "",
                name=record["name"],
                status=record["status"] or "ok",
                objects=_integer(record.get("objects")),
                median_area=_number(record.get("median_area")),
                mean_confidence=_number(record.get("mean_confidence")),
                border_objects=_integer(record.get("border_objects")),
                cut_objects=_integer(record.get("cut_objects")),
                error=record.get("error") or "",
            )
            earlier = rows.get(row.name)
            if earlier is None or not earlier.has_numbers or row.has_numbers:
                rows[row.name] = row
    return rows


def _number(text: str | None) -> float | None:
    """A CSV cell as a finite float, or ``None`` (empty, ``nan``, not a number)."""
    try:
        value = float(text) if text else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _integer(text: str | None) -> int | None:
    value = _number(text)
    return None if value is None else int(value)


def image_files(folder: Path, mask_suffix: str = "_masks") -> dict[str, Path]:
    """The images under ``folder`` (its ``images/`` sub-folder when it has one), by name, masks left out.

    A name is the path under the folder less the extension (``sub/cell_01`` for ``sub/cell_01.tif``), as predict
    names images it found recursively. Where two files share a name (``a.tif``, ``a.png``) the first in sorted order
    is taken.

    Raises:
        DatasetError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; pass the folder that holds the images with --images")
    root = folder / "images" if (folder / "images").is_dir() else folder
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file() or not is_supported(path):
            continue
        stem = split_extension(path)[0]
        if mask_suffix and stem.endswith(mask_suffix):
            continue
        found.setdefault((relative.parent / stem).as_posix(), path)
    return found


def find_entries(
    prediction_dir: Path,
    images_dir: Path | None = None,
    truth_dir: Path | None = None,
    mask_suffix: str = "_masks",
) -> Collection:
    """Every image of a prediction folder with its mask, image, probability map, truth and CSV row.

    Args:
        prediction_dir: a ``cellseg predict`` output folder (or any folder of masks).
        images_dir: where the images are, found by name; else ``predictions.csv``'s paths, else beside the masks.
        truth_dir: ground-truth masks, paired by name (a dataset folder with ``masks/`` works too).
        mask_suffix: what a mask's name adds to its image's name.

    Returns:
        The images sorted by name, and notes on what was not found.

    Raises:
        DatasetError: a folder is missing, or the prediction folder holds neither masks nor ``predictions.csv``.
    """
    rows = read_prediction_rows(prediction_dir / PREDICTIONS_CSV)
    masks = mask_files(prediction_dir, mask_suffix)
    for name in rows.keys() - masks.keys():
        found = _mask_of(prediction_dir, name, mask_suffix)
        if found is not None:
            masks[name] = found
    names = sorted(masks.keys() | rows.keys())
    if not names:
        raise DatasetError(
            f"{prediction_dir}: holds no masks ({mask_suffix} files) and no {PREDICTIONS_CSV}; "
            "pass the --output folder of cellseg predict"
        )
    images = image_files(images_dir, mask_suffix) if images_dir is not None else {}
    beside = image_files(prediction_dir, mask_suffix) if images_dir is None else {}
    truth = mask_files(truth_dir, mask_suffix) if truth_dir is not None else {}
    entries = []
    for name in names:
        row = rows.get(name)
        image = images.get(name) if images_dir is not None else _csv_image(row, prediction_dir) or beside.get(name)
        probability = prediction_dir / f"{name}{PROBABILITY_SUFFIX}.tif"
        entries.append(
            ImageEntry(
                name=name,
                status=row.status if row is not None else "ok",
                mask=masks.get(name),
                image=image,
                probability=probability if probability.is_file() else None,
                truth=truth.get(name),
                row=row,
            )
        )
    return Collection(entries, _notes(entries, images_dir, truth_dir, set(truth) - set(names)))


def _mask_of(folder: Path, name: str, mask_suffix: str) -> Path | None:
    """The mask predict wrote for ``name`` (which may hold sub-folders), in any of its formats."""
    for extension in MASK_EXTENSIONS.values():
        candidate = folder / f"{name}{mask_suffix}{extension}"
        if candidate.is_file():
            return candidate
    return None


def _csv_image(row: PredictionRow | None, prediction_dir: Path) -> Path | None:
    """The input image of a CSV row, as given to predict (relative to where it ran, or to the prediction folder)."""
    if row is None or not row.image:
        return None
    path = Path(row.image)
    for candidate in (path, prediction_dir / path):
        if candidate.is_file():
            return candidate
    return None


def _notes(
    entries: list[ImageEntry], images_dir: Path | None, truth_dir: Path | None, unpaired_truth: set[str]
) -> list[str]:
    """One line per kind of file not found, with a few names."""
    notes = []
    predicted = [e for e in entries if e.mask is not None]
    without_image = [e.name for e in predicted if e.image is None]
    if without_image:
        where = f"in {images_dir}" if images_dir is not None else "(give --images DIR)"
        notes.append(f"image not found {where}, mask drawn on black, for {_some(without_image)}")
    if truth_dir is not None:
        without_truth = [e.name for e in predicted if e.truth is None]
        if without_truth:
            notes.append(f"no ground truth in {truth_dir} for {_some(without_truth)}")
        if unpaired_truth:
            notes.append(f"ground truth without a prediction, not shown, for {_some(sorted(unpaired_truth))}")
    missing = [e.name for e in entries if e.mask is None and e.status != "failed"]
    if missing:
        notes.append(f"no mask file, though listed in {PREDICTIONS_CSV}, for {_some(missing)}")
    return notes


def _some(names: list[str], shown: int = 3) -> str:
    """``"1 image: 'a'"``, ``"5 images: 'a', 'b', 'c' and 2 more"``."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    counted = "1 image" if len(names) == 1 else f"{len(names)} images"
    return f"{counted}: " + ", ".join(repr(name) for name in names[:shown]) + more


def label_stats(labels: npt.NDArray[np.integer[Any]]) -> tuple[int, float | None, int]:
    """Objects, median object area in pixels (``None`` without objects) and objects touching the image border.

    Args:
        labels: ``(H, W)`` or ``(D, H, W)`` label image, 0 = background; ids need not be sequential.

    Examples:
        >>> labels = np.zeros((6, 6), dtype=np.uint16)
        >>> labels[0, :2], labels[2:5, 2:5] = 4, 9
        >>> label_stats(labels)
        (2, 5.5, 1)
        >>> label_stats(np.zeros((3, 3), dtype=np.uint8))
        (0, None, 0)
    """
    flat = labels.ravel()
    ids, areas = np.unique(flat[flat != 0], return_counts=True)
    if ids.size == 0:
        return 0, None, 0
    border = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        index: list[Any] = [slice(None)] * labels.ndim
        for end in (0, -1):
            index[axis] = end
            border[tuple(index)] = True
    touching = np.unique(labels[border])
    return int(ids.size), float(np.median(areas)), int(np.count_nonzero(touching))


def image_stats(
    entry: ImageEntry,
    labels: npt.NDArray[np.integer[Any]] | None,
    truth: npt.NDArray[np.integer[Any]] | None = None,
) -> ImageStats:
    """The numbers of one image, from its mask, its ``predictions.csv`` row and its ground truth.

    Args:
        entry: the image's files and row.
        labels: its predicted labels, ``None`` when there is no mask.
        truth: its true labels (same shape), ``None`` without ground truth.

    Raises:
        ValueError: ``truth`` and ``labels`` differ in shape.
    """
    row = entry.row
    error = row.error if row is not None else ""
    if labels is None:
        return ImageStats(status=entry.status, error=error or "no mask file")
    objects, median_area, border_objects = label_stats(labels)
    dice = f1 = None
    if truth is not None:
        dice, f1 = truth_scores(truth, labels)
    from_csv = row is not None and row.has_numbers
    return ImageStats(
        status=entry.status,
        objects=objects,
        median_area=median_area,
        mean_confidence=row.mean_confidence if row is not None and from_csv and objects else None,
        border_objects=row.border_objects if row is not None and from_csv else border_objects,
        cut_objects=row.cut_objects if row is not None and from_csv else None,
        dice=dice,
        f1=f1,
        error=error,
    )


def truth_scores(truth: npt.NDArray[np.integer[Any]], labels: npt.NDArray[np.integer[Any]]) -> tuple[float, float]:
    """Foreground Dice and the F1 of objects matched at IoU 0.5, of ``labels`` against ``truth`` (same shape).

    A binary truth (one foreground value) is split into connected components first, as ``cellseg evaluate`` does.

    Raises:
        ValueError: the shapes differ.

    Examples:
        >>> truth = np.array([[1, 1, 0, 2, 2]])
        >>> truth_scores(truth, np.array([[3, 3, 0, 0, 0]]))
        (0.6666666666666666, 0.6666666666666666)
    """
    from cellseg.evaluation.matching import as_instances, match_instances

    scores = match_instances(as_instances(truth)[0], labels, thresholds=(F1_THRESHOLD,))
    return scores.dice, scores.at(F1_THRESHOLD).f1
