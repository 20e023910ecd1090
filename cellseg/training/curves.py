"""Learning curves of a run, drawn to a PNG when training ends (from the CSV log, so nothing else is needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

CURVES_FILE = "learning_curves.png"


def read_metrics(metrics_csv: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric of a Lightning ``metrics.csv`` as ``{name: [(step, value), ...]}``."""
    series: dict[str, list[tuple[int, float]]] = {}
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            for name, value in row.items():
                if name in ("epoch", "step") or not value:
                    continue
                series.setdefault(name, []).append((int(row["step"]), float(value)))
    return series


def plot_learning_curves(metrics_csv: Path, output: Path) -> Path:
    """Draw losses (left) and validation Dice/IoU (right) against the step; write ``output`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(metrics_csv)
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in sorted(series.items()):
        axis = losses if name.endswith("loss") else scores if name.startswith("val/") else None
        if axis is not None and points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=name)
    losses.set(xlabel="step", ylabel="loss", title="Loss")
    scores.set(xlabel="step", ylabel="score", title="Validation", ylim=(0, 1))
    for axis in (losses, scores):
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.tight_layout()
    temporary = output.with_name(f".{output.name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(output)
    return output


class LearningCurves(Callback):
    """Writes ``learning_curves.png`` next to the CSV log when ``fit`` ends (rank 0, CSV logger present)."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Plot the run's ``metrics.csv``."""
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                logger.save()
                metrics_csv = Path(logger.log_dir) / "metrics.csv"
                if metrics_csv.exists():
                    plot_learning_curves(metrics_csv, Path(logger.log_dir) / CURVES_FILE)
