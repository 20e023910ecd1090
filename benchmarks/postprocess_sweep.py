r"""Which post-processing turns a trained model's probabilities into the best instances, on the validation split.

Predicts the probabilities of the accuracy benchmark's validation images once (cached as float16 ``.npz`` beside the
results, keyed by the checkpoint's SHA-256), then scores every ``InstanceConfig`` of a grid on them with
``match_instances``: seeds from the interior class or the distance head, foreground and seed thresholds, the seeds'
split height, the smallest seed. Tuning touches the validation split only (the same images the accuracy benchmark
reports), so the chosen setting is a tuned one: say so where it is reported. Run from the repository root::

    RUN=benchmarks/results/accuracy_runs/dsb2018/dsb2018/cellseg/seed1/lightning_logs/version_0
    .venv/bin/python benchmarks/postprocess_sweep.py --checkpoint $RUN/checkpoints/final.ckpt

Prints one markdown row per setting (mean over images; all images and per modality), best F1@0.5 first, and writes
them to ``benchmarks/results/postprocess_sweep.json``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
accuracy = importlib.import_module("benchmarks.accuracy")

METHODS = ("boundary", "distance")
FOREGROUND_THRESHOLDS = (0.5, 0.6)  # 0.4-0.6 moved F1@0.5 by under 0.01 on DSB2018
SEED_THRESHOLDS = {"boundary": (0.4, 0.5, 0.6, 0.7, 0.8), "distance": (0.4, 0.5, 0.6, 0.7)}
SPLIT_HEIGHTS = (0.0, 1.0, 1.5, 2.0)
MIN_SEED_SIZES = (8,)  # the default only: keeps the grid at 40 boundary settings (~7 minutes on 2 cores)
MIN_SIZES = (16,)  # the default only


def cached_probabilities(checkpoint: Path, data: Path, names: list[str], cache_dir: Path) -> dict[str, Any]:
    """``{name: (K, H, W) float16}`` for ``names``, predicted with the model's own tiling, cached per checkpoint."""
    from cellseg.inference.model import load_model
    from cellseg.inference.prepare import Preparation, prepare
    from cellseg.inference.tiling import TileConfig, predict_probabilities
    from cellseg.io import discover_pairs, read_image

    model = load_model(checkpoint, "cpu")
    cache = cache_dir / f"{model.sha256[:16]}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            if set(stored.files) >= set(names):
                return {name: stored[name] for name in names}
    pairs = discover_pairs(data).by_name
    preparation = Preparation.of(model)
    probabilities = {
        name: predict_probabilities(model, prepare(read_image(pairs[name].image), preparation), TileConfig()).astype(
            np.float16
        )
        for name in names
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez_compressed(partial, **probabilities)  # type: ignore[arg-type]
    partial.replace(cache)
    return probabilities


def settings(
    methods: tuple[str, ...] = METHODS,
    split_heights: tuple[float, ...] = SPLIT_HEIGHTS,
    min_seed_sizes: tuple[int, ...] = MIN_SEED_SIZES,
    min_sizes: tuple[int, ...] = MIN_SIZES,
    foreground_thresholds: tuple[float, ...] = FOREGROUND_THRESHOLDS,
    seed_thresholds: tuple[float, ...] | None = None,
) -> list[dict[str, Any]]:
    """The grid: every method x foreground threshold x seed threshold x split height x smallest seed x object.

    ``seed_thresholds`` replaces every method's own (``SEED_THRESHOLDS``) where given.
    """
    return [
        {"method": method, "foreground_threshold": foreground, "seed_threshold": seed, "split_height": height,
         "min_seed_size": min_seed, "min_size": min_size}
        for method in methods
        for foreground, seed, height, min_seed, min_size in itertools.product(
            foreground_thresholds, seed_thresholds or SEED_THRESHOLDS[method], split_heights, min_seed_sizes, min_sizes
        )
    ]  # fmt: skip


def sweep(
    probabilities: dict[str, Any], truths: dict[str, Any], subsets: dict[str, str], grid: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Score every setting; one row per setting with mean-over-images metrics for ``all`` and each subset.

    ``grid`` holds keyword arguments of ``settings`` other than ``methods`` (the split heights, smallest seeds and
    objects, foreground and seed thresholds); the defaults where it is ``None``.
    """
    from cellseg.evaluation.matching import match_instances
    from cellseg.evaluation.scoring import ImageEvaluation
    from cellseg.evaluation.summary import summarise
    from cellseg.inference.instances import DISTANCE_CHANNEL, InstanceConfig, instances_from_probabilities

    has_distance = len(next(iter(probabilities.values()))) > DISTANCE_CHANNEL
    rows = []
    for setting in settings(METHODS if has_distance else ("boundary",), **(grid or {})):
        config = InstanceConfig(**setting)
        evaluations = [
            ImageEvaluation(
                name, match_instances(truths[name], instances_from_probabilities(maps.astype(np.float32), config)),
                False, False, 0.0,
            )
            for name, maps in probabilities.items()
        ]  # fmt: skip
        summary = summarise(evaluations, subsets)
        scores = {"all": accuracy.metrics_of(summary["all"], "mean")}
        scores.update({group: accuracy.metrics_of(value, "mean") for group, value in summary["groups"].items()})
        rows.append({"setting": setting, "scores": scores})
        print(f"{setting}: F1@0.5 {scores['all']['f1_50']:.3f}", file=sys.stderr, flush=True)
    return sorted(rows, key=lambda row: -row["scores"]["all"]["f1_50"])


def markdown(rows: list[dict[str, Any]], subsets: list[str]) -> str:
    """Rows as a markdown table: the setting, then Dice / F1@0.5 / F1@0.75 / PQ@0.5 per subset."""
    header = "| seeds | foreground | seed thr. | split height | min seed | min size | " + " | ".join(
        f"{subset} Dice | {subset} F1@0.5 | {subset} F1@0.75 | {subset} PQ" for subset in subsets
    )
    lines = [header + " |", "|---|---|---|---|---|---|" + "---|---|---|---|" * len(subsets)]
    for row in rows:
        s = row["setting"]
        cells = " | ".join(
            " | ".join(f"{row['scores'][subset][k]:.3f}" for k in ("dice", "f1_50", "f1_75", "pq_50"))
            for subset in subsets
        )
        lines.append(
            f"| {s['method']} | {s['foreground_threshold']} | {s['seed_threshold']} | {s.get('split_height', 0.0)} | "
            f"{s['min_seed_size']} | {s.get('min_size', 16)} | {cells} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Predict (or read the cache), sweep, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a cellseg checkpoint (final.ckpt of a run)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_train")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "postprocess_sweep.json")
    parser.add_argument("--top", type=int, default=15, help="rows printed (all are written)")
    parser.add_argument("--split-heights", type=float, nargs="+", default=SPLIT_HEIGHTS, help="pixels; 0 = off")
    parser.add_argument("--min-seed-sizes", type=int, nargs="+", default=MIN_SEED_SIZES, help="pixels")
    parser.add_argument("--min-sizes", type=int, nargs="+", default=MIN_SIZES, help="smallest object, pixels")
    parser.add_argument("--foreground-thresholds", type=float, nargs="+", default=FOREGROUND_THRESHOLDS)
    parser.add_argument("--seed-thresholds", type=float, nargs="+", help="for every method (default: each its own)")
    arguments = parser.parse_args(argv)
    from cellseg.io import discover_pairs, read_mask

    dataset = accuracy.dataset_name(arguments.data)
    split = accuracy.ensure_split(arguments.data, dataset)
    names = list(split["validation"])
    subsets = accuracy.subsets_of(arguments.data, dataset)
    started = time.perf_counter()
    probabilities = cached_probabilities(
        arguments.checkpoint, arguments.data, names, arguments.results.parent / "probabilities"
    )
    predicted = time.perf_counter()
    pairs = discover_pairs(arguments.data).by_name
    truths = {name: read_mask(pairs[name].mask) for name in names}
    grid = {
        "split_heights": tuple(arguments.split_heights), "min_seed_sizes": tuple(arguments.min_seed_sizes),
        "min_sizes": tuple(arguments.min_sizes), "foreground_thresholds": tuple(arguments.foreground_thresholds),
        "seed_thresholds": tuple(arguments.seed_thresholds) if arguments.seed_thresholds else None,
    }  # fmt: skip
    rows = sweep(probabilities, truths, {name: subsets[name] for name in names}, grid)
    record = {
        "dataset": dataset, "checkpoint": str(arguments.checkpoint), "images": len(names),
        "predict_seconds": predicted - started, "sweep_seconds": time.perf_counter() - predicted, "rows": rows,
    }  # fmt: skip
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(arguments.results.read_text()) if arguments.results.exists() else []
    previous = [r for r in previous if r["checkpoint"] != record["checkpoint"]] + [record]
    partial = arguments.results.with_suffix(".partial")
    partial.write_text(json.dumps(previous, indent=1))
    partial.replace(arguments.results)
    present = ["all", *sorted({subsets[name] for name in names})]
    print(markdown(rows[: arguments.top], present))


if __name__ == "__main__":
    main()
