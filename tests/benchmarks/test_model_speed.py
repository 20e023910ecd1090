"""benchmarks/model_speed.py times trained models against each other and MONAI in one process, and records it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

throughput = importlib.import_module("benchmarks.predict_throughput")
speed = importlib.import_module("benchmarks.model_speed")
ROOT = Path(__file__).resolve().parents[2]


def test_every_model_and_the_reference_are_timed_in_one_run(tmp_path: Path) -> None:
    folded = throughput.write_random_checkpoint(tmp_path / "folded.ckpt", [8, 16], 32, {"fold": 2})
    light = throughput.write_random_checkpoint(tmp_path / "light.ckpt", [4, 8, 16], 32, {"first_level": "light"})
    results = tmp_path / "speed.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "model_speed.py"), "--checkpoint", str(folded), "--label", "folded",
        "--checkpoint", str(light), "--label", "light", "--size", "96", "--rounds", "2", "--results", str(results),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ") and "median s" not in line]
    settings = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert settings == [
        speed.REFERENCE,
        speed.REFERENCE_INSTANCES,
        "folded probabilities",
        "folded + instances",
        "light probabilities",
        "light + instances",
    ]
    records = json.loads(results.read_text())
    assert [record["setting"] for record in records] == settings
    assert all(len(record["seconds_all"]) == 2 and record["seconds"] > 0 for record in records)
    assert records[0]["vs_monai"] == 1.0
    reference, reference_instances = records[0]["seconds"], records[1]["seconds"]
    assert records[1]["vs_monai_same_output"] == 1.0  # the reference's instances against themselves
    assert records[1]["vs_monai"] == pytest.approx(reference / reference_instances)
    instances, probabilities = records[3], records[2]  # "folded + instances" against the reference's instances
    assert instances["vs_monai_same_output"] == pytest.approx(reference_instances / instances["seconds"])
    assert instances["vs_monai"] == pytest.approx(reference / instances["seconds"])
    assert probabilities["vs_monai_same_output"] == probabilities["vs_monai"]
    assert set(records[-1]["objects"]) == {speed.REFERENCE_INSTANCES, "folded", "light"}
    assert records[0]["monai_channels"] == [4, 8, 16]  # the first model's widths unfolded: the same stride, 4


def test_a_label_per_checkpoint_or_none(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "model_speed.py"), "--checkpoint", "a.ckpt", "--checkpoint",
        "b.ckpt", "--label", "only-one",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2
    assert "one --label per --checkpoint" in completed.stderr


def test_default_labels_name_the_run_folders() -> None:
    path = Path("runs/dsb2018/dsb2018_light/cellseg/seed0/lightning_logs/version_0/checkpoints/final.ckpt")
    assert speed.default_label(path) == "dsb2018_light/cellseg/seed0"
    assert speed.default_label(Path("somewhere/model.ckpt")) == "model"
