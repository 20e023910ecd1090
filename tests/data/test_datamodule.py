from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import tifffile
import torch

from cellseg.data.datamodule import SPLIT_FILE, CellDataModule, split_names
from cellseg.data.dataset import LoadedSample, PatchDataset, WholeImageDataset
from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.io import DatasetError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(folder, 6, SyntheticConfig(shape=(72, 96), n_nuclei=(4, 8)), seed=0)
    return folder


def test_split_is_seeded_and_keeps_every_image_once() -> None:
    names = [f"img{i}" for i in range(20)]
    train, val = split_names(names, 0.15, seed=3)
    assert sorted(train + val) == sorted(names)
    assert len(val) == 3
    assert split_names(names, 0.15, seed=3) == (train, val)
    assert split_names(names, 0.15, seed=4) != (train, val)


def test_split_refuses_too_few_images_and_unknown_names() -> None:
    with pytest.raises(DatasetError, match="at least 2"):
        split_names(["only"], 0.5, seed=0)
    with pytest.raises(DatasetError, match="not in the data set: zz"):
        split_names(["a", "b"], 0.5, seed=0, validation_names=["zz"])


def test_setup_loads_splits_and_writes_the_split(dataset: Path, tmp_path: Path) -> None:
    module = CellDataModule(str(dataset), patch_size=[64, 64], validation_fraction=0.34, num_workers=0)
    module.trainer = L.Trainer(default_root_dir=tmp_path, logger=False, accelerator="cpu")
    module.setup("fit")
    assert len(module.train_samples) == 4
    assert len(module.val_samples) == 2
    record = json.loads((tmp_path / SPLIT_FILE).read_text())
    assert sorted(record["train"] + record["validation"]) == [f"synthetic_{i:03d}" for i in range(6)]
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (8, 1, 64, 64)
    assert batch["image"].dtype == torch.float32
    assert batch["label"].shape == (8, 1, 64, 64)
    assert batch["label"].dtype == torch.int64
    val_batch = next(iter(module.val_dataloader()))
    assert val_batch["image"].shape == (1, 1, 64, 96)  # 72 cropped to a multiple of 32


def test_unusable_pairs_are_skipped_and_reported(dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "masks").mkdir()
    for name in ("synthetic_000", "synthetic_001", "synthetic_002"):
        for kind in ("images", "masks"):
            (broken / kind / f"{name}.tif").write_bytes((dataset / kind / f"{name}.tif").read_bytes())
    (broken / "images" / "corrupt.tif").write_bytes(b"not a tiff at all")
    tifffile.imwrite(broken / "masks" / "corrupt.tif", np.ones((8, 8), dtype=np.uint16))
    tifffile.imwrite(broken / "images" / "empty.tif", np.ones((72, 96), dtype=np.uint16))
    tifffile.imwrite(broken / "masks" / "empty.tif", np.zeros((72, 96), dtype=np.uint16))
    tifffile.imwrite(broken / "images" / "unannotated.tif", np.ones((72, 96), dtype=np.uint16))
    module = CellDataModule(str(broken), patch_size=[64, 64], num_workers=0)
    with pytest.warns(UserWarning, match="skipped"):
        module.setup("fit")
    assert len(module.train_samples) + len(module.val_samples) == 3
    reasons = "\n".join(module.skipped)
    assert "corrupt.tif" in reasons
    assert "empty.tif: has no object" in reasons
    assert "unannotated.tif: no mask found" in reasons


def test_patches_favour_foreground_and_pad_small_images() -> None:
    labels = np.zeros((40, 200), dtype=np.int32)
    labels[20:24, 180:184] = 1  # one small cell in a wide, mostly empty field
    sample = LoadedSample("wide", np.zeros((1, 40, 200), dtype=np.float32), labels)
    torch.manual_seed(0)
    patches = PatchDataset([sample], patch_size=[64, 64], length=50, foreground_ratio=1.0)
    items = [patches[i] for i in range(50)]
    assert all(item["image"].shape == (1, 64, 64) for item in items)
    assert all(item["label"].any() for item in items)
    uniform = PatchDataset([sample], patch_size=[64, 64], length=50, foreground_ratio=0.0)
    assert sum(bool(uniform[i]["label"].any()) for i in range(50)) < 25


def test_whole_images_are_cropped_to_the_divisor_not_padded() -> None:
    sample = LoadedSample("odd", np.ones((2, 50, 70), dtype=np.float32), np.ones((50, 70), dtype=np.int32))
    item = WholeImageDataset([sample], size_divisor=16)[0]
    assert item["image"].shape == (2, 48, 64)
    assert item["label"].shape == (1, 48, 64)


def test_patches_differ_between_indices_under_the_same_seed() -> None:
    """What keeps two DDP processes, seeded alike but given different indices, from training on the same patches."""
    rng = np.random.default_rng(0)
    sample = LoadedSample("noise", rng.random((1, 128, 128), dtype=np.float32), np.ones((128, 128), dtype=np.int32))
    patches = PatchDataset([sample], patch_size=[32, 32], length=4)
    torch.manual_seed(0)
    first = patches[0]["image"]
    torch.manual_seed(0)
    again = patches[0]["image"]
    torch.manual_seed(0)
    other_index = patches[1]["image"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other_index)
