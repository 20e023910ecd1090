"""``cellseg review``: a self-contained HTML report to look over a prediction run's masks and decide about each.

Writes ``index.html`` with ``thumbs/`` and ``layers/`` (and ``run/`` with ``--run``) into the report folder and
prints where it is. Numpy, scikit-image and (with ``--run``) torch load after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellseg.io.errors import DatasetError

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from cellseg.review.report import ReportSummary

# The defaults of cellseg.review.flags.FlagThresholds (not imported: --help stays fast).
DEFAULT_MIN_CONFIDENCE = 0.75
DEFAULT_MIN_DICE = 0.7


def default_output(pred_dir: Path) -> Path:
    """The report folder when ``--output`` is not given: ``NAME_review`` beside the prediction folder ``NAME``.

    >>> default_output(Path("runs/demo/predictions"))
    PosixPath('runs/demo/predictions_review')
    """
    folder = Path(pred_dir)
    if folder.name in ("", ".", ".."):  # "." has no name of its own: take the folder's real one
        folder = Path(os.path.abspath(folder))
    return folder.parent / f"{folder.name}_review"


def add_review_parser(subcommands: Any) -> None:
    """Add ``review`` to the ``cellseg`` subcommands."""
    parser = subcommands.add_parser(
        "review",
        help="an HTML report to look over predicted masks and flag the bad ones (cellseg review OUT)",
        description=(
            "Write a self-contained HTML report of a cellseg predict output: every image with its contours, object "
            "count, median area, mean confidence (and Dice/F1 with --gt), flags for what looks wrong, a detail view "
            "with mask, contour, probability and truth layers, and accept/reject/needs-fix decisions exported as "
            "review.csv (for cellseg fit --data.exclude). Opens from file://; nothing is downloaded."
        ),
    )
    sources = parser.add_argument_group("input")
    sources.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="the --output folder of cellseg predict")
    sources.add_argument(
        "--images", type=Path, help="folder of the input images (default: the paths in predictions.csv)"
    )
    sources.add_argument("--gt", type=Path, help="ground-truth masks (or a dataset folder), for Dice and F1")
    sources.add_argument("--decisions", type=Path, help="a review.csv exported earlier, to start from its decisions")
    sources.add_argument("--run", type=Path, help="a training run's log folder (lightning_logs/version_N) to include")
    sources.add_argument("--mask-suffix", default="_masks", help="mask name suffix (default: _masks)")
    flags = parser.add_argument_group("flags")
    flags.add_argument(
        "--min-confidence",
        type=float,
        default=DEFAULT_MIN_CONFIDENCE,
        help=f"flag a mean object confidence below this (default: {DEFAULT_MIN_CONFIDENCE})",
    )
    flags.add_argument(
        "--min-dice",
        type=float,
        default=DEFAULT_MIN_DICE,
        help=f"with --gt: flag a Dice below this (default: {DEFAULT_MIN_DICE})",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output", type=Path, help="report folder (default: PRED_DIR_review beside PRED_DIR, e.g. out_review)"
    )
    output.add_argument("--overwrite", action="store_true", help="replace a report already in --output")
    output.add_argument("--serve", action="store_true", help="also serve the report on 127.0.0.1 until Ctrl-C")
    output.add_argument("--workers", type=int, help="processes drawing images (default: all CPUs from 16 images)")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_review(args: argparse.Namespace) -> int:
    """Run ``cellseg review``; return 0, or 2 when there is nothing to review or an input cannot be used."""
    from cellseg.review.decisions import DecisionsError

    try:
        summary = _run(args)
    except (DatasetError, DecisionsError) as error:
        print(f"cellseg review: {error}", file=sys.stderr)
        return 2
    print_summary(summary)
    if args.serve:
        serve(summary.output)
    return 0


def _run(args: argparse.Namespace) -> ReportSummary:
    from cellseg.review.flags import FlagThresholds
    from cellseg.review.report import ReportOptions, build_report

    if not 0 <= args.min_confidence <= 1 or not 0 <= args.min_dice <= 1:
        raise DatasetError(f"--min-confidence {args.min_confidence} and --min-dice {args.min_dice} must be in [0, 1]")
    if not args.pred_dir.is_dir():
        raise DatasetError(f"{args.pred_dir}: no such folder; give the --output folder of cellseg predict")
    options = ReportOptions(
        mask_suffix=args.mask_suffix,
        thresholds=FlagThresholds(min_confidence=args.min_confidence, min_dice=args.min_dice),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=None if args.no_progress else _progress_bar,
    )
    output = args.output if args.output is not None else default_output(args.pred_dir)
    return build_report(args.pred_dir, output, args.images, args.gt, args.decisions, args.run, options)


def _progress_bar(results: Any, total: int) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped]  # a Lightning dependency, without type stubs

    yield from tqdm(results, total=total, desc="review", unit="image", leave=False, disable=total < 50)


def print_summary(summary: ReportSummary) -> None:
    """Print one paragraph: images, flags per code, decisions, where the report is; then the notes."""
    if summary.flag_counts:
        counts = ", ".join(f"{code} {count}" for code, count in summary.flag_counts.items())
        flagged = f"{summary.flagged} flagged ({counts})"
    else:
        flagged = "none flagged"
    failed = f", {summary.failed} failed" if summary.failed else ""
    decided = f"; {summary.decisions} decisions read back" if summary.decisions else ""
    print(
        f"cellseg review: {summary.images} images{failed}, {flagged}{decided}; written in {summary.seconds:.1f} s to "
        f"{summary.index}\nopen {summary.index.resolve().as_uri()}"
    )
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)


def make_server(folder: Path, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1 (a free port when ``port`` is 0); call ``serve_forever``."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the base class names it ``format``
            """Stay quiet: every thumbnail would print a line."""

        def do_GET(self) -> None:
            """Serve the folder; answer the browser's favicon request with 204 (no 404 in the console)."""
            if self.path.split("?")[0] == "/favicon.ico":
                self.send_response(204)
                self.end_headers()
                return
            super().do_GET()

    handler = functools.partial(QuietHandler, directory=str(folder))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(folder: Path) -> None:
    """Serve the report folder on 127.0.0.1 and a free port, print its URL and block until Ctrl-C."""
    server = make_server(folder)
    host, port = server.server_address[:2]
    print(f"cellseg review: serving {folder} at http://{host!s}:{port}/index.html (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
