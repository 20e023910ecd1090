"""The accuracy benchmark's split (grouped, stratified by modality, deterministic) and its classical pipeline."""

from __future__ import annotations

import importlib
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from cellseg.evaluation.matching import match_instances
from cellseg.evaluation.scoring import ImageEvaluation
from cellseg.evaluation.summary import summarise

# Imported by name at run time: benchmarks/ has no __init__.py, so mypy checks the script as the top-level module
# ``accuracy`` and a static ``import benchmarks.accuracy`` would make it see the same file under two names.
accuracy = importlib.import_module("benchmarks.accuracy")
SPLITS: Path = accuracy.SPLITS
ImageInfo = accuracy.ImageInfo
SplitMismatchError = accuracy.SplitMismatchError
dsb_split = accuracy.dsb_split
ensure_split = accuracy.ensure_split
max_time = accuracy.max_time
planned_steps = accuracy.planned_steps
table_rows = accuracy.table_rows
markdown_table = accuracy.markdown_table
group_rows = accuracy.group_rows
markdown_groups = accuracy.markdown_groups
otsu_watershed = accuracy.otsu_watershed
read_metadata = accuracy.read_metadata
usiigaci_split = accuracy.usiigaci_split
write_split = accuracy.write_split

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def synthetic_metadata() -> list[Any]:
    """Fluorescence in five groups, stained and brightfield in one group each (as in DSB2018)."""
    sizes = {
        ("fluorescence", 256, 256): 60,
        ("fluorescence", 360, 360): 20,
        ("fluorescence", 520, 696): 15,
        ("fluorescence", 512, 640): 6,
        ("fluorescence", 603, 1272): 3,
        ("stained", 256, 320): 30,
        ("brightfield", 1024, 1024): 8,
    }
    return [
        ImageInfo(f"{modality}-{height}-{index:03d}", height, width, modality)
        for (modality, height, width), count in sizes.items()
        for index in range(count)
    ]


def test_split_keeps_groups_whole_and_validates_at_least_15_percent_of_each_modality() -> None:
    images = synthetic_metadata()
    split = dsb_split(images, seed=3)
    validation = set(split["validation"])
    assert validation.isdisjoint(split["train"])
    assert sorted([*split["train"], *split["validation"]]) == sorted(image.name for image in images)
    for modality in ("fluorescence", "stained", "brightfield"):
        members = [image for image in images if image.modality == modality]
        chosen = sum(image.name in validation for image in members)
        assert math.ceil(0.15 * len(members)) <= chosen <= max(math.floor(0.30 * len(members)), chosen)
    # only the single-group modalities are split by image; every other group lies on one side
    assert sorted(split["split_by_image"]) == ["1024x1024 brightfield", "256x320 stained"]
    for group in {image.group for image in images} - set(split["split_by_image"]):
        sides = {image.name in validation for image in images if image.group == group}
        assert len(sides) == 1, group
    assert len(validation) >= 0.15 * len(images)
    assert all(entry["validation"] in (0, entry["images"]) or entry["group"] in split["split_by_image"]
               for entry in split["groups"])  # fmt: skip


def test_split_is_deterministic_and_seeded() -> None:
    images = synthetic_metadata()
    assert dsb_split(images, seed=5) == dsb_split(list(reversed(images)), seed=5)
    assert any(dsb_split(images, seed=5)["validation"] != dsb_split(images, seed=s)["validation"] for s in range(6, 9))
    phase = [ImageInfo(f"set{i}", 1022, 1024, "phase contrast") for i in range(1, 46)]
    assert len(usiigaci_split(phase)["validation"]) == 5
    assert usiigaci_split(phase) == usiigaci_split(phase)


def test_split_file_is_rewritten_identically_and_a_different_one_stops(tmp_path: Path) -> None:
    split = dsb_split(synthetic_metadata(), seed=0)
    path = tmp_path / "splits" / "dsb2018.json"
    write_split(split, path)
    written = path.read_text()
    write_split(split, path)
    assert path.read_text() == written
    with pytest.raises(SplitMismatchError, match="another split"):
        write_split(dsb_split(synthetic_metadata(), seed=1), path)


def disc_image(centres: list[tuple[int, int]], radius: int, invert: bool = False) -> np.ndarray:
    rows, columns = np.mgrid[:96, :128]
    truth = np.zeros((96, 128), dtype=np.int32)
    for label, (row, column) in enumerate(centres, start=1):
        inside = (rows - row) ** 2 + (columns - column) ** 2 <= radius**2
        truth[inside & (truth == 0)] = label
    noise = np.random.default_rng(0).normal(0, 5, truth.shape)
    image = np.where(truth > 0, 180.0, 40.0) + noise
    if invert:
        image = 255.0 - image
    return np.stack([image.astype(np.float32), truth.astype(np.float32)])


@pytest.mark.parametrize("invert", [False, True])
def test_otsu_watershed_separates_two_touching_discs(invert: bool) -> None:
    stacked = disc_image([(48, 50), (48, 76)], radius=14, invert=invert)  # centres 26 px apart: they overlap
    image, truth = stacked[:1], stacked[1].astype(np.int32)
    labels = otsu_watershed(image)
    assert labels.max() == 2
    scores = match_instances(truth, labels)
    assert scores.at(0.75).tp == 2
    rgb = np.repeat(image, 3, axis=0)  # luma of a gray RGB image is the gray image
    assert match_instances(truth, otsu_watershed(rgb)).at(0.75).tp == 2


def test_otsu_watershed_of_a_flat_image_is_empty() -> None:
    assert otsu_watershed(np.full((1, 32, 32), 7, dtype=np.uint8)).max() == 0


def test_planned_steps_pay_for_the_validation_passes_they_reach() -> None:
    # 40 batches between validations of 30 s at 1 s a batch: 70 steps (one validation) fill 100 s exactly
    assert planned_steps(100, 1.0, 30.0, batches_per_validation=40) == 70
    assert planned_steps(39, 1.0, 30.0, batches_per_validation=40) == 39  # no validation reached
    assert planned_steps(45, 1.0, 30.0, batches_per_validation=40) == 39  # the 40th would cost a validation too
    assert planned_steps(1, 10.0, 0.0, batches_per_validation=40) == 1  # at least one step


def test_max_time_format() -> None:
    assert max_time(20 * 60) == "00:00:20:00"
    assert max_time(90061) == "01:01:01:01"


@pytest.mark.parametrize("name", ["dsb2018", "usiigaci"])
def test_committed_split_is_the_rule_on_the_real_metadata(name: str) -> None:
    data = SHARED_DATA / f"{name}_train"
    if not (data / "metadata.csv").exists():
        pytest.skip(f"real data {data} is absent (it lives beside the repository, in shared/data)")
    committed = SPLITS / f"{name}.json"
    if not committed.exists():
        pytest.skip(f"{committed} is not written yet (benchmarks/accuracy.py writes it)")
    images = read_metadata(data, name)
    split = dsb_split(images) if name == "dsb2018" else usiigaci_split(images)
    assert json.loads(committed.read_text()) == split
    assert ensure_split(data, name) == split


def fake_record(
    system: str, seed: int | None, found: int, groups: dict[str, str] | None = None, cpu: str = "Test CPU"
) -> dict[str, Any]:
    """A results record of images ``a`` and ``b``: 4 true objects each, ``found`` of a's and all of b's predicted."""
    truth = np.zeros((8, 8), dtype=np.int32)
    for label, (row, column) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)], start=1):
        truth[row : row + 3, column : column + 3] = label
    evaluations = [
        ImageEvaluation(name, match_instances(truth, np.where(truth <= count, truth, 0)), False, False, 0.0)
        for name, count in (("a", found), ("b", 4))
    ]
    summary = summarise(evaluations, groups or {"a": "fluorescence", "b": "stained"})
    return {
        "dataset": "dsb2018", "system": system, "seed": seed, "budget_minutes": None if seed is None else 20.0,
        "limit_val": None, "scores": {"all": summary["all"], **summary["groups"]}, "variant_scores": {},
        "machine": {"cpu": cpu, "gpu": None},
    }  # fmt: skip


def test_table_gives_the_mean_and_range_over_seeds() -> None:
    records = [fake_record("cellseg", 0, 4), fake_record("cellseg", 1, 2), fake_record("otsu-watershed", None, 3)]
    rows = table_rows(records, "mean")
    assert [(row["subset"], row["system"]) for row in rows] == [
        (subset, system) for subset in ("all", "fluorescence", "stained") for system in ("cellseg", "otsu-watershed")
    ]
    fluorescence = rows[2]
    assert fluorescence["seeds"] == [0, 1]
    assert fluorescence["f1_50"] == pytest.approx([(1.0 + 2 / 3) / 2, 1.0 - 2 / 3])  # F1 of 4/4 and 2/4 found
    table = markdown_table(rows)
    assert "| dsb2018 | fluorescence | cellseg | Test CPU | 20 min | 0, 1 | 1 | - | " in table
    assert "0.833 (0.333)" in table
    assert "| dsb2018 | all | otsu-watershed | Test CPU | - | - | 2 | - | " in table


def test_seeds_are_averaged_on_one_machine_only() -> None:
    # the same budget buys another number of steps on another CPU: its seeds make a row of their own
    records = [fake_record("cellseg", 0, 4), fake_record("cellseg", 1, 2, cpu="Other CPU")]
    rows = [row for row in table_rows(records, "mean") if row["subset"] == "all"]
    assert [(row["machine"], row["seeds"]) for row in rows] == [("Other CPU", [1]), ("Test CPU", [0])]


def test_group_rows_give_each_seeds_scores_per_experiment_group() -> None:
    def record(system: str, seed: int, dice: list[float]) -> dict[str, Any]:
        per_image = [{"name": name, "subset": "fluorescence", "dice": value, "f1_50": value / 2}
                     for name, value in zip("abc", dice, strict=True)]  # fmt: skip
        return {**fake_record(system, seed, 4), "per_image": per_image}

    groups = {"a": "520x696 fluorescence", "b": "520x696 fluorescence", "c": "603x1272 fluorescence"}
    records = [record("monai-AttentionUnet", 0, [0.9, 0.9, 0.6]), record("cellseg", 1, [0.8, 1.0, 0.4]),
               record("cellseg", 0, [0.9, 0.9, 0.8])]  # fmt: skip
    rows = group_rows(records, groups)
    assert [(row["group"], row["system"], row["images"]) for row in rows] == [
        ("520x696 fluorescence", "cellseg", 2),
        ("520x696 fluorescence", "monai-AttentionUnet", 2),
        ("603x1272 fluorescence", "cellseg", 1),
        ("603x1272 fluorescence", "monai-AttentionUnet", 1),
    ]
    assert rows[0]["seeds"] == [0, 1]
    assert rows[0]["dice"] == pytest.approx([0.9, 0.9])
    assert rows[2]["dice"] == pytest.approx([0.8, 0.4])
    assert rows[2]["f1_50"] == pytest.approx([0.4, 0.2])
    assert "| dsb2018 | 603x1272 fluorescence | 1 | cellseg | Test CPU | 0, 1 | 0.800 / 0.400 (mean 0.600) |" in (
        markdown_groups(rows)
    )


def test_table_shows_a_group_holding_every_image_once() -> None:
    record = fake_record("cellseg", 0, 4, groups={"a": "phase contrast", "b": "phase contrast"})
    assert [row["subset"] for row in table_rows([record], "pooled")] == ["all"]


def test_clock_keeps_the_scores_of_each_validation_pass_after_the_sanity_check() -> None:
    trainer = SimpleNamespace(
        sanity_checking=True, global_step=0, callback_metrics={"val/dice": torch.tensor(0.25)}, callbacks=[]
    )  # no Timer: nothing is re-planned
    accuracy.clock_validation_start(trainer, None)
    accuracy.clock_validation_end(trainer, None)  # the sanity check: no point on the curve
    accuracy.clock_train_start(trainer, None)
    trainer.sanity_checking = False
    for step, dice in ((10, 0.5), (20, 0.75)):
        trainer.global_step, trainer.callback_metrics = step, {"val/dice": torch.tensor(dice), "train/loss": 1.0}
        accuracy.clock_validation_start(trainer, None)
        accuracy.clock_validation_end(trainer, None)
    curve = accuracy.clock_marks(trainer)["curve"]
    assert [(point["step"], point["val/dice"]) for point in curve] == [(10, 0.5), (20, 0.75)]
    assert "train/loss" not in curve[0]
    assert curve[1]["train_seconds"] <= curve[1]["wall_seconds"]


def test_replan_fills_the_time_left_and_moves_the_schedule_end() -> None:
    from lightning.pytorch.callbacks import Timer

    timer = Timer(duration={"seconds": 100})
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = SimpleNamespace(
        callbacks=[timer], max_steps=60, global_step=50, accumulate_grad_batches=1, num_training_batches=50,
        check_val_every_n_epoch=1, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(max_steps=60)),
        lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)],
    )  # fmt: skip
    timer.on_train_start(trainer, None)  # type: ignore[arg-type]
    marks = accuracy.clock_marks(trainer)
    start = time.perf_counter()
    marks["batch_ends"] = [start + 0.5 * batch for batch in range(50)]  # 0.5 s per batch
    marks["validation"] = [[start + 25.0, start + 35.0]]  # after the last batch: not in the pace
    module = SimpleNamespace(hparams={"warmup_fraction": 0.1, "final_lr_factor": 0.0})
    accuracy.replan(trainer, module, validation_seconds=10.0)
    # 95 s left to plan (5% margin of 100 s): k steps cost 0.5 k s plus 10 s per 50 steps -> 149 (74.5 + 20 s)
    total = trainer.fit_loop.epoch_loop.max_steps
    assert 50 + 147 <= total <= 50 + 149
    (replanned,) = marks["replans"]
    assert replanned["planned_steps_before"] == 60
    assert replanned["planned_steps"] == total
    factor = scheduler.lr_lambdas[0]
    assert factor(total) == 0.0
    assert 0.0 < factor(total // 2) < 1.0


def test_curve_rows_give_the_first_training_time_at_each_level() -> None:
    record = fake_record("cellseg", 0, 4)
    record["training"] = {
        "curve": [
            {"step": 100, "train_seconds": 60.0, "val/dice": 0.82, "val/f1@0.5": 0.55},
            {"step": 200, "train_seconds": 120.0, "val/dice": 0.86, "val/f1@0.5": 0.72},
            {"step": 300, "train_seconds": 180.0, "val/dice": 0.84, "val/f1@0.5": 0.75},
        ]
    }
    (row,) = accuracy.curve_rows([record, fake_record("otsu-watershed", None, 3)])
    assert row["reached"]["val/dice>=0.80"] == 60.0
    assert row["reached"]["val/dice>=0.85"] == 120.0  # the first pass at the level, not the last
    assert row["reached"]["val/dice>=0.90"] is None
    assert row["reached"]["val/f1@0.5>=0.70"] == 120.0
    assert row["final"] == {"val/dice": 0.84, "val/f1@0.5": 0.75}
    assert "| dsb2018 | cellseg | 0 | 3 | 0.840 | 0.750 | 1.0 | 2.0 | - |" in accuracy.markdown_curves([row])


@pytest.mark.parametrize(("fold", "channels", "expected"), [(1, [8, 16, 32], [8, 16, 32]), (2, [16, 32], [8, 16, 32])])
def test_monai_networks_take_the_unfolded_widths_of_a_folded_config(
    fold: int, channels: list[int], expected: list[int]
) -> None:
    from cellseg.training.module import SegmentationModule

    module = SegmentationModule(network={"channels": channels, "fold": fold}, distance_head=False)
    assert module.network.total_stride == 4
    accuracy.swap_network(module, "AttentionUnet")
    assert module.hparams["network"]["channels"] == expected
    assert module.network.total_stride == 4  # the same padding and tiling as cellseg's network
    assert module.network(torch.randn(1, 1, 16, 16)).shape == (1, 3, 16, 16)
