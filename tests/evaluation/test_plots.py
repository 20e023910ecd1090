from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.figure import Figure
from PIL import Image

from cellseg.evaluation.matching import match_instances
from cellseg.evaluation.plots import COUNTS_FILE, DICE_FILE, SCORES_FILE, _draw_counts, write_plots
from cellseg.evaluation.scoring import ImageEvaluation
from cellseg.evaluation.summary import image_row, summarise

Labels = npt.NDArray[np.int32]
PLOTS = [SCORES_FILE, DICE_FILE, COUNTS_FILE]


def squares(n_objects: int, shift: int = 0, drop: int = 0) -> Labels:
    """``n_objects`` 6 x 6 squares on a row, all moved right by ``shift`` and the last ``drop`` left out."""
    labels = np.zeros((10, 10 * n_objects + 5), dtype=np.int32)
    for index in range(n_objects - drop):
        start = 10 * index + 2 + shift
        labels[2:8, start : start + 6] = index + 1
    return labels


def evaluation(name: str, truth: Labels, predicted: Labels) -> ImageEvaluation:
    return ImageEvaluation(name, match_instances(truth, predicted), False, False, 0.0)


def evaluations() -> list[ImageEvaluation]:
    """Six images from perfect to poor: shifted objects lose IoU, dropped ones are missed."""
    cases = [(4, 0, 0), (5, 1, 0), (3, 2, 1), (6, 1, 2), (2, 3, 0), (4, 0, 3)]
    return [evaluation(f"image{i}", squares(n), squares(n, shift, drop)) for i, (n, shift, drop) in enumerate(cases)]


def assert_plot(path: Path) -> None:
    """``path`` is a PNG of more than 100 x 100 pixels holding more than one colour."""
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert (pixels != pixels[0, 0]).any()


def assert_written(output: Path, written: list[Path]) -> None:
    """The three plots were written, returned in order, and nothing else (no temporary file) is left."""
    assert written == [output / name for name in PLOTS]
    for path in written:
        assert_plot(path)
    assert sorted(path.name for path in output.iterdir()) == sorted(PLOTS)


def test_write_plots_without_groups(tmp_path: Path) -> None:
    scored = evaluations()
    rows = [image_row(e) for e in scored]
    assert_written(tmp_path, write_plots(tmp_path, rows, summarise(scored)))


def test_write_plots_with_groups(tmp_path: Path) -> None:
    scored = evaluations()
    groups = {e.name: "fluorescence" if index % 2 else "brightfield" for index, e in enumerate(scored)}
    rows = [image_row(e, groups[e.name]) for e in scored]
    summary = summarise(scored, groups)
    assert set(summary["groups"]) == {"fluorescence", "brightfield"}
    assert_written(tmp_path, write_plots(tmp_path, rows, summary))


def test_write_plots_with_no_image_writes_placeholders(tmp_path: Path) -> None:
    summary = summarise([])
    assert "mean" not in summary["all"]
    assert_written(tmp_path, write_plots(tmp_path, [], summary))


def test_write_plots_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        write_plots(tmp_path / "missing", [], summarise([]))


def count_axis(rows: list[dict[str, Any]]) -> Any:
    figure = Figure()
    _draw_counts(figure, rows, {})
    return figure.axes[0]


def test_object_counts_go_symmetric_log_when_they_span_decades() -> None:
    many = np.arange(1, 401, dtype=np.int32).reshape(20, 20)  # 400 one-pixel objects
    two = np.zeros_like(many)
    two[0, :2] = [1, 2]
    empty = np.zeros_like(many)
    truths = {"many": many, "two": two, "none": empty}
    spread = [image_row(evaluation(name, truth, two)) for name, truth in truths.items()]
    axis = count_axis(spread)
    assert (axis.get_xscale(), axis.get_yscale()) == ("symlog", "symlog")
    assert axis.get_xlim() == axis.get_ylim()
    assert axis.get_xlim()[0] == 0  # the image with no true object stays on the plot

    close = [image_row(e) for e in evaluations()]
    assert (count_axis(close).get_xscale(), count_axis(close).get_yscale()) == ("linear", "linear")


def test_importing_plots_leaves_matplotlib_unimported() -> None:
    check = "import sys, cellseg.evaluation.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)
