"""``cellseg evaluate --model --data``: predict a dataset's images with a checkpoint, then score them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellseg.cli import main
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.evaluation.matching import MatchCounts, match_instances
from cellseg.io import read_mask


def test_evaluate_predicts_then_scores_per_group(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(3):
        sample = generate_sample(SyntheticConfig(shape=(96, 96)), seed)
        tifffile.imwrite(data / f"cells_{seed}.tif", sample.image)
        tifffile.imwrite(data / f"cells_{seed}_masks.tif", sample.labels.astype(np.uint16))
    (data / "metadata.csv").write_text("name,plate\ncells_0,A\ncells_1,A\ncells_2,B\n")
    output = tmp_path / "evaluation"
    code = main([
        "evaluate", "--model", str(checkpoint), "--data", str(data), "--output", str(output), "--groups", "plate",
        "--no-progress", "--workers", "0", "--accelerator", "cpu",
    ])  # fmt: skip
    assert code == 0
    assert sorted(path.name for path in (output / "predictions").glob("*_masks.tif")) == [
        f"cells_{seed}_masks.tif" for seed in range(3)
    ]
    with (output / "per_image.csv").open() as stream:
        rows = {row["name"]: row for row in csv.DictReader(stream)}
    assert sorted(rows) == ["cells_0", "cells_1", "cells_2"]
    assert [rows[f"cells_{seed}"]["group"] for seed in range(3)] == ["A", "A", "B"]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["model"] == str(checkpoint)
    assert summary["skipped"] == []
    pooled = summary["aggregates"]["all"]["pooled"]
    assert pooled["dice"] > 0.8  # the 150-step test model: measured 0.90
    # The scores are those of the written masks against the truth.
    total = sum(
        (
            match_instances(read_mask(data / f"cells_{seed}_masks.tif"), read_mask(mask)).at(0.5)
            for seed, mask in enumerate(sorted((output / "predictions").glob("*_masks.tif")))
        ),
        start=MatchCounts(0.5, 0, 0, 0, 0.0, 0, 0),
    )
    assert pooled["by_threshold"]["0.50"]["f1"] == pytest.approx(total.f1)
    assert total.tp > 0
    assert set(summary["aggregates"]["groups"]) == {"A", "B"}
    assert "mean over images" in capsys.readouterr().out
