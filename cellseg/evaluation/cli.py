"""``cellseg evaluate``: score predicted masks against ground truth, or predict with a model first, then score.

Writes ``per_image.csv``, ``summary.json`` and three plots to ``--output`` and prints a compact table. Torch and
Lightning load only with ``--model``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cellseg import __version__
from cellseg.io.errors import DatasetError

if TYPE_CHECKING:
    from cellseg.evaluation.pairing import Pairing
    from cellseg.evaluation.scoring import ImageEvaluation

# The default IoU thresholds, as cellseg.evaluation.matching.IOU_THRESHOLDS (not imported: --help stays fast).
DEFAULT_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
_LISTED = 5  # unpaired files named in the terminal; all are in summary.json
T = TypeVar("T")


def add_evaluate_parser(subcommands: Any) -> None:
    """Add ``evaluate`` to the ``cellseg`` subcommands."""
    from cellseg.inference.cli import add_hardware_arguments, add_model_arguments

    parser = subcommands.add_parser(
        "evaluate",
        help="score masks against ground truth (cellseg evaluate --pred OUT --gt DATA/masks)",
        description=(
            "Score predicted instance masks against ground truth: foreground Dice and IoU, and precision, recall, F1, "
            "DSB score, panoptic quality at IoU 0.5-0.95; per image, averaged and pooled, per group. Either --pred "
            "and --gt (masks paired by name), or --model and --data (predict the data's images first)."
        ),
    )
    sources = parser.add_argument_group("what to compare")
    sources.add_argument("--pred", type=Path, help="folder of predicted masks (e.g. a cellseg predict output)")
    sources.add_argument("--gt", type=Path, help="folder of true masks, or a dataset folder (images/ + masks/)")
    sources.add_argument("--data", type=Path, help="with --model: a dataset folder of images and their masks")
    sources.add_argument("--mask-suffix", default="_masks", help="mask name suffix to tolerate (default: _masks)")
    sources.add_argument(
        "--groups",
        help="score per group: CSV:COLUMN (first column names the image), or COLUMN of the truth's metadata.csv",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--output", type=Path, default=Path("evaluation"), help="output folder (default: evaluation)")
    output.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --output")
    output.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    output.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(DEFAULT_THRESHOLDS),
        help="IoU thresholds (default: 0.5 to 0.95 in steps of 0.05)",
    )
    output.add_argument("--eval-workers", type=int, help="processes scoring images (default: all CPUs from 32 images)")
    add_model_arguments(parser, required=False)
    add_hardware_arguments(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cellseg evaluate``; return 0, 1 when a pair could not be scored, 2 when there is nothing to compare."""
    try:
        return _run(args)
    except DatasetError as error:
        print(f"cellseg evaluate: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from cellseg.evaluation.pairing import mask_files, pair_masks
    from cellseg.evaluation.scoring import evaluate_pairs
    from cellseg.evaluation.summary import image_row, summarise

    started = time.perf_counter()
    if args.model is not None:
        if args.data is None or args.pred is not None:
            raise DatasetError(
                "--model needs --data DIR (its images are predicted, its masks are the truth), not --pred"
            )
    elif args.pred is None or args.gt is None:
        raise DatasetError("give --pred DIR and --gt DIR (or --model RUN.ckpt and --data DIR)")
    if not all(0 < threshold <= 1 for threshold in args.thresholds):
        raise DatasetError(f"--thresholds {args.thresholds}: IoU thresholds must be in (0, 1]")
    if (args.output / "summary.json").exists() and not args.overwrite:
        raise DatasetError(
            f"{args.output}: holds an earlier evaluation (summary.json); pass --overwrite or another --output"
        )
    truth_folder = args.data if args.model is not None else args.gt
    groups, group_column = _groups(args.groups, truth_folder)
    if args.model is not None:
        predicted, failed_predictions = _predict(args)
        if predicted is None:
            return 1
        prediction_folder = predicted
    else:
        assert args.pred is not None  # checked above
        prediction_folder, failed_predictions = Path(args.pred), []
    pairing = pair_masks(mask_files(prediction_folder, args.mask_suffix), mask_files(truth_folder, args.mask_suffix))
    if not pairing.pairs:
        sides = (pairing.predictions_without_truth, pairing.truth_without_prediction)
        examples = [paths[0].name for paths in sides if paths]
        raise DatasetError(
            f"no predicted mask in {prediction_folder} shares a name with a true mask in {truth_folder} "
            f"(e.g. {' and '.join(examples) or 'no mask files at all'}); names are compared without extension and "
            f"without {args.mask_suffix!r}"
        )
    _report_unpaired(pairing)
    thresholds = tuple(sorted(set(args.thresholds)))
    evaluations, failures = evaluate_pairs(
        pairing.pairs, thresholds, workers=args.eval_workers, progress=None if args.no_progress else _progress_bar
    )
    for failure in failures:
        print(f"cellseg evaluate: skipped {failure.name}: {failure.error}", file=sys.stderr)
    summary = summarise(evaluations, groups)
    rows = [image_row(e, None if groups is None else groups.get(e.name, "(no group)")) for e in evaluations]
    document = _summary_document(args, prediction_folder, truth_folder, pairing, evaluations, summary, group_column)
    document["skipped"] = [{"name": f.name, "error": f.error} for f in failures] + failed_predictions
    document["seconds"] = round(time.perf_counter() - started, 3)
    written = _write_outputs(args.output, rows, document, plots=not args.no_plots)
    _print_report(evaluations, summary, document, written)
    return 1 if failures or failed_predictions else 0


def _groups(spec: str | None, truth_folder: Path) -> tuple[dict[str, str] | None, str | None]:
    """The image groups of ``--groups``: ``CSV:COLUMN``, or ``COLUMN`` of ``metadata.csv`` beside the truth."""
    from cellseg.evaluation.summary import read_groups

    if spec is None:
        return None, None
    if ":" not in spec:
        candidates = [truth_folder / "metadata.csv", truth_folder.parent / "metadata.csv"]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise DatasetError(
                f"--groups {spec}: no metadata.csv in {truth_folder} or its parent; give it as FILE.csv:{spec}"
            )
        spec = f"{found}:{spec}"
    return read_groups(spec)


def _predict(args: argparse.Namespace) -> tuple[Path | None, list[dict[str, str]]]:
    """Predict the images of ``--data`` into ``OUTPUT/predictions``; the folder (``None`` on failure) and failures."""
    from cellseg.inference.cli import predict_options
    from cellseg.inference.inputs import InputImage
    from cellseg.inference.memory import keep_freed_memory
    from cellseg.inference.model import CheckpointError, load_model
    from cellseg.inference.run import OutputOptions, run_predictions
    from cellseg.io.discovery import discover_pairs

    try:
        model = load_model(args.model)
    except CheckpointError as error:
        print(f"cellseg evaluate: {error}", file=sys.stderr)
        return None, []
    dataset = discover_pairs(args.data, args.mask_suffix)
    folder: Path = args.output / "predictions"
    options = predict_options(args, folder, OutputOptions(mask_suffix=args.mask_suffix), overwrite=args.overwrite)
    images = [InputImage(path=pair.image, name=pair.name) for pair in dataset.pairs]
    keep_freed_memory()  # this process ends with the run: reuse what it frees
    summary = run_predictions(model, images, options)
    failed = [{"name": result.name, "error": result.error} for result in summary.failed]
    for failure in failed:
        print(f"cellseg evaluate: prediction failed: {failure['error']}", file=sys.stderr)
    return folder, failed


def _progress_bar(results: Iterable[T], total: int) -> Iterator[T]:
    from tqdm import tqdm  # type: ignore[import-untyped]  # a Lightning dependency, without type stubs

    yield from tqdm(results, total=total, desc="evaluate", unit="image", leave=False, disable=total < 50)


def _report_unpaired(pairing: Pairing) -> None:
    for label, paths in (
        ("predictions without ground truth", pairing.predictions_without_truth),
        ("ground truth without prediction", pairing.truth_without_prediction),
    ):
        if paths:
            shown = ", ".join(path.name for path in paths[:_LISTED])
            more = f" and {len(paths) - _LISTED} more (all in summary.json)" if len(paths) > _LISTED else ""
            print(f"cellseg evaluate: {len(paths)} {label}, not scored: {shown}{more}", file=sys.stderr)


def _summary_document(
    args: argparse.Namespace,
    prediction_folder: Path,
    truth_folder: Path,
    pairing: Pairing,
    evaluations: list[ImageEvaluation],
    summary: dict[str, Any],
    group_column: str | None,
) -> dict[str, Any]:
    binary_truth = sum(e.truth_was_binary for e in evaluations)
    binary_predictions = sum(e.prediction_was_binary for e in evaluations)
    notes = []
    if binary_truth:
        notes.append(
            f"{binary_truth} ground-truth masks held a single foreground value and were labelled by connected "
            "components: touching cells in them count as one object (column truth_was_binary)"
        )
    if binary_predictions:
        notes.append(
            f"{binary_predictions} predicted masks held a single foreground value and were labelled by connected "
            "components (column prediction_was_binary)"
        )
    return {
        "cellseg_version": __version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "predictions": str(prediction_folder),
        "ground_truth": str(truth_folder),
        "model": None if args.model is None else str(args.model),
        "thresholds": sorted(set(args.thresholds)),
        "group_column": group_column,
        "paired": len(pairing.pairs),
        "scored": len(evaluations),
        "predictions_without_truth": [str(path) for path in pairing.predictions_without_truth],
        "truth_without_prediction": [str(path) for path in pairing.truth_without_prediction],
        "notes": notes,
        "aggregates": summary,
    }


def _write_outputs(output: Path, rows: list[dict[str, Any]], document: dict[str, Any], plots: bool) -> list[Path]:
    from cellseg.evaluation.summary import write_per_image_csv
    from cellseg.io.atomic import atomic_output

    output.mkdir(parents=True, exist_ok=True)
    with atomic_output(output / "per_image.csv") as temporary:
        write_per_image_csv(temporary, rows)
    written = [output / "per_image.csv"]
    if plots:
        from cellseg.evaluation.plots import write_plots

        written += write_plots(output, rows, document["aggregates"])
    with atomic_output(output / "summary.json") as temporary:  # last: its presence marks a finished evaluation
        temporary.write_text(json.dumps(document, indent=2, allow_nan=False, default=_json_default) + "\n")
    return [*written, output / "summary.json"]


def _json_default(value: object) -> object:
    raise TypeError(f"not JSON: {value!r}")


def _print_report(
    evaluations: list[ImageEvaluation], summary: dict[str, Any], document: dict[str, Any], written: list[Path]
) -> None:
    from cellseg.evaluation.summary import format_table

    print(
        f"cellseg evaluate: {len(evaluations)} images scored ({len(document['skipped'])} skipped) in "
        f"{document['seconds']:.2f} s; {document['predictions']} against {document['ground_truth']}"
    )
    for kind, title in (("mean", "mean over images"), ("pooled", "pooled over objects")):
        print(f"\n{title}:")
        print(format_table(summary, kind))
    for note in document["notes"]:
        print(f"\nnote: {note}")
    print(f"\nwrote {', '.join(str(path) for path in written)}")
