"""``cellseg fit --data.exclude review.csv``: rejected and needs-fix images stay out of training and validation."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest

from cellseg.data.datamodule import SPLIT_FILE, CellDataModule
from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.review.decisions import Decision, DecisionsError, write_decisions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(folder, 6, SyntheticConfig(shape=(64, 64), n_nuclei=(4, 8)), seed=0)
    return folder


def test_rejected_and_needs_fix_images_are_left_out_and_listed(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    review_csv = write_decisions(
        tmp_path / "review.csv",
        {
            "synthetic_000": Decision("reject", "out of focus"),
            "synthetic_001": Decision("needs-fix", "two cells merged, top left"),
            "synthetic_002": Decision("accept"),
            "not_in_the_data": Decision("reject"),
        },
    )
    module = CellDataModule(
        str(dataset), patch_size=[64, 64], num_workers=0, exclude=str(review_csv),
        validation_names=["synthetic_001", "synthetic_005"],
    )  # fmt: skip
    module.trainer = L.Trainer(default_root_dir=tmp_path, logger=False, accelerator="cpu")
    with pytest.warns(UserWarning, match=r"1 decided images are not in .* \(e\.g\. 'not_in_the_data'\)"):
        module.setup("fit")
    used = {sample.name for sample in module.train_samples + module.val_samples}
    assert used == {"synthetic_002", "synthetic_003", "synthetic_004", "synthetic_005"}
    assert [sample.name for sample in module.val_samples] == ["synthetic_005"]
    assert "left out 2 of 6 images decided in" in capsys.readouterr().err
    record = json.loads((tmp_path / SPLIT_FILE).read_text())
    assert record["excluded"] == [
        {"name": "synthetic_000", "decision": "reject", "note": "out of focus"},
        {"name": "synthetic_001", "decision": "needs-fix", "note": "two cells merged, top left"},
    ]
    [to_fix] = record["to_reannotate"]
    assert to_fix["name"] == "synthetic_001"
    assert to_fix["mask"] == str(dataset / "masks" / "synthetic_001.tif")
    assert not set(record["train"] + record["validation"]) & {"synthetic_000", "synthetic_001"}


def test_a_bad_review_file_stops_before_loading(dataset: Path, tmp_path: Path) -> None:
    review_csv = tmp_path / "review.csv"
    review_csv.write_text("name,decision\nsynthetic_000,drop\n")
    module = CellDataModule(str(dataset), patch_size=[64, 64], num_workers=0, exclude=str(review_csv))
    with pytest.raises(DecisionsError, match=r"review\.csv, line 2: decision 'drop'"):
        module.setup("fit")
