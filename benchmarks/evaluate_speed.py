"""Speed of ``cellseg evaluate``'s scoring path on a real dataset, against the per-object loop many notebooks use.

Predictions are made from the ground truth itself: every true mask of ``--data`` (the StarDist layout,
``DIR/masks/NAME.png``; DSB2018 by default) is copied, perturbed, into a temporary folder as ``NAME_masks.tif``, the
way ``cellseg predict`` writes a mask (``cellseg.io.writers.write_labels``). The perturbation is seeded per image
(``--seed`` and the image's name), so that the scores are those of a fair segmentation rather than a perfect one:

1. about 5 % of the pairs of objects that touch or lie within 2 px are merged (one relabelled as the other);
2. about 5 % of the objects are dropped;
3. about 5 % of the objects grow by 1 px and 5 % shrink by 1 px (4-connected: a pixel grows into background next
   to it, a pixel next to anything else is shaved off);
4. the whole mask moves by 1 to 3 px in a random direction (what moves out of the image is lost).

Making the copy is not timed; it also leaves both sets of masks in the page cache, so both timed passes read warm.

Measured:

* ``cellseg evaluate``: end to end as the command scores: ``mask_files`` on both folders, ``pair_masks``,
  ``evaluate_pairs`` (read both masks, label binary ones, match at the 10 IoU thresholds 0.5 ... 0.95, count merges
  and splits) and ``summarise``; once with ``workers=1`` and once with the default (``None``: every CPU from 32
  pairs on, worker start-up included). Writing the tables and plots is not timed. Reported: seconds (the median of
  ``--repeats`` passes), images/s and true objects/s, and the pooled F1 at IoU 0.5 and the mean DSB score found.
* the reference, on the first ``--reference-images`` images by name (40 by default), with every mask read into
  memory first so that neither side pays for reading: the naive approach, a boolean mask per object and, for every
  (true, predicted) pair, ``np.logical_and(...).sum()`` over ``np.logical_or(...).sum()``, then greedy matching at
  IoU >= 0.5 (best pairs first); against cellseg's ``match_instances`` on the same arrays, at the 10 thresholds
  ``cellseg evaluate`` uses and at 0.5 alone. The naive loop is given its best chance: each predicted object's mask
  is built once per image, not once per pair. Above IoU 0.5 two objects can overlap each other that much only with
  one partner, so greedy and optimal matching agree; the script checks that they find the same TP, FP and FN in
  every image and stops if not.

Results are appended to ``benchmarks/results/evaluate_speed.json``, one record per run::

    .venv/bin/python benchmarks/evaluate_speed.py
    .venv/bin/python benchmarks/evaluate_speed.py --limit 100 --reference-images 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cellseg.evaluation import counts
from cellseg.evaluation.matching import IOU_THRESHOLDS, as_instances, match_instances
from cellseg.evaluation.pairing import mask_files, pair_masks
from cellseg.evaluation.scoring import evaluate_pairs
from cellseg.evaluation.summary import summarise
from cellseg.io.atomic import atomic_output
from cellseg.io.errors import DatasetError
from cellseg.io.readers import read_mask
from cellseg.io.writers import write_labels

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "evaluate_speed.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dsb2018_train"
MERGE_FRACTION = 0.05  # of the pairs of objects within NEAR_DISTANCE
DROP_FRACTION = 0.05
GROW_FRACTION = 0.05
SHRINK_FRACTION = 0.05
NEAR_DISTANCE = 2  # px, Chebyshev
SHIFT_RANGE = (1.0, 3.0)  # px
MATCH_THRESHOLD = 0.5
SCORE_KEYS = ("images", "n_true", "n_predicted", "pooled_f1_at_0.5", "mean_dsb_score", "pooled_dsb_score", "mean_dice")
CROSS = ndimage.generate_binary_structure(2, 1)

Labels: TypeAlias = npt.NDArray[np.int64]


# --- the perturbed copy -------------------------------------------------------------------------------------------


def near_pairs(labels: Labels, distance: int = NEAR_DISTANCE) -> npt.NDArray[np.int64]:
    """The ``(n, 2)`` pairs of different objects (smaller id first) with pixels within ``distance`` px (Chebyshev)."""
    height, width = labels.shape
    codes = []
    for dy in range(distance + 1):
        for dx in range(-distance, distance + 1):
            if dy == 0 and dx <= 0:
                continue  # each offset once: the other half-plane gives the same pairs
            here = labels[: height - dy, max(0, -dx) : width - max(0, dx)]
            there = labels[dy:, max(0, dx) : width - max(0, -dx)]
            different = (here > 0) & (there > 0) & (here != there)
            low, high = np.minimum(here[different], there[different]), np.maximum(here[different], there[different])
            codes.append(low * (int(labels.max()) + 1) + high)
    unique = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    return np.stack(np.divmod(unique, int(labels.max()) + 1), axis=1)


def merge_pairs(labels: Labels, pairs: npt.NDArray[np.int64]) -> Labels:
    """``labels`` with each pair's second object relabelled as its first (chains of pairs become one object)."""
    lookup = np.arange(int(labels.max()) + 1)
    for first, second in pairs:
        root_first, root_second = _root(lookup, int(first)), _root(lookup, int(second))
        if root_first != root_second:
            lookup[root_second] = root_first
    while not np.array_equal(lookup, lookup[lookup]):
        lookup = lookup[lookup]
    merged: Labels = lookup[labels]
    return merged


def _root(lookup: npt.NDArray[np.int64], label: int) -> int:
    while lookup[label] != label:
        label = int(lookup[label])
    return label


def grow_and_shrink(labels: Labels, growing: npt.NDArray[np.int64], shrinking: npt.NDArray[np.int64]) -> Labels:
    """Grow the ``growing`` objects into the background by 1 px, shave 1 px off the ``shrinking`` ones (4-connected).

    A shaved pixel is one whose 4-neighbourhood holds another label (background included); a grown one is background
    next to a growing object (the larger id wins where two grow into the same pixel).
    """
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    on_edge = np.zeros(labels.shape, dtype=bool)
    for neighbour in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        on_edge |= neighbour != centre
    result = np.where(on_edge & np.isin(labels, shrinking), 0, labels)
    grown = ndimage.grey_dilation(np.where(np.isin(labels, growing), labels, 0), footprint=CROSS)
    shaped: Labels = np.where((result == 0) & (labels == 0) & (grown > 0), grown, result)
    return shaped


def shift(labels: Labels, dy: int, dx: int) -> Labels:
    """``labels`` moved down by ``dy`` and right by ``dx`` px (negative: up, left); the uncovered edge is background."""
    height, width = labels.shape
    moved = np.zeros_like(labels)
    moved[max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)] = labels[
        max(0, -dy) : height + min(0, -dy), max(0, -dx) : width + min(0, -dx)
    ]
    return moved


def perturb(labels: Labels, rng: np.random.Generator) -> Labels:
    """A plausible prediction from true ``labels`` ``(H, W)``: merges, misses, 1 px size errors and a shift."""
    pairs = near_pairs(labels)
    perturbed = merge_pairs(labels, pairs[rng.random(len(pairs)) < MERGE_FRACTION])
    ids = np.unique(perturbed)
    ids = ids[ids > 0]
    dropped = ids[rng.random(ids.size) < DROP_FRACTION]
    perturbed = np.where(np.isin(perturbed, dropped), 0, perturbed)
    draw = rng.random(ids.size)
    growing, shrinking = (
        ids[draw < GROW_FRACTION],
        ids[(draw >= GROW_FRACTION) & (draw < GROW_FRACTION + SHRINK_FRACTION)],
    )
    perturbed = grow_and_shrink(perturbed, growing, shrinking)
    length, angle = rng.uniform(*SHIFT_RANGE), rng.uniform(0, 2 * math.pi)
    return shift(perturbed, round(length * math.sin(angle)), round(length * math.cos(angle)))


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The random generator of one image: from ``seed`` and the image's name, so ``--limit`` changes no image."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def write_perturbed_copy(truth: dict[str, Path], folder: Path, seed: int) -> None:
    """Write a perturbed copy of each true mask as ``folder/NAME_masks.tif``."""
    for name, path in truth.items():
        labels, _ = as_instances(read_mask(path))
        write_labels(folder / f"{name}_masks.tif", perturb(labels.astype(np.int64), image_rng(seed, name)), "tif")


# --- the timed paths ----------------------------------------------------------------------------------------------


def evaluate_folders(predicted_folder: Path, truth_folder: Path, workers: int | None) -> dict[str, Any]:
    """Score the predicted folder against the true one as ``cellseg evaluate`` does; the summary's ``all``."""
    pairing = pair_masks(mask_files(predicted_folder), mask_files(truth_folder))
    evaluations, failures = evaluate_pairs(pairing.pairs, workers=workers)
    if failures or pairing.predictions_without_truth:
        raise RuntimeError(
            f"{len(failures)} pairs failed, e.g. {failures[:1]}; unpaired {pairing.predictions_without_truth[:3]}"
        )
    everything: dict[str, Any] = summarise(evaluations)["all"]
    return everything


def time_evaluation(predicted_folder: Path, truth_folder: Path, workers: int | None, repeats: int) -> dict[str, Any]:
    """The median seconds of ``repeats`` passes of :func:`evaluate_folders`, the rates, and the scores found."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        everything = evaluate_folders(predicted_folder, truth_folder, workers)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "workers": workers,
        "workers_used": workers or _default_workers(everything["images"]),
        "seconds": median,
        "seconds_all": seconds,
        "images": everything["images"],
        "n_true": everything["n_true"],
        "n_predicted": everything["n_predicted"],
        "images_per_s": everything["images"] / median,
        "true_objects_per_s": everything["n_true"] / median,
        "pooled_f1_at_0.5": everything["pooled"]["by_threshold"]["0.50"]["f1"],
        "mean_dsb_score": everything["mean"]["dsb_score"],
        "pooled_dsb_score": everything["pooled"]["dsb_score"],
        "mean_dice": everything["mean"]["dice"],
    }


def _default_workers(n_pairs: int) -> int:
    """The processes ``evaluate_pairs(workers=None)`` takes for ``n_pairs`` (see its docstring)."""
    return (os.cpu_count() or 1) if n_pairs >= 32 else 1


def naive_match_counts(truth: Labels, predicted: Labels, threshold: float = MATCH_THRESHOLD) -> tuple[int, int, int]:
    """TP, FP, FN the notebook way: IoU of every pair from boolean masks, then greedy matching (best IoU first)."""
    true_ids = [label for label in np.unique(truth) if label != 0]
    predicted_ids = [label for label in np.unique(predicted) if label != 0]
    predicted_masks = [predicted == label for label in predicted_ids]
    iou = np.zeros((len(true_ids), len(predicted_ids)))
    for row, true_id in enumerate(true_ids):
        true_mask = truth == true_id
        for column, predicted_mask in enumerate(predicted_masks):
            intersection = np.logical_and(true_mask, predicted_mask).sum()
            union = np.logical_or(true_mask, predicted_mask).sum()
            iou[row, column] = intersection / union
    matched_true: set[int] = set()
    matched_predicted: set[int] = set()
    rows, columns = np.nonzero(iou >= threshold)
    for index in np.argsort(-iou[rows, columns], kind="stable"):
        row, column = int(rows[index]), int(columns[index])
        if row not in matched_true and column not in matched_predicted:
            matched_true.add(row)
            matched_predicted.add(column)
    tp = len(matched_true)
    return tp, len(predicted_ids) - tp, len(true_ids) - tp


def time_per_image(
    method: Callable[[Labels, Labels], tuple[int, int, int]], arrays: Sequence[tuple[Labels, Labels]]
) -> tuple[float, list[tuple[int, int, int]]]:
    """Total seconds of ``method`` over the ``(truth, predicted)`` arrays, and its (TP, FP, FN) per image."""
    started = time.perf_counter()
    found = [method(truth, predicted) for truth, predicted in arrays]
    return time.perf_counter() - started, found


def cellseg_counts(thresholds: tuple[float, ...]) -> Callable[[Labels, Labels], tuple[int, int, int]]:
    """``match_instances`` at ``thresholds`` (as ``cellseg evaluate`` matches), reduced to TP, FP, FN at 0.5."""

    def method(truth: Labels, predicted: Labels) -> tuple[int, int, int]:
        at_half = match_instances(truth, predicted, thresholds).at(MATCH_THRESHOLD)
        return at_half.tp, at_half.fp, at_half.fn

    return method


def pooled_f1(found: Sequence[tuple[int, int, int]]) -> float:
    """F1 of the summed TP, FP, FN."""
    tp, fp, fn = (sum(column) for column in zip(*found, strict=True))
    return counts.f1_score(tp, fp, fn)


def compare_with_naive(
    names: list[str], truth: dict[str, Path], predicted_folder: Path, repeats: int
) -> dict[str, Any]:
    """Time the naive loop and cellseg's matching on the same in-memory arrays; check they agree at IoU 0.5."""
    arrays = []
    for name in names:
        true_labels, _ = as_instances(read_mask(truth[name]))
        predicted_labels, _ = as_instances(read_mask(predicted_folder / f"{name}_masks.tif"))
        arrays.append((true_labels.astype(np.int64), predicted_labels.astype(np.int64)))
    methods = {
        "cellseg_10_thresholds": cellseg_counts(IOU_THRESHOLDS),
        "cellseg_0.5": cellseg_counts((MATCH_THRESHOLD,)),
    }
    print(f"timing the naive loop on {len(names)} images ...", flush=True)
    naive_seconds, naive_found = time_per_image(naive_match_counts, arrays)
    record: dict[str, Any] = {
        "images": len(names),
        "n_true": sum(len(np.unique(t)) - 1 for t, _ in arrays),
        "pixels": sum(t.size for t, _ in arrays),
        "naive": {"seconds_per_image": naive_seconds / len(names), "pooled_f1_at_0.5": pooled_f1(naive_found)},
    }
    for label, method in methods.items():
        runs = [time_per_image(method, arrays) for _ in range(repeats)]
        seconds, found = statistics.median(run[0] for run in runs), runs[0][1]
        disagreeing = [name for name, ours, theirs in zip(names, found, naive_found, strict=True) if ours != theirs]
        if disagreeing:
            raise SystemExit(
                f"{label} and the naive loop disagree at IoU 0.5 on {len(disagreeing)} images: {disagreeing[:3]}"
            )
        per_image = seconds / len(names)
        record[label] = {
            "seconds_per_image": per_image,
            "ratio_to_naive": per_image / record["naive"]["seconds_per_image"],
            "pooled_f1_at_0.5": pooled_f1(found),
        }
    record["same_matches_at_0.5"] = True
    return record


# --- report -------------------------------------------------------------------------------------------------------


def aligned(rows: list[list[str]]) -> str:
    """Rows of cells as text: the first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    )


def report(record: dict[str, Any]) -> str:
    """The printed table of a run's record."""
    lines = [
        f"{record['images']} images, {record['n_true']} true / {record['n_predicted']} predicted objects "
        f"({record['data']}, seed {record['seed']}); "
        f"{record['machine']['cpu_count']} CPUs, {record['machine']['platform']}",
        "",
    ]
    rows = [["cellseg evaluate, end to end", "seconds", "images/s", "true obj/s", "F1@0.5 pooled", "DSB mean"]]
    for run in record["evaluate"]:
        workers = "workers=1" if run["workers"] == 1 else f"workers=None ({run['workers_used']} processes)"
        rows.append([
            workers, f"{run['seconds']:.2f}", f"{run['images_per_s']:.1f}", f"{run['true_objects_per_s']:.0f}",
            f"{run['pooled_f1_at_0.5']:.3f}", f"{run['mean_dsb_score']:.3f}",
        ])  # fmt: skip
    lines += [
        aligned(rows),
        f"(mask_files, pair_masks, evaluate_pairs, summarise; median of {record['repeats']} passes)",
        "",
    ]
    reference = record.get("reference")
    if reference:
        lines.append(
            f"matching alone, arrays in memory: first {reference['images']} images by name, "
            f"{reference['n_true']} true objects, {reference['pixels'] / 1e6:.1f} Mpx"
        )
        rows = [["method", "s/image", "ratio to naive", "speed-up", "F1@0.5 pooled"]]
        for label, name in [
            ("naive", "naive pair loop, greedy at 0.5"),
            ("cellseg_10_thresholds", "cellseg match_instances, 10 thresholds"),
            ("cellseg_0.5", "cellseg match_instances, 0.5 only"),
        ]:
            entry = reference[label]
            ratio = entry.get("ratio_to_naive", 1.0)
            rows.append([
                name, f"{entry['seconds_per_image']:.4f}", f"{ratio:.5f}", f"{1 / ratio:.0f}x",
                f"{entry['pooled_f1_at_0.5']:.4f}",
            ])  # fmt: skip
        lines += [aligned(rows), "(same TP, FP and FN at IoU 0.5 as the naive loop in every image)"]
    return "\n".join(lines)


def append_record(results: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON list in ``results`` (created if missing), atomically."""
    records: list[dict[str, Any]] = json.loads(results.read_text()) if results.exists() else []
    results.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(results) as temporary:
        temporary.write_text(json.dumps([*records, record], indent=1))


def main() -> None:
    """Make the perturbed copy, time both paths, print the table and append the record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder with masks/NAME.png")
    parser.add_argument("--limit", type=int, help="only the first N masks by name (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbation (default 0)")
    parser.add_argument("--reference-images", type=int, default=40, help="images the naive loop runs on (0: none)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of cellseg; the median is reported")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON results file")
    arguments = parser.parse_args()
    data: Path = arguments.data
    if not data.is_dir():
        sys.exit(f"{data}: no such folder; pass --data DIR, a dataset with DIR/masks/NAME.png (e.g. DSB2018)")
    try:
        truth = mask_files(data)
    except DatasetError as error:
        sys.exit(str(error))
    if not truth:
        sys.exit(f"{data}: no mask files found; pass --data DIR, a dataset with DIR/masks/NAME.png")
    names = sorted(truth)[: arguments.limit]
    truth = {name: truth[name] for name in names}
    with tempfile.TemporaryDirectory(prefix="cellseg-evaluate-speed-") as scratch:
        predicted_folder = Path(scratch)
        print(f"writing perturbed copies of {len(names)} masks to {predicted_folder} ...", flush=True)
        started = time.perf_counter()
        write_perturbed_copy(truth, predicted_folder, arguments.seed)
        copy_seconds = time.perf_counter() - started
        evaluate = []
        for workers in (1, None):
            print(f"timing cellseg evaluate with workers={workers} ...", flush=True)
            evaluate.append(time_evaluation(predicted_folder, data, workers, arguments.repeats))
        scores = [{key: run[key] for key in SCORE_KEYS} for run in evaluate]
        if scores[0] != scores[1]:
            sys.exit(f"workers=1 and workers=None found different scores: {scores}")
        reference_names = names[: arguments.reference_images]
        reference = (
            compare_with_naive(reference_names, truth, predicted_folder, arguments.repeats) if reference_names else None
        )
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "data": str(data),
        "images": len(names),
        "n_true": evaluate[0]["n_true"],
        "n_predicted": evaluate[0]["n_predicted"],
        "seed": arguments.seed,
        "perturbation": {
            "merge_fraction_of_near_pairs": MERGE_FRACTION,
            "near_distance_px": NEAR_DISTANCE,
            "drop_fraction": DROP_FRACTION,
            "grow_fraction": GROW_FRACTION,
            "shrink_fraction": SHRINK_FRACTION,
            "shift_px": list(SHIFT_RANGE),
        },
        "copy_seconds": copy_seconds,
        "repeats": arguments.repeats,
        "evaluate": evaluate,
        "reference": reference,
    }
    print()
    print(report(record))
    append_record(arguments.results, record)
    print(f"\nappended to {arguments.results}")


if __name__ == "__main__":
    main()
