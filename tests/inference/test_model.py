from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cellseg.inference.model import CheckpointError, file_sha256, load_model


def test_checkpoint_brings_its_own_preparation(checkpoint: Path, distance_checkpoint: Path) -> None:
    model = load_model(checkpoint)
    assert model.output_names == ["background", "interior", "boundary"]
    assert model.tile_size == (64, 64)
    assert model.in_channels == 1
    assert model.stride == 4
    assert not model.module.training
    assert model.sha256 == file_sha256(checkpoint)
    assert not model.has_distance
    assert load_model(distance_checkpoint).has_distance


def test_missing_and_foreign_files_get_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt: not a readable"):
        load_model(garbage)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a cellseg checkpoint"):
        load_model(foreign)


def test_loaded_model_has_its_norms_folded_and_predicts_as_the_unfolded_one(checkpoint: Path) -> None:
    folded, unfolded = load_model(checkpoint), load_model(checkpoint, fold_norms=False)

    def norms(model: object) -> int:
        return sum(isinstance(module, torch.nn.BatchNorm2d) for module in model.module.modules())  # type: ignore[attr-defined]

    assert norms(folded) < norms(unfolded)
    image = torch.randn(2, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = unfolded.module.probabilities(unfolded.module(image))
        actual = folded.module.probabilities(folded.module(image))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
