"""Tiles per forward pass: cellseg's sliding window at several batch sizes against MONAI's, alternated in one process.

On a shared host the speed of a whole process moves by up to a third from one process to the next (the same MONAI
pass ran at 1.02 and 1.55 Mpx/s ten minutes apart), more than a batch size changes it, so ``predict_throughput.py``'s
one-process-per-case design cannot resolve it. Here every setting runs in the same process, in turn, for
``--rounds`` rounds; the table gives each setting's median and its ratio to MONAI's ``AttentionUnet`` (4 tiles per
pass, as ``predict_throughput.py``'s reference) of the same rounds. Probabilities (the batch size changes nothing
after the sliding window); ``--instances`` adds ``cellseg predict``'s whole path (``segment_image``: blocks,
probabilities, instances) at the default batch, to set the ratio with instances in the same rounds (use a trained
``--checkpoint``: random weights find a handful of objects, not a trained model's thousands).

Settings (``--batches``): ``cellseg bN`` is ``predict_probabilities`` with ``TileConfig(batch_size=N)`` on the
2048 x 2048 synthetic field of ``predict_throughput.py`` (normalised as ``cellseg predict`` does); ``auto`` is
``cellseg predict``'s default (``tile_batch_for``); ``--monai-batches`` adds MONAI at other batch sizes. The largest
difference between the settings' probabilities is printed too (they must agree to float rounding). MONAI's network
has the checkpoint's widths unfolded (8-128 for a fold-2 16-128 model), as in ``model_speed.py``, and the process
keeps freed memory (``keep_freed_memory``, as ``cellseg predict`` does) for every setting alike (since 2026-12-04;
before, glibc's defaults and the folded widths)::

    .venv/bin/python benchmarks/tile_batch.py
    .venv/bin/python benchmarks/tile_batch.py --batches 4 8 16 auto --rounds 5 --checkpoint RUN/checkpoints/final.ckpt

Records are appended to ``benchmarks/results/tile_batch.json`` (one per setting and run).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.inference.memory import keep_freed_memory
from cellseg.inference.model import load_model
from cellseg.inference.segment import BlockConfig, segment_image
from cellseg.inference.tiling import TileConfig, predict_probabilities, tile_batch_for
from cellseg.models.unet import unfolded_channels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
throughput = importlib.import_module("benchmarks.predict_throughput")  # the same synthetic field and MONAI reference

RESULTS = Path(__file__).resolve().parent / "results" / "tile_batch.json"
AUTO = "auto"
WITH_INSTANCES = "cellseg auto + instances"
MONAI_REFERENCE_BATCH = 4


def main() -> None:
    """Alternate the settings for ``--rounds`` rounds; print the table and append the records."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", nargs="+", default=["4", "8", "16", AUTO], help="cellseg's tiles per pass")
    parser.add_argument("--monai-batches", type=int, nargs="*", default=[], help="MONAI at more batch sizes")
    parser.add_argument("--instances", action="store_true", help="also cellseg predict's whole path (instances)")
    parser.add_argument("--size", type=int, default=2048, help="square image side in pixels")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes of every setting, alternated")
    parser.add_argument(
        "--channels", type=int, nargs="+", default=throughput.CHANNELS, help="widths of a random-init model"
    )
    parser.add_argument("--checkpoint", type=Path, help="a trained cellseg checkpoint instead of random weights")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON results file (appended to)")
    arguments = parser.parse_args()
    for batch in arguments.batches:
        if batch != AUTO and not (batch.isdigit() and int(batch) >= 1):
            parser.error(f"--batches: {batch!r} is neither a whole number of at least 1 nor {AUTO!r}.")
    kept = keep_freed_memory()  # as cellseg predict (and model_speed.py) does, for every setting alike
    with tempfile.TemporaryDirectory(prefix="cellseg-tile-batch-") as scratch:
        checkpoint = arguments.checkpoint or throughput.write_random_checkpoint(
            Path(scratch) / "random.ckpt", arguments.channels, throughput.TILE
        )
        model = load_model(checkpoint)
    network = model.module.hparams["network"]
    channels = [int(width) for width in network["channels"]]
    monai_channels = unfolded_channels(channels, int(network.get("fold", 1)))  # as model_speed.py: 8-128 for fold 2
    tile = model.tile_size
    sample = generate_sample(
        SyntheticConfig(shape=(throughput.SAMPLE_SIDE, throughput.SAMPLE_SIDE), n_nuclei=throughput.SAMPLE_NUCLEI),
        seed=0,
    )
    image = throughput.prepared_input(sample.image, arguments.size, model)
    monai = throughput.monai_network(monai_channels, torch.device("cpu"))
    settings: dict[str, Any] = {f"monai b{MONAI_REFERENCE_BATCH}": MONAI_REFERENCE_BATCH}
    settings |= {f"monai b{batch}": batch for batch in arguments.monai_batches}
    for batch in arguments.batches:
        settings[f"cellseg {AUTO if batch == AUTO else 'b' + batch}"] = None if batch == AUTO else int(batch)
    if arguments.instances:
        settings[WITH_INSTANCES] = None
    objects: list[int] = []

    def run(name: str) -> np.ndarray:
        batch = settings[name]
        if name.startswith("monai"):
            probabilities: torch.Tensor = throughput.monai_probabilities(
                monai, image, tile, throughput.OVERLAP, "32", batch
            )
            return probabilities[0].numpy()
        if name == WITH_INSTANCES:  # what cellseg predict computes: blocks, probabilities, instances
            segmentation = segment_image(model, image, TileConfig(), None, BlockConfig())
            objects.append(segmentation.count)
            return segmentation.labels
        return predict_probabilities(model, image, TileConfig(batch_size=batch))

    cellseg_outputs = {name: run(name) for name in settings}  # warm-up: every setting once, untimed
    first = next(name for name in settings if name.startswith("cellseg b") or name == f"cellseg {AUTO}")
    largest_difference = max(
        float(np.abs(output - cellseg_outputs[first]).max())
        for name, output in cellseg_outputs.items()
        if name.startswith("cellseg") and name != WITH_INSTANCES
    )
    del cellseg_outputs
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(arguments.rounds):
        for name in settings:
            start = time.perf_counter()
            run(name)
            seconds[name].append(time.perf_counter() - start)
    megapixels = arguments.size**2 / 1e6
    reference = statistics.median(seconds[f"monai b{MONAI_REFERENCE_BATCH}"])
    label = str(arguments.checkpoint) if arguments.checkpoint else "random-init"
    print(f"model: {label}; widths {channels}, MONAI's {monai_channels}; tile {list(tile)}, "
          f"overlap {throughput.OVERLAP}; "
          f"{arguments.size} px field; {arguments.rounds} alternated rounds, {torch.get_num_threads()} threads; "
          f"cellseg settings agree to {largest_difference:.1e}"
          + (f"; {objects[-1]} objects" if objects else ""))  # fmt: skip
    print("| setting | tiles per pass | median s | Mpx/s | vs MONAI b4 | passes s |")
    print("|---|---|---|---|---|---|")
    records = []
    date = time.strftime("%Y-%m-%d")
    for name, times in seconds.items():
        median = statistics.median(times)
        batch = settings[name] or tile_batch_for(TileConfig(), tile)
        print(f"| {name} | {batch} | {median:.2f} | {megapixels / median:.3f} | {reference / median:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times)} |")  # fmt: skip
        records.append({
            "setting": name, "tiles_per_pass": batch, "seconds": median, "seconds_all": times,
            "megapixels_per_s": megapixels / median, "vs_monai": reference / median, "size": arguments.size,
            "channels": channels, "monai_channels": monai_channels, "tile": list(tile), "model": label,
            "threads": torch.get_num_threads(), "kept_freed_memory": kept,
            "largest_difference": largest_difference, "date": date,
            "objects": objects[-1] if name == WITH_INSTANCES else None,
        })  # fmt: skip
    throughput.append_records(arguments.results, records)


if __name__ == "__main__":
    main()
