"""Short runs of the real training pipeline, to compare config variants by the step rather than by the clock.

Each run is ``cellseg fit`` as the accuracy benchmark runs it (cellseg's LightningCLI, ``SegmentationModule``,
``CellDataModule``, the Trainer; for ``--system monai-*`` MONAI's network swapped in, without the distance head) from
``configs/DATASET.yaml`` plus ``--config`` overrides, for ``--steps`` optimiser steps in one epoch, validated once at
the end on every third image of the accuracy benchmark's validation split (39 DSB2018 images, all modalities).
Steps, not wall clock: the variants are compared at equal work, and other load on the machine changes the seconds,
not the scores. Each run appends one JSON line to ``benchmarks/results/short_runs.jsonl``. Run from the repository
root::

    .venv/bin/python benchmarks/short_runs.py --name default
    .venv/bin/python benchmarks/short_runs.py --name monai-au --system monai-AttentionUnet
    .venv/bin/python benchmarks/short_runs.py --name no-distance -- --model.distance_head false
    .venv/bin/python benchmarks/short_runs.py --name zero-init -- --config variant.yaml

Arguments after ``--`` go to the CLI as they are (``--config FILE`` to override the network, whose dict is replaced
whole). Scores are the pooled ``val/dice`` and the instance scores ``SegmentationModule`` logs (``val/f1@0.5`` etc.,
through cellseg's post-processing for every system).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
accuracy = importlib.import_module("benchmarks.accuracy")

DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "short_runs.jsonl"
VALIDATION_EVERY = 3  # every third validation image: 39 of DSB2018's 116, all modalities


def run(name: str, system: str, steps: int, data: Path, seed: int, extra: list[str], runs: Path) -> dict[str, Any]:
    """Train one variant for ``steps`` steps, validate once, and return its record."""
    dataset = accuracy.dataset_name(data)
    split = accuracy.ensure_split(data, dataset)
    run_dir = runs / name
    run_dir.mkdir(parents=True, exist_ok=True)
    override = run_dir / "validation_names.yaml"
    override.write_text(yaml.safe_dump({"data": {"validation_names": split["validation"][::VALIDATION_EVERY]}}))
    arguments = [
        "--config", str(ROOT / "configs" / f"{dataset}.yaml"), "--config", str(override), *extra,
        "--data.data_dir", str(data), "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false",
        "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1", "--trainer.default_root_dir", str(run_dir),
    ]  # fmt: skip
    if system != "cellseg":
        arguments += ["--model.distance_head", "false"]
    cli = accuracy.build_cli(system, arguments)
    batches = steps * int(cli.trainer.accumulate_grad_batches)
    hparams = cli.datamodule.hparams
    hparams["patches_per_epoch"] = batches * hparams["batch_size"]  # one epoch: one validation, at the end
    started = time.perf_counter()
    with accuracy.quiet_fit():
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    metrics = {key: float(value) for key, value in cli.trainer.callback_metrics.items()}
    return {
        "name": name, "system": system, "dataset": dataset, "steps": steps, "seed": seed, "extra": extra,
        "validation_images": len(split["validation"][::VALIDATION_EVERY]),
        "seconds": time.perf_counter() - started, "machine": accuracy.machine(), "git": accuracy.git_state(),
        **metrics,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run one variant, append its record and print its scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the variant's name in the results")
    parser.add_argument("--system", choices=accuracy.TRAINED, default="cellseg")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_train")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("extra", nargs="*", help="CLI arguments after --, passed on")
    arguments = parser.parse_args(argv)
    runs = arguments.results.parent / "short_runs"
    record = run(
        arguments.name, arguments.system, arguments.steps, arguments.data, arguments.seed, arguments.extra, runs
    )
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    with arguments.results.open("a") as results:
        results.write(json.dumps(record) + "\n")
    print(
        f"{record['name']}: {record['steps']} steps, {record['seconds']:.0f} s, val/dice {record['val/dice']:.3f}, "
        f"val/f1@0.5 {record['val/f1@0.5']:.3f}, val/f1@0.75 {record['val/f1@0.75']:.3f}, "
        f"val/pq@0.5 {record['val/pq@0.5']:.3f}"
    )


if __name__ == "__main__":
    main()
