"""The accuracy benchmark's results folder: one file per case, replaced by a rerun, read back oldest first."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

# Imported by name at run time (benchmarks/ has no __init__.py; see test_accuracy_split.py).
accuracy = importlib.import_module("benchmarks.accuracy")


def record(
    system: str, seed: int | None, date: str, dice: float, config: str = "configs/dsb2018.yaml"
) -> dict[str, Any]:
    """A record with the fields a case key reads and one score."""
    return {
        "dataset": "dsb2018", "system": system, "seed": seed, "budget_minutes": None if seed is None else 20.0,
        "limit_val": None, "config": config, "date": date, "scores": {"all": {"dice": dice}},
    }  # fmt: skip


def test_each_case_gets_its_own_file_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    results = tmp_path / "accuracy"
    first = accuracy.save_record(results, record("cellseg", 2, "2026-12-02T12:00:00+00:00", 0.9123456789))
    accuracy.save_record(results, record("monai-UNet", 0, "2026-12-02T11:00:00+00:00", 0.9))
    accuracy.save_record(results, record("otsu-watershed", None, "2026-12-02T10:00:00+00:00", 0.7))
    assert first.name.startswith("dsb2018-dsb2018-cellseg-seed2-20min-")
    assert len(list(results.glob("*.json"))) == 3

    rerun = accuracy.save_record(results, record("cellseg", 2, "2026-12-02T13:00:00+00:00", 0.95))
    assert rerun == first
    loaded = accuracy.load_results(results)
    assert [(r["system"], r["scores"]["all"]["dice"]) for r in loaded] == [
        ("otsu-watershed", 0.7), ("monai-UNet", 0.9), ("cellseg", 0.95),
    ]  # fmt: skip
    assert not list(results.glob("*.tmp"))


def test_floats_are_kept_to_six_significant_digits(tmp_path: Path) -> None:
    path = accuracy.save_record(tmp_path, record("cellseg", 0, "2026-12-02T12:00:00+00:00", 0.9123456789))
    assert json.loads(path.read_text())["scores"]["all"]["dice"] == 0.912346


def test_configs_with_one_file_name_in_two_folders_are_two_cases(tmp_path: Path) -> None:
    default = record("cellseg", 0, "2026-12-02T12:00:00+00:00", 0.9, config="configs/dsb2018.yaml")
    variant = record("cellseg", 0, "2026-12-02T12:00:00+00:00", 0.8, config="tuning/dsb2018.yaml")
    assert accuracy.case_file(tmp_path, default) != accuracy.case_file(tmp_path, variant)


def test_the_older_single_file_list_is_read_but_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "accuracy.json"
    listed.write_text(json.dumps([record("cellseg", 0, "2026-12-02T12:00:00+00:00", 0.9)]))
    assert [r["system"] for r in accuracy.load_results(listed)] == ["cellseg"]
    assert accuracy.load_results(tmp_path / "not-there") == []
    with pytest.raises(SystemExit, match="single-file results list"):
        accuracy.main(["--results", str(listed), "--data", str(tmp_path)])


ZEN3_FLAGS = "fpu sse2 avx fma avx2 bmi2"
ZEN4_FLAGS = ZEN3_FLAGS + " avx512f avx512bw avx512_bf16"


def cpuinfo(tmp_path: Path, model: str, flags: str) -> Path:
    """A two-processor ``/proc/cpuinfo`` of a VM that names only the vendor line."""
    block = f"processor\t: {{n}}\nmodel name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: {model}\nflags\t\t: {flags}\n"
    path = tmp_path / f"cpuinfo-{model}"
    path.write_text(block.format(n=0) + "\n" + block.format(n=1))
    return path


def test_cpu_model_tells_two_generations_behind_one_vendor_name_apart(tmp_path: Path) -> None:
    zen3 = accuracy.cpu_model(cpuinfo(tmp_path, "1", ZEN3_FLAGS))
    zen4 = accuracy.cpu_model(cpuinfo(tmp_path, "17", ZEN4_FLAGS))
    assert zen3 == "AMD EPYC (family 25 model 1, AVX2)"
    assert zen4 == "AMD EPYC (family 25 model 17, AVX-512)"


def test_cpu_model_without_cpuinfo_falls_back_to_the_platform(tmp_path: Path) -> None:
    assert accuracy.cpu_model(tmp_path / "absent")  # non-empty, whatever the platform calls itself


def test_a_trained_case_from_another_machine_does_not_count_as_done_here() -> None:
    zen3 = "AMD EPYC (family 25, AVX2)"
    case = record("cellseg", 0, "2026-12-02T12:00:00+00:00", 0.9) | {"machine": {"cpu": zen3, "gpu": None}}
    assert accuracy.other_machine(case, zen3) is None
    message = accuracy.other_machine(case, "AMD EPYC (family 25 model 17, AVX-512)")
    assert message is not None
    assert zen3 in message
    assert "--results" in message
    assert accuracy.other_machine(record("cellseg", 0, "2026-12-02", 0.9), zen3) is not None  # machine not noted
    otsu = record("otsu-watershed", None, "2026-12-02T12:00:00+00:00", 0.7) | {"machine": {"cpu": zen3}}
    assert accuracy.other_machine(otsu, "Intel Xeon") is None  # no budget: the same case anywhere


COMMITTED_RECORDS = sorted(Path(accuracy.ROOT / "benchmarks" / "results").glob("accuracy*/*.json"))


@pytest.mark.parametrize("path", COMMITTED_RECORDS, ids=lambda path: f"{path.parent.name}/{path.stem[:48]}")
def test_a_committed_record_names_the_config_that_builds_its_network(path: Path) -> None:
    """A config renamed after its cases ran (``config_renamed``) must still build the network each record trained."""
    import yaml

    from cellseg.models.unet import unfolded_channels

    result = json.loads(path.read_text())
    config = accuracy.ROOT / result["config"]
    assert config.is_file(), f"{path.name}: {result['config']} is not there; rename the record's config with it"
    if result["system"] == accuracy.DETERMINISTIC:
        return
    options = dict(yaml.safe_load(config.read_text())["model"]["network"])
    trained = result["network"]["hyper_parameters"]
    if result["system"] == "cellseg":
        expected = {key: value for key, value in trained.items() if key != "out_channels"}
        assert options == expected, f"{path.name}: {result['config']} builds {options}, the case trained {expected}"
    else:
        widths = unfolded_channels(options["channels"], int(options.get("fold", 1)))
        assert trained["channels"] == widths, f"{path.name}: {result['config']} gives MONAI {widths}"
