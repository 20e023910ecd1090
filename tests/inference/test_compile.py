"""``cellseg predict --compile``: the network through ``torch.compile`` (inductor, with the machine's C++ compiler)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch._dynamo.utils import counters

from cellseg.cli import main
from cellseg.data.intensity import percentile_normalise
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.evaluation.matching import match_instances
from cellseg.inference.model import LoadedModel, load_model
from cellseg.inference.segment import segment_image
from cellseg.inference.tiling import TileConfig, predict_probabilities
from cellseg.io import read_mask


@pytest.fixture
def image() -> np.ndarray:
    """``(1, 160, 224)``: 6 x 9 = 54 tiles of 32 px at overlap 0.25, not a multiple of the tile batch of 4."""
    sample = generate_sample(SyntheticConfig(shape=(160, 224)), 11)
    return percentile_normalise(sample.image[None]).astype(np.float32)


@pytest.fixture
def fresh_inductor_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty compile cache, so the test compiles for real (and the user's cache is left alone)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()


def test_compiled_tiles_give_the_plain_probabilities_with_one_compilation(
    checkpoint: Path, image: np.ndarray, fresh_inductor_cache: None
) -> None:
    model: LoadedModel = load_model(checkpoint)
    tiles = TileConfig(tile_size=(32, 32))
    plain = predict_probabilities(model, image, tiles)
    counters.clear()
    compiled = predict_probabilities(model, image, TileConfig(tile_size=(32, 32), compile=True))
    assert np.abs(plain - compiled).max() < 1e-4
    # The last batch (2 tiles) was padded to 4: one graph, compiled once, served all 14 batches.
    assert counters["stats"]["unique_graphs"] == 1
    again = predict_probabilities(model, image[:, :96, :96], TileConfig(tile_size=(32, 32), compile=True))
    assert counters["stats"]["unique_graphs"] == 1  # another image, the same compiled network
    assert np.abs(again - predict_probabilities(model, image[:, :96, :96], tiles)).max() < 1e-4
    cells = segment_image(model, image, TileConfig(tile_size=(32, 32), compile=True)).labels
    assert match_instances(segment_image(model, image, tiles).labels, cells).at(0.5).f1 > 0.99


def test_without_a_working_compiler_the_plain_network_runs_with_a_warning(
    checkpoint: Path, image: np.ndarray, fresh_inductor_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/c++"))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    model = load_model(checkpoint)
    crop = image[:, :64, :64]
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*uncompiled"):
        compiled = predict_probabilities(model, crop, TileConfig(tile_size=(32, 32), compile=True))
    plain = predict_probabilities(model, crop, TileConfig(tile_size=(32, 32)))
    assert np.abs(compiled - plain).max() < 1e-5  # the same network; the padded last batch rounds alike


def test_predict_compile_from_the_command_line(checkpoint: Path, image: np.ndarray, tmp_path: Path) -> None:
    raw = (image[0] * 4000 + 500).astype(np.uint16)
    tifffile.imwrite(tmp_path / "cells.tif", raw)
    for name, options in (("plain", []), ("compiled", ["--compile"])):
        arguments = [
            "predict",
            "--model",
            str(checkpoint),
            str(tmp_path / "cells.tif"),
            "--output",
            str(tmp_path / name),
        ]
        assert main([*arguments, "--no-progress", "--workers", "0", *options]) == 0
    provenance = json.loads((tmp_path / "compiled" / "provenance.json").read_text())
    assert provenance["options"]["tiles"]["compile"] is True
    plain, compiled = (read_mask(tmp_path / name / "cells_masks.tif") for name in ("plain", "compiled"))
    assert plain.max() > 0
    assert match_instances(plain, compiled).at(0.5).f1 > 0.99
