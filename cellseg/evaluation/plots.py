"""Plots of an evaluation: scores against the IoU threshold, the spread of per-image Dice, and object counts.

Three PNGs, each written atomically, each titled with the number of images it shows:

- ``scores_by_threshold.png``: F1 and the DSB score (TP / (TP + FP + FN)) against the IoU threshold; for all images
  the mean over images (solid) and the score pooled over objects (dashed), and for each group its mean over images;
- ``dice_per_image.png``: a histogram of the per-image foreground Dice (stacked by group when grouped), with the mean
  over images marked;
- ``object_counts.png``: predicted against true objects per image (coloured by group), with the line y = x.

With no image scored, each file is still written and holds a single line saying so: a folder of plots from an
earlier run is then never mistaken for this one's. matplotlib is imported when plotting, not with the module, so
that ``cellseg --help`` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cellseg.io.atomic import atomic_output

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SCORES_FILE = "scores_by_threshold.png"
DICE_FILE = "dice_per_image.png"
COUNTS_FILE = "object_counts.png"
ALL_COLOUR = "black"
UNGROUPED_COLOUR = "tab:blue"
DICE_BINS = 20
LOG_SCALE_ABOVE = 100.0
"""Counts are drawn on symmetric-log axes when the largest is more than this many times the smallest (or 1)."""
# the panels of scores_by_threshold.png: the score's key in the summary, the panel's title, the y-axis label
THRESHOLD_PANELS: tuple[tuple[str, str, str], ...] = (
    ("f1", "F1", "F1 = 2 TP / (2 TP + FP + FN)"),
    ("dsb", "DSB score", "DSB score = TP / (TP + FP + FN)"),
)


def write_plots(output: Path, rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    """Draw the evaluation's three plots into ``output``, each written atomically.

    Args:
        output: an existing folder; files of the same names there are replaced.
        rows: one per image, from :func:`cellseg.evaluation.summary.image_row` (with a ``group`` key when grouped).
        summary: from :func:`cellseg.evaluation.summary.summarise`.

    Returns:
        The paths of ``scores_by_threshold.png``, ``dice_per_image.png`` and ``object_counts.png``. With no image
        (no rows, or a summary without scores) a plot says so instead of drawing empty axes.

    Raises:
        FileNotFoundError: ``output`` is not a folder.
    """
    if not output.is_dir():
        raise FileNotFoundError(f"{output}: no such folder; create it before writing the plots there")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = _group_colours(rows, summary)
    drawings: list[tuple[str, tuple[float, float], Callable[[Figure], None]]] = [
        (SCORES_FILE, (11.0, 4.5), partial(_draw_scores, summary=summary, colours=colours)),
        (DICE_FILE, (6.5, 4.5), partial(_draw_dice, rows=rows, colours=colours)),
        (COUNTS_FILE, (6.0, 6.0), partial(_draw_counts, rows=rows, colours=colours)),
    ]
    written = []
    for name, size, draw in drawings:
        figure = plt.figure(figsize=size)
        try:
            draw(figure)
            figure.tight_layout()
            with atomic_output(output / name) as temporary:
                figure.savefig(temporary, dpi=100)
        finally:
            plt.close(figure)
        written.append(output / name)
    return written


def _group_colours(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """A colour per group named in ``rows`` or ``summary``, the same in every plot (tab10, or tab20 beyond 10)."""
    from matplotlib import colormaps

    names = sorted({str(row["group"]) for row in rows if "group" in row} | set(summary.get("groups", {})))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(index % palette.N) for index, name in enumerate(names)}


def _say_nothing(figure: Figure, title: str) -> None:
    """Fill ``figure`` with one line of text where there is nothing to draw."""
    axis = figure.add_subplot()
    axis.text(0.5, 0.5, title, ha="center", va="center", fontsize=13)
    axis.set_axis_off()


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def _draw_scores(figure: Figure, summary: dict[str, Any], colours: dict[str, Any]) -> None:
    """F1 and DSB score against the IoU threshold: all images (mean solid, pooled dashed), each group's mean."""
    everything = summary["all"]
    if "mean" not in everything:
        _say_nothing(figure, "Scores by IoU threshold: no images scored")
        return
    panels = figure.subplots(1, len(THRESHOLD_PANELS))
    for axis, (score, title, label) in zip(panels, THRESHOLD_PANELS, strict=True):
        mean_label = f"all, mean over {_images(everything['images'])}"
        _plot_threshold_curve(axis, everything["mean"], score, ALL_COLOUR, "-", mean_label)
        pooled_label = f"all, pooled over {everything['n_true']} true objects"
        _plot_threshold_curve(axis, everything["pooled"], score, ALL_COLOUR, "--", pooled_label)
        for group, aggregated in summary.get("groups", {}).items():
            if "mean" in aggregated:
                group_label = f"{group}, mean over {_images(aggregated['images'])}"
                _plot_threshold_curve(axis, aggregated["mean"], score, colours[group], "-", group_label)
        axis.set(xlabel="IoU threshold", ylabel=label, ylim=(0, 1), title=title)
        axis.grid(alpha=0.3)
    panels[-1].legend(fontsize="small", loc="upper right")  # scores fall with the threshold: that corner is free
    figure.suptitle(f"Instance scores against the IoU threshold ({_images(everything['images'])})")


def _plot_threshold_curve(axis: Axes, scores: dict[str, Any], score: str, colour: Any, style: str, label: str) -> None:
    """One line of ``score`` (a key of each ``by_threshold`` entry) against the threshold, in threshold order."""
    points = sorted((float(threshold), float(values[score])) for threshold, values in scores["by_threshold"].items())
    thresholds, values = zip(*points, strict=True)
    axis.plot(thresholds, values, linestyle=style, color=colour, marker="o", markersize=3, label=label)


def _by_group(rows: Sequence[dict[str, Any]], column: str) -> dict[str | None, list[float]]:
    """The finite values of ``column``, by the rows' group (``None`` when the rows are not grouped), groups sorted."""
    values: dict[str | None, list[float]] = {}
    for row in rows:
        value = float(row[column])
        if math.isfinite(value):
            group = str(row["group"]) if "group" in row else None
            values.setdefault(group, []).append(value)
    return dict(sorted(values.items(), key=lambda item: "" if item[0] is None else item[0]))


def _colour(group: str | None, colours: dict[str, Any]) -> Any:
    """The colour of ``group``; one colour for rows without a group."""
    return colours[group] if group is not None else UNGROUPED_COLOUR


def _grouped(values: dict[str | None, list[float]]) -> bool:
    """Whether the values of :func:`_by_group` are grouped (so a legend names the groups)."""
    return any(group is not None for group in values)


def _group_label(group: str | None, images: int) -> str:
    """The legend entry of ``group`` and its number of images."""
    return f"{group if group is not None else 'no group'} ({_images(images)})"


def _draw_dice(figure: Figure, rows: Sequence[dict[str, Any]], colours: dict[str, Any]) -> None:
    """Histogram of the per-image Dice over [0, 1], stacked by group, with the mean over images marked."""
    from matplotlib.ticker import MaxNLocator

    dice = _by_group(rows, "dice")
    if not dice:
        _say_nothing(figure, "Dice per image: no images scored")
        return
    axis = figure.add_subplot()
    bins = np.linspace(0.0, 1.0, DICE_BINS + 1).tolist()
    labels = [_group_label(group, len(values)) for group, values in dice.items()] if _grouped(dice) else None
    bar_colours = [_colour(group, colours) for group in dice]
    axis.hist(list(dice.values()), bins=bins, stacked=True, color=bar_colours, label=labels, edgecolor="white")
    every_dice = [value for values in dice.values() for value in values]
    mean = float(np.mean(every_dice))
    axis.axvline(mean, color=ALL_COLOUR, linestyle="--", label=f"mean over images {mean:.3f}")
    axis.set(xlim=(0, 1), xlabel="foreground Dice of the image", ylabel="images")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(f"Dice per image ({_images(len(every_dice))})")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize="small", loc="upper left")


def _draw_counts(figure: Figure, rows: Sequence[dict[str, Any]], colours: dict[str, Any]) -> None:
    """Predicted against true objects per image, coloured by group, with y = x; symmetric-log when counts spread."""
    from matplotlib.ticker import FuncFormatter

    if not rows:
        _say_nothing(figure, "Object counts: no images scored")
        return
    axis = figure.add_subplot()
    true_counts, predicted_counts = _by_group(rows, "n_true"), _by_group(rows, "n_predicted")
    for group, true_values in true_counts.items():
        label = _group_label(group, len(true_values)) if _grouped(true_counts) else None
        colour = _colour(group, colours)
        axis.scatter(true_values, predicted_counts[group], s=14, alpha=0.7, color=colour, label=label)
    every_count = [value for values in (*true_counts.values(), *predicted_counts.values()) for value in values]
    highest = max(every_count)
    lowest_positive = min((value for value in every_count if value > 0), default=1.0)
    if highest > LOG_SCALE_ABOVE * max(lowest_positive, 1.0):
        # symlog is linear in [0, 1], logarithmic above: images with no object stay on the plot
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_yscale("symlog", linthresh=1.0)
        for counts_axis in (axis.xaxis, axis.yaxis):
            counts_axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 100, not 10^2
        limit = highest * 1.5
    else:
        limit = highest * 1.05 + 1
    axis.plot([0, limit], [0, limit], color=ALL_COLOUR, linewidth=1, linestyle="--", label="predicted = true")
    axis.set(xlim=(0, limit), ylim=(0, limit), xlabel="true objects", ylabel="predicted objects")
    axis.set_aspect("equal", adjustable="box")
    axis.set_title(f"Objects per image ({_images(len(rows))})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="upper left")
