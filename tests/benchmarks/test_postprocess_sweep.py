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
