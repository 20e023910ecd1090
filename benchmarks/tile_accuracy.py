r"""How the sliding window's tiles change a trained model's scores on the validation split.

Fewer pixels computed would make prediction faster: larger tiles at the same overlap share fewer pixels per image
side, and less overlap computes fewer twice. Whether the scores allow it is measured here: every ``--setting``
(``TILE/OVERLAP`` for tiles of ``TILE`` pixels sharing ``OVERLAP`` of a tile, or ``fitTILE/OVERLAP`` for
``cellseg predict --max-tile TILE``'s fitted tiles) segments the accuracy benchmark's validation images through
``segment_image``, as ``cellseg predict`` does, and scores them with ``match_instances`` (means over images, all and
per modality). Run from the repository root::

    .venv/bin/python benchmarks/tile_accuracy.py --checkpoint RUN/checkpoints/final.ckpt --setting 128/0.25 \
        --setting 128/0.125 --setting 256/0.125 --setting 256/0.25 --setting fit512/0.25

Prints one markdown row per setting and appends the rows to ``benchmarks/results/tile_accuracy.json``. The
validation split is what the accuracy benchmark reports, so a setting chosen here is a tuned one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
accuracy = importlib.import_module("benchmarks.accuracy")
RESULTS = ROOT / "benchmarks" / "results" / "tile_accuracy.json"
METRICS = ("dice", "f1_50", "f1_75")


def tile_config(setting: str) -> Any:
    """The ``TileConfig`` of ``TILE/OVERLAP`` or ``fitTILE/OVERLAP``."""
    from cellseg.inference.tiling import TileConfig

    try:
        size, overlap = setting.split("/")
        if size.startswith("fit"):
            return TileConfig(max_tile=int(size[3:]), overlap=float(overlap))
        return TileConfig(tile_size=(int(size), int(size)), overlap=float(overlap))
    except ValueError:
        raise ValueError(f"setting {setting!r}: give TILE/OVERLAP or fitTILE/OVERLAP, e.g. 128/0.25") from None


def score_setting(
    model: Any, images: dict[str, Any], truths: dict[str, Any], subsets: dict[str, str], setting: str
) -> dict[str, Any]:
    """Mean Dice, F1@0.5 and F1@0.75 over the images, all and per modality, with ``setting``'s tiles."""
    from cellseg.evaluation.matching import match_instances
    from cellseg.inference.segment import segment_image

    started = time.perf_counter()
    rows = []
    for name, prepared in images.items():
        scores = match_instances(truths[name], segment_image(model, prepared, tile_config(setting)).labels)
        rows.append((subsets[name], scores.dice, scores.at(0.5).f1, scores.at(0.75).f1))
    result: dict[str, Any] = {"setting": setting, "seconds": round(time.perf_counter() - started, 1)}
    for group in ["all", *sorted(set(subsets.values()))]:
        chosen = [row for row in rows if group == "all" or row[0] == group]
        if chosen:
            result[group] = {
                metric: round(float(np.mean([row[1 + index] for row in chosen])), 4)
                for index, metric in enumerate(METRICS)
            } | {"images": len(chosen)}
    return result


def main(argv: list[str] | None = None) -> None:
    """Score every setting; print the table and append the rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a cellseg checkpoint (final.ckpt of a run)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_train")
    parser.add_argument("--setting", action="append", required=True, help="TILE/OVERLAP or fitTILE/OVERLAP")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON results file (appended to)")
    arguments = parser.parse_args(argv)
    from cellseg.inference.memory import keep_freed_memory
    from cellseg.inference.model import load_model
    from cellseg.inference.prepare import Preparation, prepare
    from cellseg.io import discover_pairs, read_image, read_mask

    for setting in arguments.setting:
        tile_config(setting)  # a malformed setting fails before the minutes of predicting
    keep_freed_memory()
    dataset = accuracy.dataset_name(arguments.data)
    names = list(accuracy.ensure_split(arguments.data, dataset)["validation"])
    subsets = accuracy.subsets_of(arguments.data, dataset)
    pairs = discover_pairs(arguments.data).by_name
    model = load_model(arguments.checkpoint, "cpu")
    preparation = Preparation.of(model)
    images = {name: prepare(read_image(pairs[name].image), preparation) for name in names}
    truths = {name: read_mask(pairs[name].mask) for name in names}
    groups = ["all", *sorted({subsets[name] for name in names})]
    print(f"{dataset}, {len(names)} validation images, {arguments.checkpoint}")
    print("| tiles | " + " | ".join(f"{group} Dice | {group} F1@0.5 | {group} F1@0.75" for group in groups) + " | s |")
    print("|---|" + "---|---|---|" * len(groups) + "---|")
    records = []
    for setting in arguments.setting:
        result = score_setting(model, images, {n: truths[n] for n in names}, {n: subsets[n] for n in names}, setting)
        cells = " | ".join(
            " | ".join(f"{result[group][metric]:.4f}" for metric in METRICS) if group in result else "- | - | -"
            for group in groups
        )
        print(f"| {setting} | {cells} | {result['seconds']:.0f} |", flush=True)
        records.append(
            result | {"dataset": dataset, "checkpoint": str(arguments.checkpoint), "date": time.strftime("%Y-%m-%d")}
        )
    previous = json.loads(arguments.results.read_text()) if arguments.results.exists() else []
    arguments.results.parent.mkdir(parents=True, exist_ok=True)
    partial = arguments.results.with_suffix(".partial")
    partial.write_text(json.dumps(previous + records, indent=1) + "\n")
    partial.replace(arguments.results)


if __name__ == "__main__":
    main()
