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
