"""``cellseg demo``: the whole chain on built-in synthetic data, on a CPU, with no download.

1. Writes a synthetic nuclei data set (``cellseg.data.synthetic``): training images under ``OUTPUT/train`` and
   held-out test images under ``OUTPUT/test`` (StarDist layout, TIFF).
2. Trains with ``cellseg fit --config configs/demo.yaml`` (Lightning, MONAI augmentation).
3. Predicts the held-out images with the best checkpoint through ``cellseg predict``'s pipeline (label masks,
   contour overlays, ``predictions.csv``).
4. Scores them with ``cellseg evaluate`` (per-image CSV, summary JSON, plots) and prints its table.
5. Writes the ``cellseg review`` report of the predictions (with the ground truth and the training run) to open in a
   browser.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.inference.inputs import InputImage
from cellseg.inference.model import load_model
from cellseg.inference.run import OutputOptions, PredictOptions, run_predictions
from cellseg.io import discover_pairs

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
TRAIN_IMAGES = 24
TEST_IMAGES = 8


def write_demo_data(output: Path, seed: int) -> tuple[Path, Path]:
    """Write the synthetic training and test sets under ``output`` (kept if already there); return both folders."""
    train, test = output / "train", output / "test"
    config = SyntheticConfig(shape=(256, 256))
    for folder, count, folder_seed in ((train, TRAIN_IMAGES, seed), (test, TEST_IMAGES, seed + 1)):
        if len(list((folder / "masks").glob("*.tif"))) != count:
            write_dataset(folder, count, config, seed=folder_seed)
    return train, test


def run_demo(output: str | Path = "data/demo", runs: str | Path = "runs/demo", seed: int = 0) -> float:
    """Run the demo; print where everything went and the Dice reached. Returns the pooled test Dice."""
    from cellseg.cli import main
    from cellseg.training.cli import run_fit

    start = time.perf_counter()
    output, runs = Path(output), Path(runs)
    print(f"[1/5] synthetic nuclei: {TRAIN_IMAGES} training and {TEST_IMAGES} test images -> {output}")
    train, test = write_demo_data(output, seed)

    print(f"[2/5] training with {DEMO_CONFIG} -> {runs}")
    cli = run_fit(
        [
            "--config", str(DEMO_CONFIG), "--data.data_dir", str(train),
            "--trainer.default_root_dir", str(runs), "--seed_everything", str(seed),
        ]
    )  # fmt: skip
    checkpoint_callback = cli.trainer.checkpoint_callback
    best = Path(getattr(checkpoint_callback, "best_model_path", "") or "")
    model = load_model(best)

    predictions = runs / "predictions"
    print(f"[3/5] cellseg predict with {best} -> {predictions}")
    pairs = discover_pairs(test).pairs
    images = [InputImage(pair.image, pair.name) for pair in pairs]
    options = PredictOptions(output=predictions, outputs=OutputOptions(outlines=True), workers=0, progress=False)
    run_predictions(model, images, replace(options, overwrite=True))
    evaluation = runs / "evaluation"
    print(f"[4/5] cellseg evaluate {predictions} against {test / 'masks'} -> {evaluation}")
    evaluate = ["evaluate", "--pred", str(predictions), "--gt", str(test), "--output", str(evaluation)]
    main([*evaluate, "--overwrite", "--no-progress"])
    pooled = json.loads((evaluation / "summary.json").read_text())["aggregates"]["all"]["pooled"]
    dice = float(pooled["dice"])
    report = runs / "review"
    print(f"[5/5] cellseg review {predictions} -> {report}")
    run_folder = best.parent.parent  # lightning_logs/version_N: learning curves, split, validation overlays
    review = ["review", str(predictions), "--gt", str(test), "--run", str(run_folder), "--output", str(report)]
    main([*review, "--overwrite"])
    print(f"Test Dice (pooled over {TEST_IMAGES} images): {dice:.3f}; instance F1@0.5 (pooled): "
          f"{pooled['by_threshold']['0.50']['f1']:.3f}; in {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"Checkpoints and logs: {runs}; masks, outlines and predictions.csv: {predictions}; scores and plots: "
          f"{evaluation}; review report: {report / 'index.html'}; data: {output}")  # fmt: skip
    return dice
