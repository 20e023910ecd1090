from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio

from cellseg.training.curves import plot_learning_curves, read_metrics


def test_curves_are_read_from_the_csv_log_and_drawn(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "epoch,step,train/loss,val/dice,val/iou,val/loss\n"
        "0,4,1.2,,,\n0,7,,0.5,0.33,1.0\n1,9,0.8,,,\n1,15,,0.8,0.67,0.6\n"
    )
    series = read_metrics(metrics)
    assert series["train/loss"] == [(4, 1.2), (9, 0.8)]
    assert series["val/dice"] == [(7, 0.5), (15, 0.8)]
    output = plot_learning_curves(metrics, tmp_path / "curves.png")
    image = iio.imread(output)
    assert image.shape[0] > 100
    assert image.shape[1] > 200
    assert not list(tmp_path.glob(".*tmp*"))
