"""The ``cellseg`` command: one subcommand per job, each a thin wrapper over a library function.

Heavy libraries (torch, MONAI, Lightning) are imported inside the subcommands, after the arguments are parsed, so
``cellseg --help`` answers at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cellseg import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellseg`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="cellseg",
        description="Segment cells and nuclei in microscopy images with a residual + attention U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"cellseg {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = subcommands.add_parser(
        "demo",
        help="run the whole chain on built-in synthetic data (no download)",
        description="Run cellseg end to end on built-in synthetic data; nothing is downloaded.",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic image (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cellseg`` with ``argv`` (``sys.argv[1:]`` when ``None``) and return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from cellseg.demo import run_demo

        run_demo(seed=args.seed)
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects unknown commands first


if __name__ == "__main__":
    raise SystemExit(main())
