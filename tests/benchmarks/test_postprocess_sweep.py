"""The post-processing sweep scores every setting of its grid and ranks them by F1@0.5."""

from __future__ import annotations

import importlib

import numpy as np

sweep_module = importlib.import_module("benchmarks.postprocess_sweep")


def two_touching_cells() -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(4, 24, 40)`` of two touching cells with clear interiors, and their true labels."""
    truth = np.zeros((24, 40), dtype=np.int32)
    truth[4:20, 4:20], truth[4:20, 20:36] = 1, 2
    probabilities = np.zeros((4, 24, 40), dtype=np.float32)
    probabilities[0] = truth == 0
    interior = np.zeros_like(truth, dtype=bool)
    interior[6:18, 6:18] = interior[6:18, 22:34] = True
    probabilities[1] = interior
    probabilities[2] = (truth > 0) & ~interior
    probabilities[3] = interior * 0.9
    return probabilities, truth


def test_every_setting_is_scored_and_the_ranking_is_by_f1() -> None:
    probabilities, truth = two_touching_cells()
    rows = sweep_module.sweep({"a": probabilities}, {"a": truth}, {"a": "fluorescence"})
    assert len(rows) == len(sweep_module.settings())
    f1s = [row["scores"]["all"]["f1_50"] for row in rows]
    assert f1s == sorted(f1s, reverse=True)
    assert f1s[0] == 1.0  # clear interiors: both cells found
    assert set(rows[0]["scores"]) == {"all", "fluorescence"}
    table = sweep_module.markdown(rows[:2], ["all", "fluorescence"])
    assert table.count("\n") == 3
    assert "fluorescence F1@0.5" in table


def test_the_grid_spans_the_given_split_heights_seeds_and_object_sizes() -> None:
    probabilities, truth = two_touching_cells()
    grid = {"split_heights": (0.0, 4.0), "min_seed_sizes": (8, 64), "min_sizes": (16, 400)}
    rows = sweep_module.sweep({"a": probabilities[:3]}, {"a": truth}, {"a": "phase"}, grid)
    boundary_settings = len(sweep_module.FOREGROUND_THRESHOLDS) * len(sweep_module.SEED_THRESHOLDS["boundary"])
    assert len(rows) == boundary_settings * 2 * 2 * 2  # no distance channel: boundary seeds only
    assert {row["setting"]["min_size"] for row in rows} == {16, 400}
    too_big = [row for row in rows if row["setting"]["min_size"] == 400]
    assert all(row["scores"]["all"]["f1_50"] == 0.0 for row in too_big)  # both 256 px cells dropped
    assert "| min size |" in sweep_module.markdown(rows[:1], ["all"])


def test_the_grid_spans_the_given_foreground_and_seed_thresholds() -> None:
    probabilities, truth = two_touching_cells()
    grid = {"split_heights": (0.0,), "foreground_thresholds": (0.3, 0.5, 0.7), "seed_thresholds": (0.5,)}
    rows = sweep_module.sweep({"a": probabilities}, {"a": truth}, {"a": "fluorescence"}, grid)
    assert len(rows) == 3 * 2  # both methods, each at the one seed threshold given
    assert {row["setting"]["foreground_threshold"] for row in rows} == {0.3, 0.5, 0.7}
    assert {row["setting"]["seed_threshold"] for row in rows} == {0.5}
