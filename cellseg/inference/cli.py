"""``cellseg predict`` and ``cellseg export``: their arguments, and thin entry points over the library.

Only ``argparse`` is imported at the top: torch, MONAI and Lightning load after the arguments are parsed, so
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cellseg.inference.run import OutputOptions, PredictOptions


def add_predict_parser(subcommands: Any) -> None:
    """Add ``predict`` to the ``cellseg`` subcommands, its options in groups (input, model, output, hardware)."""
    parser = subcommands.add_parser(
        "predict",
        help="segment images with a trained model (cellseg predict --model RUN.ckpt IMAGES... --output OUT)",
        description="Segment images of any size with a trained model; write instance masks and their exports.",
    )
    inputs = parser.add_argument_group("input")
    inputs.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or quoted glob patterns")
    inputs.add_argument("--recursive", action="store_true", help="also search the folders' sub-folders")
    add_model_arguments(parser, required=True)
    output = parser.add_argument_group("output")
    output.add_argument("--output", required=True, type=Path, help="output folder (nothing is written elsewhere)")
    output.add_argument("--format", choices=["tif", "png", "nii"], default="tif", help="mask format (default: tif)")
    output.add_argument("--mask-suffix", default="_masks", help="mask name suffix (default: _masks)")
    output.add_argument("--save-probabilities", action="store_true", help="foreground probability, float16 TIFF")
    output.add_argument("--save-outlines", action="store_true", help="PNG of the contours over the image")
    output.add_argument("--save-rois", action="store_true", help="ImageJ/Fiji ROI set (.zip)")
    output.add_argument("--save-geojson", action="store_true", help="QuPath-compatible polygons (.geojson)")
    output.add_argument("--overwrite", action="store_true", help="redo images whose mask is already there")
    add_hardware_arguments(parser)


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1, or a one-line error saying what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1; give 1 or more")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """Add the model, tiling and instance options of a prediction (shared by ``predict`` and ``evaluate``)."""
    model = parser.add_argument_group("model and tiling")
    model.add_argument("--model", required=required, type=Path, help="checkpoint written by cellseg fit (.ckpt)")
    model.add_argument("--tile-size", type=int, nargs="+", help="tile sides in pixels (default: the training patch)")
    model.add_argument(
        "--max-tile", type=int,
        help="2D: fit the fewest tiles of at most this side to each image instead (e.g. 512: faster, a little less "
        "accurate; see README)",
    )  # fmt: skip
    model.add_argument(
        "--overlap", type=float, default=0.25,
        help="tile overlap: a fraction of the tile, or of the training patch with --max-tile (default: 0.25)",
    )  # fmt: skip
    model.add_argument(
        "--tile-batch", type=positive_int,
        help="tiles per forward pass (default: as many as make 2^19 pixels in 2D, 2^17 in 3D, at least 2: 32 tiles "
        "of 128 px, 8 of 256 px; 32 ran 1.10x faster than 8 on a 2-core CPU; try more on a GPU)",
    )  # fmt: skip
    model.add_argument("--tta", action="store_true", help="average over flips and rotations (8x the compute)")
    model.add_argument(
        "--compile", action="store_true",
        help="run the network through torch.compile: the network ~2x and a whole image 1.1-1.5x faster on a 2-core "
        "CPU, after up to a minute of compiling (seconds from the disk cache after); for many or large images",
    )  # fmt: skip
    model.add_argument("--block-size", type=int, default=4096, help="largest side predicted at once (default: 4096)")
    instances = parser.add_argument_group("instances")
    instances.add_argument(
        "--seeds", choices=["boundary", "distance"], help="what seeds the watershed (default: boundary, measured best)"
    )
    instances.add_argument(
        "--foreground-threshold", type=float,
        help="cell probability above which a pixel is foreground (default: the model's, set by its config and stored "
        "in its checkpoint; 0.5 unless the config set one: configs/dsb2018.yaml sets 0.6)",
    )  # fmt: skip
    instances.add_argument("--seed-threshold", type=float, help="seed threshold (default: 0.5 boundary, 0.6 distance)")
    instances.add_argument(
        "--split-height",
        type=float,
        help="split seeds at distance maxima this many pixels high; 0 keeps them whole (default: 1.5 at the model's "
        "object diameter of 15 px, scaled to its own)",
    )
    instances.add_argument(
        "--min-size",
        type=int,
        help="drop objects with fewer pixels (default: 16 at an object diameter of 15 px, "
        "scaled by area to the model's)",
    )
    instances.add_argument("--no-fill-holes", action="store_true", help="keep holes inside objects")
    instances.add_argument("--remove-border", action="store_true", help="drop objects touching the image border")


def add_hardware_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the device, precision and loader options of a prediction (shared by ``predict`` and ``evaluate``)."""
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--accelerator", default="auto", help="auto, cpu or gpu (default: auto)")
    hardware.add_argument("--devices", default="1", help="devices; more than 1 runs DDP (default: 1)")
    hardware.add_argument("--num-nodes", type=int, default=1, help="machines for multi-node DDP (default: 1)")
    hardware.add_argument("--strategy", default="auto", help="Lightning strategy (default: auto)")
    hardware.add_argument(
        "--precision",
        choices=["32", "bf16", "16"],
        default="32",
        help="32 (default), bf16 autocast (GPU, or a CPU with bf16 support) or 16 autocast (GPU only)",
    )
    hardware.add_argument("--workers", type=int, default=1, help="processes reading ahead (default: 1)")
    hardware.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_export_parser(subcommands: Any) -> None:
    """Add ``export`` to the ``cellseg`` subcommands."""
    parser = subcommands.add_parser(
        "export",
        help="export a trained network for deployment (cellseg export RUN.ckpt --format onnx)",
        description="Export a checkpoint's network, with its softmax, as TorchScript or ONNX, plus a JSON sidecar.",
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint written by cellseg fit (.ckpt)")
    parser.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript")
    parser.add_argument("--output", type=Path, help="output file (default: next to the checkpoint)")


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cellseg predict``; return 0, or 1 when an input or an image failed."""
    from cellseg.inference.inputs import collect_inputs
    from cellseg.inference.memory import keep_freed_memory
    from cellseg.inference.model import CheckpointError, load_model
    from cellseg.inference.run import OutputOptions, run_predictions

    try:
        model = load_model(args.model)
    except CheckpointError as error:
        print(f"cellseg predict: {error}", file=sys.stderr)
        return 1
    selection = collect_inputs(args.inputs, args.recursive, exclude=args.output, mask_suffix=args.mask_suffix)
    for missing in selection.missing:
        print(f"cellseg predict: {missing}: no such file or folder, or no image matches it.", file=sys.stderr)
    for unsupported in selection.unsupported:
        print(
            f"cellseg predict: {unsupported}: not an image type cellseg reads (TIFF, PNG, JPEG, NIfTI).",
            file=sys.stderr,
        )
    if not selection.images:
        print("cellseg predict: no images to predict.", file=sys.stderr)
        return 1
    options = predict_options(
        args,
        args.output,
        OutputOptions(
            fmt=args.format, mask_suffix=args.mask_suffix, probabilities=args.save_probabilities,
            outlines=args.save_outlines, rois=args.save_rois, geojson=args.save_geojson,
        ),
        overwrite=args.overwrite,
    )  # fmt: skip
    keep_freed_memory()  # this process ends with the run: reuse what it frees (instances ~1.6x faster in a VM)
    summary = run_predictions(model, selection.images, options)
    if not summary.results:  # not the first process of a distributed run: that one reports
        return 0
    counts = {status: sum(r.status == status for r in summary.results) for status in ("ok", "skipped", "failed")}
    print(
        f"cellseg predict: {counts['ok']} predicted, {counts['skipped']} skipped (already done; --overwrite redoes), "
        f"{counts['failed']} failed; masks and predictions.csv in {args.output}"
    )
    for failed in summary.failed:
        print(f"  failed: {failed.error}", file=sys.stderr)
    return 1 if summary.failed or selection.missing or selection.unsupported else 0


def predict_options(args: argparse.Namespace, output: Path, outputs: OutputOptions, overwrite: bool) -> PredictOptions:
    """The ``PredictOptions`` of parsed model, instance and hardware arguments, writing ``outputs`` to ``output``."""
    from cellseg.inference.instances import DEFAULT_SEED_THRESHOLDS, InstanceConfig, SeedMethod
    from cellseg.inference.run import PredictOptions
    from cellseg.inference.segment import BlockConfig
    from cellseg.inference.tiling import TileConfig

    method: SeedMethod = args.seeds or "boundary"  # measured best, with or without a distance head
    return PredictOptions(
        output=output,
        tiles=TileConfig(
            tile_size=tuple(args.tile_size) if args.tile_size else None, overlap=args.overlap,
            max_tile=args.max_tile, batch_size=args.tile_batch, tta=args.tta, precision=args.precision,
            compile=args.compile,
        ),
        instances=InstanceConfig(
            method=method,
            foreground_threshold=args.foreground_threshold,
            seed_threshold=args.seed_threshold if args.seed_threshold is not None else DEFAULT_SEED_THRESHOLDS[method],
            split_height=args.split_height, min_size=args.min_size, fill_holes=not args.no_fill_holes,
            remove_border=args.remove_border,
        ),
        blocks=BlockConfig(block_size=args.block_size),
        outputs=outputs,
        overwrite=overwrite, workers=args.workers, accelerator=args.accelerator,
        devices=int(args.devices) if args.devices.isdigit() else args.devices, num_nodes=args.num_nodes,
        strategy=args.strategy, progress=not args.no_progress,
    )  # fmt: skip


def run_export(args: argparse.Namespace) -> int:
    """Run ``cellseg export``; return 0, or 1 when the checkpoint cannot be loaded."""
    from cellseg.inference.export import ExportError, example_input, export_model, sidecar_path, verify_export
    from cellseg.inference.model import CheckpointError, load_model

    try:
        path = export_model(args.checkpoint, args.output, args.format)
    except (CheckpointError, ExportError) as error:
        print(f"cellseg export: {error}", file=sys.stderr)
        return 1
    model = load_model(args.checkpoint)
    difference = verify_export(path, model, example_input(model))
    print(f"cellseg export: wrote {path} and {sidecar_path(path).name}; largest difference from the checkpoint "
          f"{difference:.1e}")  # fmt: skip
    if difference > 1e-3:
        print(f"cellseg export: {path} does not reproduce the checkpoint; do not deploy it.", file=sys.stderr)
        return 1
    return 0
