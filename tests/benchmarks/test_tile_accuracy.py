"""benchmarks/tile_accuracy.py scores a model's validation images with each tiling it is given."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.inference.model import load_model
from cellseg.inference.prepare import Preparation, prepare
from cellseg.io import ImageData

throughput = importlib.import_module("benchmarks.predict_throughput")
tiles = importlib.import_module("benchmarks.tile_accuracy")


def test_settings_name_patch_tiles_or_fitted_tiles() -> None:
    assert tiles.tile_config("256/0.125").tile_size == (256, 256)
    assert tiles.tile_config("256/0.125").overlap == 0.125
    fitted = tiles.tile_config("fit512/0.25")
    assert (fitted.tile_size, fitted.max_tile, fitted.overlap) == (None, 512, 0.25)
    with pytest.raises(ValueError, match="give TILE/OVERLAP or fitTILE/OVERLAP"):
        tiles.tile_config("big")


def test_each_setting_scores_every_image_and_every_modality(tmp_path: Path) -> None:
    model = load_model(throughput.write_random_checkpoint(tmp_path / "model.ckpt", [4, 8, 16], 32))
    images, truths = {}, {}
    for seed, name in enumerate(("a", "b")):
        sample = generate_sample(SyntheticConfig(shape=(64, 96)), seed=seed)
        image = ImageData(sample.image[None], 2, (1.0, 1.0), None, Path(f"{name}.tif"))
        images[name] = prepare(image, Preparation.of(model))
        truths[name] = sample.labels.astype(np.int32)
    subsets = {"a": "fluorescence", "b": "stained"}
    patch = tiles.score_setting(model, images, truths, subsets, "32/0.25")
    fitted = tiles.score_setting(model, images, truths, subsets, "fit64/0.25")
    for result in (patch, fitted):
        assert set(result) == {"setting", "seconds", "all", "fluorescence", "stained"}
        assert result["all"]["images"] == 2
        assert result["fluorescence"]["images"] == result["stained"]["images"] == 1
        assert all(0.0 <= result["all"][metric] <= 1.0 for metric in tiles.METRICS)
    assert patch["setting"] == "32/0.25"
