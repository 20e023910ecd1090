"""Flags: what looks wrong in one image's segmentation, judged on its own or against the rest of its run.

Every rule is a pure function of an image's numbers (:class:`cellseg.review.collect.ImageStats`) and, for the
run-relative ones, of the run's medians (:class:`RunMedians`). A flag carries its code and a reason that states the
numbers, so a reader sees why without knowing the rule. The rules and their default thresholds
(:class:`FlagThresholds`):

- ``empty``: no object in the mask.
- ``count``: the object count is more than 3x above or below the run's median count. Applied only when the run has
  at least 5 predicted images and a median of at least 3 objects, where a median says something.
- ``area``: the median object area is more than 2.5x above or below the run's median of per-image medians (over
  images with objects; also only from 5 such images on).
- ``low_confidence``: the mean object confidence (from ``predictions.csv``) is below 0.75.
- ``cut``: objects were cut where the blocks of a large image met (wider than the block margin).
- ``border``: more than half the objects touch the image border, in an image with at least 4 objects.
- ``low_dice``: foreground Dice against the ground truth is below 0.7 (only with ground truth).
- ``failed``: the image could not be predicted; no other rule applies to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellseg.review.collect import ImageStats

FLAG_CODES: tuple[str, ...] = ("empty", "count", "area", "low_confidence", "cut", "border", "low_dice", "failed")
_ERROR_CHARS = 300  # a failed image's error, as much as a table cell can show


@dataclass(frozen=True)
class FlagThresholds:
    """The thresholds of the flag rules (see the module docstring).

    Attributes:
        count_factor: flag counts more than this factor above or below the run's median count.
        area_factor: flag median areas more than this factor above or below the run's median of medians.
        min_confidence: flag mean confidences below this.
        min_dice: flag Dice scores below this.
        min_images: the run-relative rules need at least this many images (with objects, for ``area``).
        min_median_count: the ``count`` rule needs a run median of at least this many objects.
        border_share: flag images where more than this share of the objects touch the border...
        border_min_objects: ...and that have at least this many objects.
    """

    count_factor: float = 3.0
    area_factor: float = 2.5
    min_confidence: float = 0.75
    min_dice: float = 0.7
    min_images: int = 5
    min_median_count: float = 3.0
    border_share: float = 0.5
    border_min_objects: int = 4


@dataclass(frozen=True)
class Flag:
    """One thing that looks wrong with an image.

    Attributes:
        code: one of ``FLAG_CODES``.
        reason: why, with the numbers (``"Dice 0.42 < 0.70"``).
    """

    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """``{"code": ..., "reason": ...}``, as the report's data holds it."""
        return {"code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class RunMedians:
    """What the run-relative rules compare an image with.

    Attributes:
        images: predicted images (not failed) in the run.
        images_with_objects: of those, the ones with at least one object.
        median_count: the median object count over the predicted images (``None`` without any).
        median_area: the median of the per-image median areas over the images with objects (``None`` without any).
    """

    images: int
    images_with_objects: int
    median_count: float | None
    median_area: float | None


def run_medians(stats: Sequence[ImageStats]) -> RunMedians:
    """The medians of a run's counts and areas, over the images that were predicted.

    Examples:
        >>> from cellseg.review.collect import ImageStats
        >>> run = [ImageStats("ok", objects=n, median_area=a) for n, a in [(10, 50.0), (12, 60.0), (0, None)]]
        >>> run_medians(run)
        RunMedians(images=3, images_with_objects=2, median_count=10, median_area=55.0)
    """
    counts = [s.objects for s in stats if s.status != "failed" and s.objects is not None]
    areas = [s.median_area for s in stats if s.status != "failed" and s.objects and s.median_area is not None]
    return RunMedians(
        images=len(counts),
        images_with_objects=len(areas),
        median_count=statistics.median(counts) if counts else None,
        median_area=statistics.median(areas) if areas else None,
    )


def image_flags(stats: ImageStats, run: RunMedians, thresholds: FlagThresholds | None = None) -> list[Flag]:
    """The flags of one image, in the order of ``FLAG_CODES``.

    Args:
        stats: the image's numbers.
        run: the run's medians (:func:`run_medians` over every image of the run, this one included).
        thresholds: the rules' thresholds; the defaults when ``None``.

    Returns:
        The flags raised; empty when nothing looks wrong.

    Examples:
        >>> from cellseg.review.collect import ImageStats
        >>> run = RunMedians(images=20, images_with_objects=20, median_count=30, median_area=100.0)
        >>> [f.reason for f in image_flags(ImageStats("ok", objects=5, median_area=110.0, dice=0.5), run)]
        ["5 objects against the run's median of 30 (more than 3x fewer)", 'Dice 0.50 < 0.70']
        >>> image_flags(ImageStats("ok", objects=0), run)
        [Flag(code='empty', reason='no object found')]
    """
    limits = thresholds or FlagThresholds()
    if stats.status == "failed":
        error = stats.error if len(stats.error) <= _ERROR_CHARS else stats.error[: _ERROR_CHARS - 3] + "..."
        return [Flag("failed", f"prediction failed: {error}" if error else "prediction failed")]
    if stats.objects is None:  # no mask to judge
        return []
    if stats.objects == 0:
        flags = [Flag("empty", "no object found")]
    else:
        flags = [*_count_flag(stats.objects, run, limits), *_area_flag(stats, run, limits)]
    if stats.mean_confidence is not None and stats.mean_confidence < limits.min_confidence:
        shown = _below(stats.mean_confidence, limits.min_confidence)
        flags.append(Flag("low_confidence", f"mean confidence {shown} < {limits.min_confidence:.2f}"))
    if stats.cut_objects:
        flags.append(Flag("cut", f"{_objects(stats.cut_objects)} cut where image blocks met (wider than the margin)"))
    flags.extend(_border_flag(stats.objects, stats.border_objects, limits))
    if stats.dice is not None and stats.dice < limits.min_dice:
        flags.append(Flag("low_dice", f"Dice {_below(stats.dice, limits.min_dice)} < {limits.min_dice:.2f}"))
    return flags


def count_rule_applies(run: RunMedians, thresholds: FlagThresholds) -> bool:
    """Whether the run is large enough, and its median count high enough, for the ``count`` rule."""
    return (
        run.images >= thresholds.min_images
        and run.median_count is not None
        and run.median_count >= thresholds.min_median_count
    )


def area_rule_applies(run: RunMedians, thresholds: FlagThresholds) -> bool:
    """Whether the run has enough images with objects for the ``area`` rule."""
    return run.images_with_objects >= thresholds.min_images and bool(run.median_area)


def _border_flag(objects: int, border: int | None, limits: FlagThresholds) -> list[Flag]:
    if border is None or objects < limits.border_min_objects or border <= limits.border_share * objects:
        return []
    return [Flag("border", f"{border} of {objects} objects touch the image border")]


def _count_flag(objects: int, run: RunMedians, limits: FlagThresholds) -> list[Flag]:
    if not count_rule_applies(run, limits):
        return []
    assert run.median_count is not None  # count_rule_applies checked it
    direction = _far_from(objects, run.median_count, limits.count_factor)
    if direction is None:
        return []
    return [
        Flag(
            "count",
            f"{_objects(objects)} against the run's median of {run.median_count:g} "
            f"(more than {limits.count_factor:g}x {direction})",
        )
    ]


def _area_flag(stats: ImageStats, run: RunMedians, limits: FlagThresholds) -> list[Flag]:
    if stats.median_area is None or not area_rule_applies(run, limits):
        return []
    assert run.median_area is not None  # area_rule_applies checked it
    direction = _far_from(stats.median_area, run.median_area, limits.area_factor)
    if direction is None:
        return []
    word = "larger" if direction == "more" else "smaller"
    return [
        Flag(
            "area",
            f"median object area {stats.median_area:.0f} px against the run's {run.median_area:.0f} px "
            f"(more than {limits.area_factor:g}x {word})",
        )
    ]


def _far_from(value: float, median: float, factor: float) -> str | None:
    """``"more"`` or ``"fewer"`` when ``value`` is more than ``factor`` times above or below ``median``, else None."""
    if value > factor * median:
        return "more"
    if value * factor < median:
        return "fewer"
    return None


def _objects(count: int) -> str:
    return f"{count} object" if count == 1 else f"{count} objects"


def flag_rules(run: RunMedians, thresholds: FlagThresholds | None = None, has_truth: bool = False) -> dict[str, str]:
    """Each flag code's rule in words, with this run's numbers, for the report's legend.

    ``low_dice`` is left out without ground truth, since it cannot be raised.

    Examples:
        >>> rules = flag_rules(RunMedians(images=3, images_with_objects=3, median_count=12, median_area=80.0))
        >>> rules["count"]
        "objects more than 3x above or below the run's median (not applied: needs 5 predicted images and a median of 3)"
        >>> "low_dice" in rules
        False
    """
    limits = thresholds or FlagThresholds()
    if count_rule_applies(run, limits):
        count = f"objects more than {limits.count_factor:g}x above or below the run's median ({run.median_count:g})"
    else:
        count = (
            f"objects more than {limits.count_factor:g}x above or below the run's median (not applied: needs "
            f"{limits.min_images} predicted images and a median of {limits.min_median_count:g})"
        )
    area = f"median object area more than {limits.area_factor:g}x above or below the run's median of medians"
    if area_rule_applies(run, limits):
        area += f" ({run.median_area:.0f} px)"
    else:
        area += f" (not applied: needs {limits.min_images} images with objects)"
    rules = {
        "empty": "no object found",
        "count": count,
        "area": area,
        "low_confidence": f"mean object confidence below {limits.min_confidence:.2f}",
        "cut": "objects cut where the blocks of a large image met (wider than the block margin)",
        "border": (
            f"more than {limits.border_share:.0%} of the objects touch the image border "
            f"(images with at least {limits.border_min_objects} objects)"
        ),
        "low_dice": f"foreground Dice against the ground truth below {limits.min_dice:.2f}",
        "failed": "the image could not be predicted",
    }
    if not has_truth:
        del rules["low_dice"]
    return rules


def _below(value: float, limit: float) -> str:
    """``value`` with enough decimals to read as less than ``limit`` (0.6996 against 0.70 shows as 0.6996).

    Examples:
        >>> _below(0.42, 0.7), _below(0.6996, 0.7), _below(0.69999999, 0.7)
        ('0.42', '0.6996', '0.69999999')
    """
    for decimals in (2, 3, 4):
        text = f"{value:.{decimals}f}"
        if float(text) < limit:
            return text
    return f"{value:.10g}"
