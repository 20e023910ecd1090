"""``CellDataModule``: a folder of annotated images in, seeded train/validation split, patch loaders out."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from cellseg.data.dataset import LoadedSample, PatchDataset, Sample, WholeImageDataset, load_pairs
from cellseg.data.object_size import median_object_diameter
from cellseg.io import DatasetError, ImagePair, discover_pairs

SPLIT_FILE = "split.json"


def split_names(
    names: Sequence[str],
    validation_fraction: float,
    seed: int,
    validation_names: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Split image names into training and validation lists, seeded or as given.

    With ``validation_names`` those images validate and the rest train; otherwise a seeded random
    ``validation_fraction`` (at least one image) validates.

    Raises:
        DatasetError: fewer than two images, or ``validation_names`` names an image that is not there.

    Example:
        >>> split_names(["a", "b", "c", "d"], 0.25, seed=0, validation_names=["c"])
        (['a', 'b', 'd'], ['c'])
    """
    if len(names) < 2:
        raise DatasetError(f"training needs at least 2 annotated images (one to validate on), found {len(names)}.")
    if validation_names is not None:
        unknown = sorted(set(validation_names) - set(names))
        if unknown:
            raise DatasetError(f"validation_names lists images that are not in the data set: {', '.join(unknown)}.")
        chosen = set(validation_names)
    else:
        count = min(max(round(validation_fraction * len(names)), 1), len(names) - 1)
        order = np.random.default_rng(seed).permutation(len(names))
        chosen = {names[i] for i in order[:count]}
    return [n for n in names if n not in chosen], [n for n in names if n in chosen]


class CellDataModule(L.LightningDataModule):
    """Loads a folder of images and instance masks (StarDist or Cellpose layout) for training.

    Every image is decoded once, normalised by percentiles and converted to ``in_channels`` in ``setup``, then kept
    in memory; training draws random patches (mostly centred on cells), validation takes whole images. Pairs that
    cannot be used are skipped with a one-line warning each (listed in ``skipped``). The split is written to
    ``split.json`` in the run's log folder. ``object_diameter`` is the training masks' median object diameter
    (pixels), which the model stores for its post-processing.

    With ``exclude`` (a ``review.csv`` exported by ``cellseg review``), images decided ``reject`` or ``needs-fix``
    are left out of training and validation; ``split.json`` lists them under ``excluded`` and the ``needs-fix``
    ones, with their files, under ``to_reannotate``.

    Args:
        data_dir: the data set folder.
        spatial_dims: 2 or 3.
        in_channels: channels the network takes.
        channel_order: channel indices to use, in order (``None``: as stored).
        percentiles: low and high normalisation percentiles.
        mask_suffix: the Cellpose layout's mask name suffix.
        patch_size: training patch size per spatial axis; ``predict`` uses it as its tile size.
        patches_per_epoch: training patches drawn per epoch.
        batch_size: training patches per batch.
        foreground_ratio: share of patches centred on a cell.
        validation_fraction: share of images held out (seeded by ``split_seed``).
        split_seed: seed of the split.
        validation_names: explicit validation images (by name), instead of a random share.
        size_divisor: validation images are cropped to a multiple of this (the network's total stride or more).
        num_workers: DataLoader worker processes.
        exclude: a ``review.csv``; its ``reject`` and ``needs-fix`` images are not used.
    """

    def __init__(
        self,
        data_dir: str,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channel_order: list[int] | None = None,
        percentiles: tuple[float, float] = (1.0, 99.8),
        mask_suffix: str = "_masks",
        patch_size: list[int] | None = None,
        patches_per_epoch: int = 256,
        batch_size: int = 8,
        foreground_ratio: float = 0.7,
        validation_fraction: float = 0.15,
        split_seed: int = 0,
        validation_names: list[str] | None = None,
        size_divisor: int = 32,
        num_workers: int = 2,
        exclude: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.patch_size = list(patch_size) if patch_size is not None else [256] * spatial_dims
        if len(self.patch_size) != spatial_dims:
            raise ValueError(f"patch_size {self.patch_size} needs one entry per spatial axis ({spatial_dims}).")
        self.train_samples: list[LoadedSample] = []
        self.val_samples: list[LoadedSample] = []
        self.skipped: list[str] = []
        self.excluded: list[dict[str, str]] = []
        self.object_diameter: float | None = None

    def setup(self, stage: str | None = None) -> None:
        """Discover, split, decode and cache the data set (once)."""
        if self.train_samples:
            return
        discovery = discover_pairs(self.data_dir, self.hparams["mask_suffix"])
        for path in discovery.images_without_mask:
            self.skipped.append(f"{path}: no mask found; it is not used for training")
        for path in discovery.masks_without_image:
            self.skipped.append(f"{path}: mask without an image; it is not used")
        pairs = self._leave_out_excluded(discovery.pairs)
        samples, unusable = load_pairs(
            pairs,
            self.hparams["spatial_dims"],
            self.hparams["in_channels"],
            self.hparams["channel_order"],
            tuple(self.hparams["percentiles"]),
        )
        self.skipped.extend(unusable)
        names = [s.name for s in samples]
        validation_names = self.hparams["validation_names"]
        if validation_names is not None:  # an excluded image cannot validate either
            left_out = {entry["name"] for entry in self.excluded}
            validation_names = [name for name in validation_names if name not in left_out]
        train_names, val_names = split_names(
            names, self.hparams["validation_fraction"], self.hparams["split_seed"], validation_names
        )
        by_name = {s.name: s for s in samples}
        self.train_samples = [by_name[n] for n in train_names]
        self.val_samples = [by_name[n] for n in val_names]
        self.object_diameter = median_object_diameter(sample.labels for sample in self.train_samples)
        self._write_split(discovery.pairs, train_names, val_names)

    def _leave_out_excluded(self, pairs: Sequence[ImagePair]) -> list[ImagePair]:
        """``pairs`` less the images that the ``exclude`` file decides ``reject`` or ``needs-fix``.

        Those are kept in ``excluded``; one line on stderr says how many, and a warning how many of the file's
        names are not in the data.
        """
        if not self.hparams["exclude"]:
            return list(pairs)
        from cellseg.review.decisions import EXCLUDED_FROM_TRAINING, read_decisions

        path = Path(self.hparams["exclude"])
        decisions = read_decisions(path)
        by_name = {pair.name: pair for pair in pairs}
        unknown = [name for name in decisions if name not in by_name]
        if unknown:
            warnings.warn(
                f"{path}: {len(unknown)} decided images are not in {self.data_dir} (e.g. {unknown[0]!r}); "
                "they are ignored",
                UserWarning,
                stacklevel=2,
            )
        self.excluded = [
            {"name": name, "decision": decision.decision, "note": decision.note}
            for name, decision in decisions.items()
            if name in by_name and decision.decision in EXCLUDED_FROM_TRAINING
        ]
        left_out = {entry["name"] for entry in self.excluded}
        rejected = sum(entry["decision"] == "reject" for entry in self.excluded)
        if self.trainer is None or self.trainer.is_global_zero:  # one line per run, not per DDP process
            print(
                f"cellseg fit: left out {len(self.excluded)} of {len(pairs)} images decided in {path} "
                f"({rejected} reject, {len(self.excluded) - rejected} needs-fix)",
                file=sys.stderr,
            )
        return [pair for pair in pairs if pair.name not in left_out]

    def _write_split(self, pairs: Sequence[ImagePair], train_names: list[str], val_names: list[str]) -> None:
        """Write ``split.json`` (train, validation, skipped) atomically into the run's log folder, if there is one."""
        trainer = self.trainer
        folder = (trainer.log_dir or trainer.default_root_dir) if trainer is not None else None
        if folder is None or (trainer is not None and not trainer.is_global_zero):
            return
        os.makedirs(folder, exist_ok=True)
        record: dict[str, Any] = {
            "data_dir": str(self.data_dir.resolve()),
            "train": train_names,
            "validation": val_names,
            "skipped": self.skipped,
            "pairs": len(pairs),
            "object_diameter": self.object_diameter,
        }
        if self.hparams["exclude"]:
            by_name = {pair.name: pair for pair in pairs}
            record["exclude"] = str(Path(self.hparams["exclude"]).resolve())
            record["excluded"] = self.excluded
            record["to_reannotate"] = [
                {**entry, "image": str(by_name[entry["name"]].image), "mask": str(by_name[entry["name"]].mask)}
                for entry in self.excluded
                if entry["decision"] == "needs-fix"
            ]
        path = Path(folder) / SPLIT_FILE
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=1))
        temporary.replace(path)

    def train_dataloader(self) -> DataLoader[Sample]:
        """Random patches, ``batch_size`` at a time."""
        dataset = PatchDataset(
            self.train_samples,
            self.patch_size,
            self.hparams["patches_per_epoch"],
            self.hparams["foreground_ratio"],
        )
        return self._loader(dataset, self.hparams["batch_size"])

    def val_dataloader(self) -> DataLoader[Sample]:
        """Whole validation images, one at a time (their sizes differ)."""
        return self._loader(WholeImageDataset(self.val_samples, self.hparams["size_divisor"]), 1)

    def _loader(self, dataset: PatchDataset | WholeImageDataset, batch_size: int) -> DataLoader[Sample]:
        # No shuffling: patch datasets draw at random already, validation keeps its order.
        workers = self.hparams["num_workers"]
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=False,
        )
