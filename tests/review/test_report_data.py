"""The report's data and pictures from a synthetic prediction run, with and without a training run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest

from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.io.errors import DatasetError
from cellseg.review.decisions import Decision, write_decisions
from cellseg.review.flags import FLAG_CODES
from cellseg.review.report import ReportOptions, build_report, collect_report_data
from cellseg.review.training_run import build_run_section
from tests.review.conftest import EXPECTED_FLAGS, HOSTILE_NAME, WITH_PROBABILITY

Run = tuple[Path, Path, Path]
SERIAL = ReportOptions(workers=1)


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in data["images"]}


def test_the_data_describe_every_image_and_flag_what_is_wrong(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, gt_dir = prediction_run
    report = tmp_path / "report"
    data = collect_report_data(pred_dir, report, gt_dir=gt_dir, options=SERIAL)
    json.dumps(data, allow_nan=False)  # what the page embeds
    images = by_name(data)
    assert {name: [flag["code"] for flag in image["flags"]] for name, image in images.items()} == EXPECTED_FLAGS
    assert [image["id"] for image in data["images"]] == list(range(len(EXPECTED_FLAGS)))
    assert data["has_truth"] is True
    assert data["has_probability"] is True
    assert data["run"] is None
    assert list(data["flag_rules"]) == list(FLAG_CODES)
    assert data["prediction_dir"] == str(pred_dir)
    assert len(data["report_id"]) == 40
    cell = images["cell_a"]
    assert (cell["width"], cell["height"]) == (96, 96)
    assert cell["dice"] == cell["f1"] == 1.0
    assert cell["mean_confidence"] == 0.93
    assert cell["status"] == "ok"
    assert cell["decision"] is None
    assert isinstance(cell["objects"], int)
    assert isinstance(cell["median_area"], float)
    poor = images["poor"]
    assert (poor["objects"], poor["median_area"]) == (1, 1600.0)
    assert poor["dice"] is not None
    assert poor["dice"] < 0.7
    assert images["empty"]["dice"] is None  # no truth for it
    assert images["empty"]["median_area"] is None
    assert images["empty"]["mean_confidence"] is None
    failed = images["failed"]
    assert failed["thumbnail"] is None
    assert set(failed["layers"].values()) == {None}
    assert failed["width"] is None
    assert "not a readable TIFF" in failed["flags"][0]["reason"]


def test_every_picture_is_named_by_index_and_exists(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, gt_dir = prediction_run
    report = tmp_path / "report"
    data = collect_report_data(pred_dir, report, gt_dir=gt_dir, options=SERIAL)
    for image in data["images"]:
        if image["thumbnail"] is None:
            continue
        stem = f"{image['id']:06d}"
        assert image["thumbnail"] == f"thumbs/{stem}.png"
        layers = {kind: path for kind, path in image["layers"].items() if path is not None}
        assert all(path == f"layers/{stem}_{kind}.png" for kind, path in layers.items())
        assert {"image", "mask", "contours"} <= set(layers)
        assert ("probability" in layers) == (image["name"] in WITH_PROBABILITY)
        assert ("truth" in layers) == (image["dice"] is not None)
        sizes = {iio.imread(report / path).shape[:2] for path in layers.values()}
        assert sizes == {(image["height"], image["width"])}
        assert max(iio.imread(report / image["thumbnail"]).shape[:2]) <= 256
    written = [path.relative_to(report).as_posix() for path in report.rglob("*")]
    assert written
    assert not [path for path in written if "<" in path or "img" in path or "alert" in path]


def test_the_hostile_name_stays_plain_data(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, gt_dir = prediction_run
    data = collect_report_data(pred_dir, tmp_path / "report", gt_dir=gt_dir, options=SERIAL)
    hostile = by_name(data)[HOSTILE_NAME]
    assert hostile["name"] == HOSTILE_NAME
    assert hostile["flags"] == []
    assert hostile["thumbnail"] == f"thumbs/{hostile['id']:06d}.png"


def test_decisions_are_read_back_and_unknown_ones_noted(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, _ = prediction_run
    review_csv = write_decisions(
        tmp_path / "review.csv",
        {"poor": Decision("reject", "all wrong"), HOSTILE_NAME: Decision("accept"), "gone": Decision("accept")},
    )
    data = collect_report_data(pred_dir, tmp_path / "report", decisions=review_csv, options=SERIAL)
    images = by_name(data)
    assert images["poor"]["decision"] == {"decision": "reject", "note": "all wrong"}
    assert images[HOSTILE_NAME]["decision"] == {"decision": "accept", "note": ""}
    assert images["cell_a"]["decision"] is None
    assert "1 decisions are for images not in this report; they are left out" in data["notes"]
    assert data["has_truth"] is False
    assert "low_dice" not in data["flag_rules"]


def test_workers_give_the_same_report(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, gt_dir = prediction_run
    serial = collect_report_data(pred_dir, tmp_path / "serial", gt_dir=gt_dir, options=SERIAL)
    parallel = collect_report_data(pred_dir, tmp_path / "parallel", gt_dir=gt_dir, options=ReportOptions(workers=2))
    assert serial["images"] == parallel["images"]
    for path in (tmp_path / "serial").rglob("*.png"):
        other = tmp_path / "parallel" / path.relative_to(tmp_path / "serial")
        assert np.array_equal(iio.imread(path), iio.imread(other))


def test_an_existing_report_is_replaced_only_when_asked(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, _, _ = prediction_run
    report = tmp_path / "report"
    collect_report_data(pred_dir, report, options=SERIAL)
    (report / "index.html").write_text("an earlier report")
    (report / "thumbs" / "000099.png").write_bytes(b"stale")
    with pytest.raises(DatasetError, match=r"holds a report already \(index.html\); pass --overwrite"):
        collect_report_data(pred_dir, report, options=SERIAL)
    collect_report_data(pred_dir, report, options=ReportOptions(workers=1, overwrite=True))
    assert not (report / "thumbs" / "000099.png").exists()
    assert (report / "thumbs" / "000000.png").exists()
    with pytest.raises(DatasetError, match="is the prediction folder"):
        collect_report_data(pred_dir, pred_dir, options=SERIAL)


def test_a_mask_of_another_size_than_its_image_is_drawn_on_black_and_noted(prediction_run: Run, tmp_path: Path) -> None:
    pred_dir, images_dir, _ = prediction_run
    import tifffile

    tifffile.imwrite(images_dir / "cell_a.tif", np.zeros((50, 50), dtype=np.uint16))
    data = collect_report_data(pred_dir, tmp_path / "report", options=SERIAL)
    cell = by_name(data)["cell_a"]
    assert (cell["width"], cell["height"]) == (96, 96)
    assert any("'cell_a': image of shape (50, 50) does not match the mask (96, 96)" in note for note in data["notes"])


def test_build_report_writes_the_page(prediction_run: Run, tmp_path: Path) -> None:
    pytest.importorskip("cellseg.review.page")
    pred_dir, _, gt_dir = prediction_run
    summary = build_report(pred_dir, tmp_path / "report", gt_dir=gt_dir, options=SERIAL)
    assert summary.index == tmp_path / "report" / "index.html"
    assert summary.images == len(EXPECTED_FLAGS)
    assert summary.failed == 1
    assert summary.flagged == sum(bool(codes) for codes in EXPECTED_FLAGS.values())
    assert summary.flag_counts == {
        "empty": 1, "count": 1, "area": 1, "low_confidence": 1, "cut": 1, "border": 1, "low_dice": 1, "failed": 1
    }  # fmt: skip
    assert HOSTILE_NAME not in summary.index.read_text(encoding="utf-8")  # escaped in the embedded JSON


def fake_run_folder(root: Path, checkpoint: Path | None) -> Path:
    """A Lightning log folder as cellseg fit leaves it, over a 3-image synthetic data set."""
    data = root / "data"
    write_dataset(data, 3, SyntheticConfig(shape=(64, 64), n_nuclei=(4, 8), radius=(5.0, 8.0)), seed=5)
    run = root / "lightning_logs" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text(
        "epoch,step,train/loss,val/dice,val/f1@0.5\n0,3,1.5,,\n0,3,,0.8,0.5\n1,7,,0.9123456,0.75\n1,9,1.1,,\n"
    )
    iio.imwrite(run / "learning_curves.png", np.zeros((10, 20, 3), dtype=np.uint8))
    split = {"data_dir": str(data), "train": ["synthetic_000"], "validation": ["synthetic_001", "synthetic_002", "x"]}
    (run / "split.json").write_text(json.dumps(split))
    if checkpoint is not None:
        shutil.copyfile(checkpoint, run / "checkpoints" / "best-001.ckpt")
    return run


def test_the_training_run_section(prediction_run: Run, tmp_path: Path, checkpoint: Path) -> None:
    pred_dir, _, _ = prediction_run
    run = fake_run_folder(tmp_path / "training", checkpoint)
    report = tmp_path / "report"
    data = collect_report_data(pred_dir, report, run_dir=run, options=SERIAL)
    section = data["run"]
    assert section["folder"] == str(run)
    assert section["curves"] == "run/learning_curves.png"
    assert (report / "run" / "learning_curves.png").read_bytes() == (run / "learning_curves.png").read_bytes()
    assert section["metrics"] == {"epoch": 1, "step": 7, "val/dice": 0.9123, "val/f1@0.5": 0.75}
    assert section["checkpoint"] == "best-001.ckpt"
    assert [item["name"] for item in section["validation"]] == ["synthetic_001", "synthetic_002"]
    for number, item in enumerate(section["validation"]):
        assert item["overlay"] == f"run/val_{number:03d}.png"
        assert iio.imread(report / item["overlay"]).shape == (64, 64, 3)
        assert 0.0 <= item["dice"] <= 1.0
        assert 0.0 <= item["f1"] <= 1.0
    assert any("1 validation images" in note for note in data["notes"])
    fewer = build_run_section(run, tmp_path / "other", max_images=1)
    assert len(fewer.data["validation"]) == 1


def test_a_run_folder_without_checkpoint_or_curves_still_gives_its_metrics(tmp_path: Path) -> None:
    run = fake_run_folder(tmp_path / "training", None)
    (run / "learning_curves.png").unlink()
    section = build_run_section(run, tmp_path / "report")
    assert section.data["curves"] is None
    assert section.data["validation"] == []
    assert section.data["metrics"]["val/dice"] == 0.9123
    assert any("no best-*.ckpt or last.ckpt" in note for note in section.notes)
    assert any("learning_curves.png: not found" in note for note in section.notes)
    with pytest.raises(DatasetError, match="no such run folder"):
        build_run_section(tmp_path / "missing", tmp_path / "report")
