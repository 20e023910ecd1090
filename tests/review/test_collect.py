"""Finding a prediction folder's files per image, and the numbers read from predictions.csv or the masks."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellseg.io.errors import DatasetError
from cellseg.io.writers import write_labels
from cellseg.review.collect import (
    ImageEntry,
    PredictionRow,
    find_entries,
    image_files,
    image_stats,
    read_prediction_rows,
    truth_scores,
)
from tests.review.conftest import CSV_COLUMNS, HOSTILE_NAME, WITH_PROBABILITY

Run = tuple[Path, Path, Path]


def test_every_image_is_found_with_its_files(prediction_run: Run) -> None:
    pred_dir, images_dir, gt_dir = prediction_run
    collection = find_entries(pred_dir, truth_dir=gt_dir)
    by_name = {entry.name: entry for entry in collection.entries}
    assert [entry.name for entry in collection.entries] == sorted(by_name)
    assert set(by_name) == {"cell_a", "cell_b", "cell_c", "cell_d", "empty", "failed", "poor", HOSTILE_NAME}
    hostile = by_name[HOSTILE_NAME]
    assert hostile.mask == pred_dir / f"{HOSTILE_NAME}_masks.tif"
    assert hostile.image == images_dir / f"{HOSTILE_NAME}.png"  # from predictions.csv
    assert hostile.truth == gt_dir / f"{HOSTILE_NAME}.tif"
    assert {name for name, entry in by_name.items() if entry.probability is not None} == set(WITH_PROBABILITY)
    assert by_name["failed"].status == "failed"
    assert by_name["failed"].mask is None
    assert by_name["empty"].truth is None
    assert collection.notes == [f"no ground truth in {gt_dir} for 1 image: 'empty'"]


def test_images_come_from_the_images_folder_when_given(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, images_dir, _ = prediction_run
    moved = tmp_path / "elsewhere"
    shutil.copytree(images_dir, moved / "images")  # a dataset folder: its images/ is searched
    (moved / "images" / "cell_a.tif").unlink()
    collection = find_entries(pred_dir, images_dir=moved)
    by_name = {entry.name: entry for entry in collection.entries}
    assert by_name["cell_b"].image == moved / "images" / "cell_b.tif"
    assert by_name["cell_a"].image is None
    assert collection.notes == [f"image not found in {moved}, mask drawn on black, for 1 image: 'cell_a'"]


def test_masks_without_a_csv_and_names_with_sub_folders(tmp_path: Path) -> None:
    labels = np.zeros((8, 8), dtype=np.uint16)
    labels[2:5, 2:5] = 1
    write_labels(tmp_path / "plain_masks.tif", labels, "tif")
    (tmp_path / "plate1").mkdir()
    write_labels(tmp_path / "plate1" / "a01_masks.png", labels, "png")
    with (tmp_path / "predictions.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow({"image": "gone/a01.tif", "name": "plate1/a01", "status": "ok", "objects": 1})
    entries = {entry.name: entry for entry in find_entries(tmp_path).entries}
    assert entries["plate1/a01"].mask == tmp_path / "plate1" / "a01_masks.png"
    assert entries["plate1/a01"].image is None
    assert entries["plain"].row is None
    assert entries["plain"].status == "ok"


def test_an_empty_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no masks"):
        find_entries(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        find_entries(tmp_path / "missing")
    with pytest.raises(DatasetError, match="--images"):
        image_files(tmp_path / "missing")


def test_rows_with_numbers_win_over_failed_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow(
            {"image": "a.tif", "name": "a", "status": "ok", "median_area": "12.5", "mean_confidence": "nan"}
        )
        writer.writerow({"image": "b/a.tif", "name": "a", "status": "failed", "error": "same output name"})
    row = read_prediction_rows(path)["a"]
    assert row.image == "a.tif"
    assert row.median_area == 12.5
    assert row.mean_confidence is None
    path.write_text("image,objects\nx.tif,3\n")
    with pytest.raises(DatasetError, match="lacks the column"):
        read_prediction_rows(path)


def test_counts_come_from_the_mask_and_confidence_from_the_csv() -> None:
    labels = np.zeros((10, 10), dtype=np.uint16)
    labels[0:2, 0:2] = 3  # 4 px, on the border
    labels[4:7, 4:7] = 8  # 9 px
    entry = ImageEntry("a", "ok", Path("a_masks.tif"), None, None, None, None)
    row = PredictionRow("a.tif", "a", "ok", objects=5, median_area=1.0, mean_confidence=0.8, border_objects=0,
                        cut_objects=1)  # fmt: skip
    stats = image_stats(ImageEntry("a", "ok", Path("a_masks.tif"), None, None, None, row), labels, labels)
    assert (stats.objects, stats.median_area) == (2, 6.5)  # the mask, possibly edited since
    assert (stats.mean_confidence, stats.border_objects, stats.cut_objects) == (0.8, 0, 1)  # only predict knows
    assert (stats.dice, stats.f1) == (1.0, 1.0)
    without_csv = image_stats(entry, labels)
    assert (without_csv.mean_confidence, without_csv.border_objects, without_csv.cut_objects) == (None, 1, None)
    assert (without_csv.dice, without_csv.f1) == (None, None)


def test_truth_scores_label_a_binary_truth_and_refuse_other_shapes() -> None:
    truth = np.zeros((6, 6), dtype=np.uint8)
    truth[0:2, 0:2] = truth[4:6, 4:6] = 1  # binary: two objects once labelled
    predicted = np.zeros((6, 6), dtype=np.uint16)
    predicted[0:2, 0:2], predicted[4:6, 4:6] = 1, 2
    assert truth_scores(truth, predicted) == (1.0, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        truth_scores(truth, predicted[:5])
