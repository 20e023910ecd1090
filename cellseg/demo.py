"""``cellseg demo``: the whole chain on built-in synthetic data, on a CPU, with no download.

1. Writes a synthetic nuclei data set (``cellseg.data.synthetic``): training images under ``OUTPUT/train`` and
   held-out test images under ``OUTPUT/test`` (StarDist layout, TIFF).
2. Trains with ``cellseg fit --config configs/demo.yaml`` (Lightning, MONAI augmentation).
3. Predicts the held-out images with the best checkpoint through ``cellseg predict``'s pipeline (label masks,
   contour overlays, ``predictions.csv``), and prints each image's foreground Dice and instance F1 at IoU 0.5
   against the truth (``cellseg.evaluation``).

``cellseg evaluate`` and ``cellseg review`` take over the scoring and add the browser report as they land.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.evaluation.matching import MatchCounts, match_instances
from cellseg.inference.inputs import InputImage
from cellseg.inference.model import load_model
from cellseg.inference.run import OutputOptions, PredictOptions, run_predictions
from cellseg.io import discover_pairs, read_mask

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
    from cellseg.training.cli import run_fit

    start = time.perf_counter()
    output, runs = Path(output), Path(runs)
    print(f"[1/3] synthetic nuclei: {TRAIN_IMAGES} training and {TEST_IMAGES} test images -> {output}")
    train, test = write_demo_data(output, seed)

    print(f"[2/3] training with {DEMO_CONFIG} -> {runs}")
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
    print(f"[3/3] cellseg predict with {best} -> {predictions}")
    pairs = discover_pairs(test).pairs
    images = [InputImage(pair.image, pair.name) for pair in pairs]
    options = PredictOptions(output=predictions, outputs=OutputOptions(outlines=True), workers=0, progress=False)
    run_predictions(model, images, replace(options, overwrite=True))
    intersection_total = size_total = 0
    pooled: MatchCounts | None = None
    for pair in pairs:
        labels = read_mask(predictions / f"{pair.name}_masks.tif")
        truth = read_mask(pair.mask)
        scores = match_instances(truth, labels)
        pooled = scores.at(0.5) if pooled is None else pooled + scores.at(0.5)
        intersection_total += int(((labels > 0) & (truth > 0)).sum())
        size_total += int((labels > 0).sum() + (truth > 0).sum())
        print(f"  {pair.name}: Dice {scores.dice:.3f}, F1@0.5 {scores.at(0.5).f1:.3f}, "
              f"{scores.n_predicted} cells found, {scores.n_true} true")  # fmt: skip
    dice = 2 * intersection_total / max(size_total, 1)
    f1 = pooled.f1 if pooled is not None else float("nan")
    print(f"Test Dice (pooled over {TEST_IMAGES} images): {dice:.3f}; instance F1@0.5 (pooled): {f1:.3f}; "
          f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"Checkpoints and logs: {runs}; masks, outlines and predictions.csv: {predictions}; data: {output}")
    return dice
