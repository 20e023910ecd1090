"""Trained cellseg models against each other and MONAI's ``AttentionUnet``, alternated in one process.

Which of two architectures predicts faster, and by how much against MONAI: on this project's shared 2-core host the
speed of a whole process moves by up to a third from one process to the next, more than an architecture change, so
``predict_throughput.py``'s one-process-per-case design cannot resolve it. Here every setting runs in the same
process, in turn, for ``--rounds`` rounds, and the table gives each setting's median seconds and its ratio to
MONAI's ``AttentionUnet`` of the same rounds (the first checkpoint's widths, unfolded where it folds: 8-128 for
fold 2 and 16-128; 4 tiles per pass, overlap 0.25, Gaussian blending: ``predict_throughput.py``'s reference, random
weights: its speed does not depend on them).

Settings, per ``--checkpoint`` (repeatable; each labelled by its ``--label`` or its file's parent folders): the
probabilities (``predict_probabilities`` with the default ``TileConfig``, as ``cellseg predict`` computes them) and,
unless ``--no-instances``, ``cellseg predict``'s whole path (``segment_image``: blocks, probabilities, instances),
against which MONAI's reference is timed with its instances too: the connected components of ``argmax !=
background`` (what a MONAI user gets, as in ``accuracy.py``). The table's ``vs MONAI`` is each setting's speed
against the reference's probabilities, ``vs MONAI, same output`` against the reference that gives the same output
(probabilities, or instances).
The image is the 2048 x 2048 synthetic field of ``predict_throughput.py``, normalised as ``cellseg predict`` does.
The process calls ``keep_freed_memory`` first, as ``cellseg predict`` does, so the MONAI reference runs with it too
(in its own process, with glibc's defaults, it is not faster)::

    .venv/bin/python benchmarks/model_speed.py --checkpoint A/final.ckpt --checkpoint B/final.ckpt --rounds 5
    .venv/bin/python benchmarks/model_speed.py --checkpoint A.ckpt --label full --checkpoint B.ckpt --label light

Records are appended to ``benchmarks/results/model_speed.json`` (one per setting and run).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.inference.memory import keep_freed_memory
from cellseg.inference.model import load_model
from cellseg.inference.segment import BlockConfig, segment_image
from cellseg.inference.tiling import TileConfig, predict_probabilities
from cellseg.models.unet import unfolded_channels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
throughput = importlib.import_module("benchmarks.predict_throughput")  # the same synthetic field and MONAI reference

RESULTS = Path(__file__).resolve().parent / "results" / "model_speed.json"
accuracy = importlib.import_module("benchmarks.accuracy")  # a MONAI user's instances: connected components
REFERENCE = f"monai AttentionUnet b{throughput.MONAI_BATCH}"
REFERENCE_INSTANCES = f"{REFERENCE} + connected components"


def default_label(checkpoint: Path) -> str:
    """A checkpoint's label from its path: the run folder names above ``lightning_logs`` (or the file's stem)."""
    parts = checkpoint.resolve().parts
    if "lightning_logs" in parts:
        index = parts.index("lightning_logs")
        return "/".join(parts[max(index - 3, 0) : index])
    return checkpoint.stem


def main() -> None:
    """Alternate the settings for ``--rounds`` rounds; print the table and append the records."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True, help="a trained model; repeatable")
    parser.add_argument("--label", action="append", default=[], help="a name per --checkpoint, in their order")
    parser.add_argument("--no-instances", action="store_true", help="probabilities only")
    parser.add_argument("--size", type=int, default=2048, help="square image side in pixels")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes of every setting, alternated")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON results file (appended to)")
    arguments = parser.parse_args()
    if arguments.label and len(arguments.label) != len(arguments.checkpoint):
        parser.error(f"give one --label per --checkpoint ({len(arguments.checkpoint)}), or none.")
    if arguments.rounds < 1 or arguments.size < 1:
        parser.error("--rounds and --size must be at least 1.")
    labels = arguments.label or [default_label(path) for path in arguments.checkpoint]
    kept = keep_freed_memory()
    models = {label: load_model(path) for label, path in zip(labels, arguments.checkpoint, strict=True)}
    first = models[labels[0]]
    network = first.module.hparams["network"]
    channels = unfolded_channels([int(width) for width in network["channels"]], int(network.get("fold", 1)))
    tile = first.tile_size
    sample = generate_sample(
        SyntheticConfig(shape=(throughput.SAMPLE_SIDE, throughput.SAMPLE_SIDE), n_nuclei=throughput.SAMPLE_NUCLEI),
        seed=0,
    )
    images = {label: throughput.prepared_input(sample.image, arguments.size, model) for label, model in models.items()}
    monai = throughput.monai_network(channels, torch.device("cpu"))
    objects: dict[str, int] = {}

    def monai_run() -> None:
        throughput.monai_probabilities(monai, images[labels[0]], tile, throughput.OVERLAP, "32")

    def monai_instances() -> None:
        probabilities = throughput.monai_probabilities(monai, images[labels[0]], tile, throughput.OVERLAP, "32")
        objects[REFERENCE_INSTANCES] = int(accuracy.connected_components(probabilities[0].numpy()).max())

    settings: dict[str, Callable[[], None]] = {REFERENCE: monai_run}
    if not arguments.no_instances:
        settings[REFERENCE_INSTANCES] = monai_instances
    for label, model in models.items():

        def probabilities(model: Any = model, label: str = label) -> None:
            predict_probabilities(model, images[label], TileConfig())

        def with_instances(model: Any = model, label: str = label) -> None:
            segmentation = segment_image(model, images[label], TileConfig(), None, BlockConfig())
            objects[label] = segmentation.count

        settings[f"{label} probabilities"] = probabilities
        if not arguments.no_instances:
            settings[f"{label} + instances"] = with_instances
    for run in settings.values():  # warm-up: every setting once, untimed
        run()
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(arguments.rounds):
        for name, run in settings.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    print_and_record(arguments, seconds, objects, channels, tile, kept)


def print_and_record(
    arguments: argparse.Namespace,
    seconds: dict[str, list[float]],
    objects: dict[str, int],
    channels: list[int],
    tile: tuple[int, ...],
    kept: bool,
) -> None:
    """Print the table of ``seconds`` per setting and append one record per setting to ``arguments.results``."""
    megapixels = arguments.size**2 / 1e6
    reference = statistics.median(seconds[REFERENCE])
    reference_instances = statistics.median(seconds.get(REFERENCE_INSTANCES, seconds[REFERENCE]))
    print(f"MONAI widths {channels}; tile {list(tile)}, overlap {throughput.OVERLAP}; {arguments.size} px field; "
          f"{arguments.rounds} alternated rounds, {torch.get_num_threads()} threads; freed memory kept: {kept}; "
          f"objects found: {objects or '-'}")  # fmt: skip
    print("| setting | median s | Mpx/s | vs MONAI | vs MONAI, same output | rounds s |")
    print("|---|---|---|---|---|---|")
    date = time.strftime("%Y-%m-%d")
    records: list[dict[str, Any]] = []
    for name, times in seconds.items():
        median = statistics.median(times)
        same_output = reference_instances if name.endswith(("+ instances", "+ connected components")) else reference
        print(f"| {name} | {median:.2f} | {megapixels / median:.3f} | {reference / median:.2f} | "
              f"{same_output / median:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")  # fmt: skip
        records.append({
            "setting": name, "seconds": median, "seconds_all": times, "megapixels_per_s": megapixels / median,
            "vs_monai": reference / median, "vs_monai_same_output": same_output / median, "size": arguments.size,
            "monai_channels": channels, "tile": list(tile),
            "threads": torch.get_num_threads(), "kept_freed_memory": kept, "date": date,
            "checkpoints": [str(path) for path in arguments.checkpoint], "objects": objects,
        })  # fmt: skip
    throughput.append_records(arguments.results, records)


if __name__ == "__main__":
    main()
