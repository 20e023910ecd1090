"""The flag rules: each fires where it should, states its numbers, and the run-relative ones need a real run."""

from __future__ import annotations

import pytest

from cellseg.review.collect import ImageStats
from cellseg.review.flags import FLAG_CODES, FlagThresholds, RunMedians, flag_rules, image_flags, run_medians

RUN = RunMedians(images=20, images_with_objects=19, median_count=30, median_area=100.0)


def codes(stats: ImageStats, run: RunMedians = RUN, thresholds: FlagThresholds | None = None) -> list[str]:
    return [flag.code for flag in image_flags(stats, run, thresholds)]


def test_an_ordinary_image_has_no_flag() -> None:
    stats = ImageStats("ok", objects=28, median_area=95.0, mean_confidence=0.9, border_objects=3, cut_objects=0)
    assert image_flags(stats, RUN) == []


@pytest.mark.parametrize(
    ("stats", "code", "reason"),
    [
        (ImageStats("ok", objects=0), "empty", "no object found"),
        (ImageStats("ok", objects=91, median_area=100.0), "count", "91 objects against the run's median of 30 (more"),
        (ImageStats("ok", objects=9, median_area=100.0), "count", "(more than 3x fewer)"),
        (ImageStats("ok", objects=30, median_area=251.0), "area", "area 251 px against the run's 100 px (more than"),
        (ImageStats("ok", objects=30, median_area=39.0), "area", "(more than 2.5x smaller)"),
        (ImageStats("ok", objects=30, mean_confidence=0.7), "low_confidence", "mean confidence 0.70 < 0.75"),
        (ImageStats("ok", objects=30, cut_objects=1), "cut", "1 object cut where image blocks met"),
        (ImageStats("ok", objects=30, border_objects=16), "border", "16 of 30 objects touch the image border"),
        (ImageStats("ok", objects=30, dice=0.42), "low_dice", "Dice 0.42 < 0.70"),
        (ImageStats("failed", error="a.tif: not a TIFF"), "failed", "prediction failed: a.tif: not a TIFF"),
    ],
)
def test_each_rule_fires_with_its_numbers(stats: ImageStats, code: str, reason: str) -> None:
    flags = image_flags(stats, RUN)
    assert [flag.code for flag in flags] == [code]
    assert reason in flags[0].reason
    assert flags[0].as_dict() == {"code": code, "reason": flags[0].reason}


def test_limits_are_exclusive() -> None:
    at_limits = ImageStats(
        "ok", objects=90, median_area=250.0, mean_confidence=0.75, border_objects=45, cut_objects=0, dice=0.7
    )
    assert image_flags(at_limits, RUN) == []
    assert codes(ImageStats("ok", objects=10, median_area=40.0), RUN) == []


def test_run_relative_rules_need_enough_images_and_objects() -> None:
    small_run = RunMedians(images=4, images_with_objects=4, median_count=30, median_area=100.0)
    assert codes(ImageStats("ok", objects=500, median_area=900.0), small_run) == []
    sparse_run = RunMedians(images=20, images_with_objects=20, median_count=2, median_area=100.0)
    assert codes(ImageStats("ok", objects=9, median_area=100.0), sparse_run) == []


def test_border_needs_enough_objects_and_empty_or_failed_images_get_only_their_flag() -> None:
    few = RunMedians(images=20, images_with_objects=20, median_count=4, median_area=100.0)
    assert codes(ImageStats("ok", objects=3, border_objects=3), few) == []
    assert codes(ImageStats("ok", objects=4, border_objects=3), few) == ["border"]
    assert codes(ImageStats("ok", objects=0, median_area=None, border_objects=0)) == ["empty"]
    assert codes(ImageStats("failed", objects=0, mean_confidence=0.1, dice=0.0)) == ["failed"]
    assert codes(ImageStats("ok")) == []  # no mask: nothing to judge
    long_error = image_flags(ImageStats("failed", error="x" * 1000), RUN)[0].reason
    assert len(long_error) < 400
    assert long_error.endswith("...")


def test_thresholds_are_options() -> None:
    stats = ImageStats("ok", objects=30, mean_confidence=0.85, dice=0.85)
    assert codes(stats) == []
    assert codes(stats, thresholds=FlagThresholds(min_confidence=0.9, min_dice=0.9)) == ["low_confidence", "low_dice"]


def test_several_flags_come_in_code_order() -> None:
    stats = ImageStats("ok", objects=1, median_area=1600.0, mean_confidence=0.5, cut_objects=2, dice=0.2)
    assert codes(stats) == ["count", "area", "low_confidence", "cut", "low_dice"]
    assert all(code in FLAG_CODES for code in codes(stats))


def test_run_medians_leave_out_failed_and_empty_images_where_they_should() -> None:
    stats = [
        ImageStats("ok", objects=10, median_area=50.0),
        ImageStats("ok", objects=20, median_area=70.0),
        ImageStats("ok", objects=0),
        ImageStats("failed"),
        ImageStats("skipped", objects=30, median_area=90.0),
    ]
    assert run_medians(stats) == RunMedians(images=4, images_with_objects=3, median_count=15, median_area=70.0)
    assert run_medians([]) == RunMedians(0, 0, None, None)


def test_flag_rules_state_the_run_numbers() -> None:
    rules = flag_rules(RUN, has_truth=True)
    assert list(rules) == list(FLAG_CODES)
    assert "(30)" in rules["count"]
    assert "(100 px)" in rules["area"]
    assert "0.70" in rules["low_dice"]
    assert "not applied" in flag_rules(RunMedians(2, 2, 30, 100.0))["area"]
    assert "low_dice" not in flag_rules(RUN)
