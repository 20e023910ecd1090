"""Which training target separates touching nuclei best: the boundary class alone, or boundary + distance map?

For each (target, seed) case, trains ``cellseg fit --config configs/dsb2018.yaml`` for a fixed number of steps
(steps, not wall clock, so that other work on the machine cannot skew the comparison), with

* ``boundary``: the 3-class target (background / interior / boundary) alone;
* ``distance``: the same plus a distance head (each object's distance to its border, 1 at its centre),

then predicts every validation image of the run's own ``split.json`` whole, turns the probabilities into instances
with each seeding method and seed threshold of ``cellseg.inference.instances``, and scores them with
``cellseg.evaluation.match_instances``: foreground Dice, F1 at IoU 0.5 and 0.75, F1 averaged over IoU 0.5-0.9,
per image (mean) and pooled over all objects, for all images and for fluorescence alone (``metadata.csv``).

Resumable case by case: each case is appended to ``benchmarks/results/target_study.json`` when done and skipped on a
rerun; ``--case distance:1`` runs one; ``--rescore`` scores the trained cases again after a change to the
post-processing. Run from the repository root::

    .venv/bin/python benchmarks/target_study.py --steps 400
    .venv/bin/python benchmarks/target_study.py --table      # print the table of what is there
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from cellseg.data.intensity import convert_channels, percentile_normalise
from cellseg.evaluation.matching import IOU_THRESHOLDS, MatchCounts, match_instances
from cellseg.inference.instances import InstanceConfig, instances_from_probabilities
from cellseg.io import discover_pairs, read_image, read_mask
from cellseg.training.module import SegmentationModule

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "target_study.json"
RUNS = ROOT / "benchmarks" / "results" / "target_study"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dsb2018_train"
TARGETS = {"boundary": False, "distance": True}  # target name -> distance_head
SEEDS = (0, 1)
PATCH = 128
BATCH = 8
SEED_THRESHOLDS = {"boundary": (0.3, 0.4, 0.5, 0.6, 0.7), "distance": (0.2, 0.3, 0.4, 0.5, 0.6)}
F1_RANGE = tuple(t for t in IOU_THRESHOLDS if t <= 0.9)


def train(target: str, seed: int, steps: int, data: Path) -> tuple[Path, float]:
    """Train one case with ``cellseg fit`` in a subprocess; return its last checkpoint and the seconds it took."""
    run = RUNS / f"{target}-{seed}"
    command = [
        str(Path(sys.executable).parent / "cellseg"), "fit", "--config", str(ROOT / "configs" / "dsb2018.yaml"),
        "--data.data_dir", str(data), "--model.distance_head", str(TARGETS[target]).lower(),
        "--seed_everything", str(seed), "--trainer.max_steps", str(steps), "--trainer.max_epochs", "1",
        "--data.patch_size", f"[{PATCH},{PATCH}]", "--data.batch_size", str(BATCH),
        "--data.patches_per_epoch", str(steps * BATCH), "--trainer.default_root_dir", str(run),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return last_checkpoint(target, seed), time.perf_counter() - start


def last_checkpoint(target: str, seed: int) -> Path:
    """The last checkpoint of the newest run of a case."""
    logs = RUNS / f"{target}-{seed}" / "lightning_logs"
    versions = sorted(logs.glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
    return versions[-1] / "checkpoints" / "last.ckpt"


def whole_image_probabilities(module: SegmentationModule, image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``(K, H, W)`` probabilities for a normalised ``(C, H, W)`` image, padded by reflection to the net's stride."""
    stride = module.network.total_stride
    height, width = image.shape[1:]
    tensor = torch.from_numpy(np.ascontiguousarray(image))[None]
    padded = F.pad(tensor, (0, -width % stride, 0, -height % stride), mode="reflect")
    with torch.inference_mode():
        probabilities = module.probabilities(module(padded))[0, :, :height, :width]
    return probabilities.numpy()


def variants(target: str) -> list[InstanceConfig]:
    """The instance configurations to score for a model trained with ``target``."""
    methods = ["boundary"] if target == "boundary" else ["boundary", "distance"]
    return [
        InstanceConfig(method=method, seed_threshold=threshold)  # type: ignore[arg-type]
        for method in methods
        for threshold in SEED_THRESHOLDS[method]
    ]


def variant_name(config: InstanceConfig) -> str:
    """A short name such as ``distance@0.4``."""
    return f"{config.method}@{config.seed_threshold}"


def evaluate(checkpoint: Path, data: Path, target: str) -> list[dict[str, Any]]:
    """Score every instance variant on the run's validation images; one row per (image, variant)."""
    module = SegmentationModule.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    split = json.loads((checkpoint.parents[1] / "split.json").read_text())
    modality = {row["image_id"]: row["modality_guess"] for row in csv.DictReader((data / "metadata.csv").open())}
    pairs = discover_pairs(data).by_name
    rows: list[dict[str, Any]] = []
    for name in split["validation"]:
        image = read_image(pairs[name].image).array
        prepared = convert_channels(
            percentile_normalise(image, tuple(module.hparams["percentiles"])),
            module.network.in_channels,
            module.hparams["channel_order"],
        )
        probabilities = whole_image_probabilities(module, prepared)
        truth = read_mask(pairs[name].mask)
        for config in variants(target):
            scores = match_instances(truth, instances_from_probabilities(probabilities, config))
            rows.append(
                {
                    "image": name,
                    "modality": modality.get(name, "unknown"),
                    "variant": variant_name(config),
                    "dice": scores.dice,
                    "counts": [[c.threshold, c.tp, c.fp, c.fn] for c in scores.counts],
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per variant and image set (all, fluorescence): mean Dice, mean and pooled F1@0.5, F1@0.75, mean F1 0.5-0.9."""
    summary: dict[str, dict[str, float]] = {}
    for subset in ("all", "fluorescence"):
        chosen = [row for row in rows if subset == "all" or row["modality"] == subset]
        for variant in dict.fromkeys(row["variant"] for row in chosen):
            of_variant = [row for row in chosen if row["variant"] == variant]
            per_image = [{t: MatchCounts(t, tp, fp, fn, 0.0, tp + fn, tp + fp) for t, tp, fp, fn in r["counts"]}
                         for r in of_variant]  # fmt: skip
            pooled = {t: sum((image[t] for image in per_image[1:]), per_image[0][t]) for t in per_image[0]}
            summary[f"{subset}/{variant}"] = {
                "images": len(of_variant),
                "dice": float(np.mean([row["dice"] for row in of_variant])),
                "f1_50": float(np.mean([image[0.5].f1 for image in per_image])),
                "f1_75": float(np.mean([image[0.75].f1 for image in per_image])),
                "f1_50_90": float(np.mean([np.mean([image[t].f1 for t in F1_RANGE]) for image in per_image])),
                "pooled_f1_50": pooled[0.5].f1,
            }
    return summary


def run_case(target: str, seed: int, steps: int, data: Path) -> dict[str, Any]:
    """Train and score one (target, seed) case."""
    checkpoint, train_seconds = train(target, seed, steps, data)
    start = time.perf_counter()
    rows = evaluate(checkpoint, data, target)
    return {
        "target": target, "seed": seed, "steps": steps, "patch": PATCH, "batch": BATCH,
        "train_seconds": train_seconds, "evaluate_seconds": time.perf_counter() - start,
        "summary": summarise(rows), "date": time.strftime("%Y-%m-%d"), "data": str(data),
    }  # fmt: skip


def print_table(records: list[dict[str, Any]]) -> None:
    """Each target x seeding method at its best seed threshold (by mean F1@0.5 over seeds), mean and half-range."""
    print("| target | instances from | seed thr. | subset | Dice | F1@0.5 | pooled F1@0.5 | F1@0.75 | F1 0.5-0.9 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for target in TARGETS:
        cases = [r for r in records if r["target"] == target]
        if not cases:
            continue
        keys = [key for key in cases[0]["summary"] if all(key in case["summary"] for case in cases)]
        for method in ("boundary", "distance"):
            for subset in ("all", "fluorescence"):
                candidates = [key for key in keys if key.startswith(f"{subset}/{method}@")]
                if not candidates:
                    continue
                best = max(candidates, key=lambda key: np.mean([c["summary"][key]["f1_50"] for c in cases]))
                cells = " | ".join(
                    spread([case["summary"][best][metric] for case in cases])
                    for metric in ("dice", "f1_50", "pooled_f1_50", "f1_75", "f1_50_90")
                )
                seeds = ", ".join(str(case["seed"]) for case in cases)
                print(f"| {target} (seeds {seeds}) | {method} | {best.split('@')[1]} | {subset} | {cells} |")


def spread(values: list[float]) -> str:
    """Mean ± half the range, e.g. ``0.912 ± 0.004``."""
    return f"{np.mean(values):.3f} ± {(max(values) - min(values)) / 2:.3f}"


def save(records: list[dict[str, Any]]) -> None:
    """Write the results JSON atomically."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".tmp")
    temporary.write_text(json.dumps(records, indent=1))
    temporary.replace(RESULTS)


def main() -> None:
    """Run the cases missing from the results, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DSB2018-like folder with metadata.csv")
    parser.add_argument("--steps", type=int, default=400, help="training steps per case")
    parser.add_argument("--case", help="run one case, e.g. distance:1")
    parser.add_argument("--table", action="store_true", help="only print the table of the results so far")
    parser.add_argument("--rescore", action="store_true", help="score the trained cases again (new post-processing)")
    arguments = parser.parse_args()
    records: list[dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if arguments.rescore:
        for record in records:
            print(f"scoring {record['target']}:{record['seed']} again ...", flush=True)
            checkpoint = last_checkpoint(record["target"], record["seed"])
            record["summary"] = summarise(evaluate(checkpoint, Path(record["data"]), record["target"]))
            save(records)
    elif not arguments.table:
        if not arguments.data.is_dir():
            sys.exit(f"{arguments.data}: no such folder; give the DSB2018 training data with --data.")
        cases = [(target, seed) for seed in SEEDS for target in TARGETS]
        if arguments.case:
            target, seed = arguments.case.split(":")
            cases = [(target, int(seed))]
        for target, seed in cases:
            if any(r["target"] == target and r["seed"] == seed and r["steps"] == arguments.steps for r in records):
                continue
            print(f"training and scoring {target}:{seed} ({arguments.steps} steps) ...", flush=True)
            records.append(run_case(target, seed, arguments.steps, arguments.data))
            save(records)
    print_table([r for r in records if r["steps"] == arguments.steps])


if __name__ == "__main__":
    main()
