"""The ``cellseg`` command: one subcommand per job, each a thin wrapper over a library function.

Heavy libraries (torch, MONAI, Lightning) are imported inside the subcommands, after the arguments are parsed, so
``cellseg --help`` answers at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cellseg import __version__
from cellseg.evaluation.cli import add_evaluate_parser, run_evaluate
from cellseg.inference.cli import add_export_parser, add_predict_parser, run_export, run_predict
from cellseg.review.cli import add_review_parser, run_review


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellseg`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="cellseg",
        description="Segment cells and nuclei in microscopy images with a residual + attention U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"cellseg {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = subcommands.add_parser(
        "fit",
        help="train a model on a folder of images and masks (cellseg fit --config configs/demo.yaml)",
        add_help=False,  # LightningCLI answers --help with every option
        prefix_chars="\0",  # hand every argument, dashes included, to LightningCLI
    )
    fit.add_argument("lightning_arguments", nargs=argparse.REMAINDER)

    add_predict_parser(subcommands)
    add_evaluate_parser(subcommands)
    add_review_parser(subcommands)
    add_export_parser(subcommands)

    demo = subcommands.add_parser(
        "demo",
        help="run the whole chain on built-in synthetic data (no download)",
        description="Run cellseg end to end on built-in synthetic data; nothing is downloaded.",
    )
    demo.add_argument("--output", default="data/demo", help="where the synthetic data go (default: data/demo)")
    demo.add_argument("--runs", default="runs/demo", help="where checkpoints, logs and masks go (default: runs/demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cellseg`` with ``argv`` (``sys.argv[1:]`` when ``None``) and return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        from cellseg.training.cli import run_fit

        run_fit(args.lightning_arguments)
        return 0
    if args.command == "predict":
        return run_predict(args)
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "review":
        return run_review(args)
    if args.command == "export":
        return run_export(args)
    if args.command == "demo":
        from cellseg.demo import run_demo

        run_demo(output=args.output, runs=args.runs, seed=args.seed)
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects unknown commands first


if __name__ == "__main__":
    raise SystemExit(main())
