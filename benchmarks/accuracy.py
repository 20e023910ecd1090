"""Accuracy of cellseg against MONAI's U-Nets and a classical pipeline, each trained for the same wall-clock budget.

One case is one system x seed x data set; it runs in its own process (a crash or an out-of-memory kills that case
only) and its record is written to its own JSON file in the results folder (``benchmarks/results/accuracy/``) when
it is done, so a long study resumes case by case: a case already in the results is skipped unless ``--force``;
``--rescore`` scores the cases in the results again from their checkpoints (after a post-processing change),
keeping their training records. Run from the repository root::

    .venv/bin/python benchmarks/accuracy.py --data ../shared/data/dsb2018_train --budget-minutes 20
    .venv/bin/python benchmarks/accuracy.py --data ../shared/data/usiigaci_train --system cellseg --seed 1
    .venv/bin/python benchmarks/accuracy.py --data ../shared/data/usiigaci_train --rescore
    .venv/bin/python benchmarks/accuracy.py --table        # the markdown tables of what is there

Systems (``--system``, repeatable; default all):

* ``cellseg``: ``cellseg fit --config configs/DATASET.yaml`` through ``cellseg.training.cli.run_fit`` (the real fit
  path), then the real predict path: ``load_model``, ``prepare``, ``segment_image`` with the default
  ``TileConfig`` and ``InstanceConfig`` (what ``cellseg predict`` does without options).
* ``monai-AttentionUnet``, ``monai-UNet``: MONAI's ``AttentionUnet`` and ``UNet(num_res_units=2)`` (2D, 1 -> 3
  channels, the config's widths, strides of 2; for a folded config the widths of the unfolded network,
  ``unfolded_channels``: 8-128 for fold 2 and 16-128) in place of ``ResAttUNet`` in the very same
  ``SegmentationModule``, ``CellDataModule`` and Lightning ``Trainer``, all built by cellseg's LightningCLI from the
  same YAML config (same loss, optimiser, schedule, augmentation, patch size, batch, precision, callbacks,
  validation); only the network is swapped after the CLI builds the model, and ``distance_head`` is off (3
  outputs). Predicted with MONAI's sliding window as a MONAI user runs it (``predict_probabilities``: the training
  patch as tile, overlap 0.25, Gaussian blending); instances
  are the connected components (4-connectivity) of ``argmax != background``, nothing removed: what a MONAI user gets.
  The same probabilities are also scored through cellseg's post-processing (the default ``InstanceConfig``; rows
  ``SYSTEM + cellseg instances``), which tells the network's share of a difference from the post-processing's.
* ``otsu-watershed`` (scikit-image, no training; deterministic, so run once and the seed ignored): gray (BT.601
  luma for RGB), Gaussian sigma 1, Otsu threshold, foreground the side with fewer pixels, objects under 16 px
  removed, holes filled, Euclidean distance transform, markers at ``peak_local_max(min_distance=5)`` per connected
  component (image borders allowed), watershed of ``-distance`` within the mask; a component without a marker is
  one object.

Split (written to ``benchmarks/splits/DATASET.json``, names only; rerunning writes the same file, and a file that
differs stops the run): see ``DSB_RULE`` and ``USIIGACI_RULE``. Every system is scored on the same validation images.

Budget and schedule, the same rule for the three trained systems: a short timing pass first (the case's own model
and data, ``TIMED_BATCHES`` batches after ``WARMUP_BATCHES``, then validation on ``TIMING_VALIDATION_IMAGES`` whole
validation images, extrapolated by pixel count to the whole validation set), then the planned optimiser steps are
the most steps ``s`` for which (``planned_steps``)

    startup + s * accumulation * s per batch + floor(s * accumulation / batches between validations) * s per pass

fits 95% of the budget (``PLAN_MARGIN``; startup: what the first batches cost beyond the steady pace). So the
config's validation schedule (every epoch, on every validation image, with instance scores) is kept and paid for
from the budget; no validation runs after a last, partial epoch. The run gets ``--trainer.max_steps PLANNED
--trainer.max_epochs -1`` (the warm-up + cosine schedule of ``SegmentationModule`` is laid over
``estimated_stepping_batches`` = the planned steps, so it completes) and ``--trainer.max_time`` = the budget as a
hard stop (Lightning's ``Timer``, which counts validation). After every validation pass the rest of the budget is
planned again (``replan``) from the pace so far and the pass just measured, moving ``max_steps`` and the cosine's
end: the timing pass's untrained model post-processes slower than a trained one, so the first plan alone left
19-33% of the budget unused. If the hard stop comes first, the schedule is cut short
(``stopped_by: max_time``); the validation pass Lightning would run at that stop is skipped (it trains nothing).
The timing pass is not counted in the budget. Each record has the steps reached, the seconds to the last step, the
validation passes and their seconds (a ``LambdaCallback`` clock passed to the CLI, so ``run_fit`` carries it too).
The weights at the end of training are scored (``final.ckpt``), not the checkpoint with the best validation Dice:
the validation images are the test images here, so selecting on them would flatter.

Scores on the validation images, whole, per modality group (DSB2018: fluorescence / brightfield / stained from
``metadata.csv``; Usiigaci: phase contrast): ``cellseg.evaluation.match_instances`` per image, aggregated by
``cellseg.evaluation.summary.summarise`` (mean over images and pooled over objects): Dice, IoU, F1 at IoU 0.5 and 0.75,
F1 averaged over IoU 0.5-0.9, panoptic quality at 0.5. Ground-truth masks are scored as stored (Usiigaci labels keep
their stray specks: the same for every system).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import yaml
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

if TYPE_CHECKING:
    from torch import nn

    from cellseg.inference.model import LoadedModel
    from cellseg.io.image import ImageData
    from cellseg.training.cli import CellsegCLI

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ROOT / "benchmarks" / "splits"
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
SYSTEMS = ("cellseg", "monai-AttentionUnet", "monai-UNet", "otsu-watershed")
TRAINED = SYSTEMS[:3]
DETERMINISTIC = "otsu-watershed"
TILES = {"cellseg": "training patch, overlap 0.25; norms folded", DETERMINISTIC: None}
DATASETS = ("dsb2018", "usiigaci")
DEFAULT_SEEDS = (0, 1)
SPLIT_SEED = 2026
VALIDATION_SHARE = 0.15
GROUP_CAP_SHARE = 0.30
USIIGACI_VALIDATION_IMAGES = 5
MODALITIES = {
    "fluorescence": "fluorescence",
    "color_brightfield_or_histology": "stained",
    "grayscale_brightfield": "brightfield",
}
PHASE_CONTRAST = "phase contrast"
SUBSET_ORDER = ("all", "fluorescence", "brightfield", "stained", PHASE_CONTRAST)
WARMUP_BATCHES = 5
TIMED_BATCHES = 20
TIMING_VALIDATION_IMAGES = 8
PLAN_MARGIN = 0.05
OTSU_MIN_SIZE = 16
OTSU_MIN_DISTANCE = 5
Labels = npt.NDArray[np.int32]

DSB_RULE = (
    "Images are grouped by (height, width, modality_guess) of metadata.csv, a proxy for the experiment they were "
    "cropped from; modality_guess maps to fluorescence, stained (color_brightfield_or_histology) and brightfield "
    "(grayscale_brightfield). One numpy default_rng(seed) draws everything, modality by modality in alphabetical "
    "order. For a modality of n images: its groups, sorted by key, are permuted; walking that order, a group goes to "
    "validation if the modality's validation images stay at most floor(0.30 n), until they reach ceil(0.15 n). If "
    "they fall short (a modality whose images form one group, or whose groups are all over the cap), the largest "
    "group not in validation is split by image: the missing images, drawn by the same generator from its sorted "
    "names, validate; such groups are listed in split_by_image (their validation images share an experiment with "
    "training images). Names are sorted within train and validation."
)
USIIGACI_RULE = (
    "5 of the 45 images validate: cellseg.data.datamodule.split_names(sorted names, 5 / 45, seed), i.e. the first "
    "5 of numpy default_rng(seed).permutation(45), the same images as cellseg fit's own seeded split of "
    "configs/usiigaci.yaml (validation_fraction 0.11, split_seed 2026). All are one phase-contrast group."
)


# --------------------------------------------------------------------------------------------------------------
# Split


class SplitMismatchError(RuntimeError):
    """The split file on disk is not the split the rule gives now."""


@dataclass(frozen=True)
class ImageInfo:
    """What the split needs of an image: its name, size and modality group."""

    name: str
    height: int
    width: int
    modality: str

    @property
    def group(self) -> str:
        """The experiment proxy: ``"256x320 stained"``."""
        return f"{self.height}x{self.width} {self.modality}"


def dataset_name(data: Path) -> str:
    """``dsb2018`` or ``usiigaci``, from the folder's name (``dsb2018_train`` -> ``dsb2018``).

    Raises:
        ValueError: the folder is neither.
    """
    for name in DATASETS:
        if data.resolve().name.startswith(name):
            return name
    raise ValueError(f"{data}: cannot tell the data set from the folder name; expected one starting with {DATASETS}")


def read_metadata(data: Path, dataset: str) -> list[ImageInfo]:
    """The images of ``data/metadata.csv`` with their modality group (DSB2018) or phase contrast (Usiigaci)."""
    with (data / "metadata.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    return [
        ImageInfo(
            name=row["image_id"],
            height=int(row["height"]),
            width=int(row["width"]),
            modality=MODALITIES[row["modality_guess"]] if dataset == "dsb2018" else PHASE_CONTRAST,
        )
        for row in rows
    ]


def dsb_split(
    images: Sequence[ImageInfo],
    seed: int = SPLIT_SEED,
    share: float = VALIDATION_SHARE,
    cap_share: float = GROUP_CAP_SHARE,
) -> dict[str, Any]:
    """The grouped, modality-stratified split of ``DSB_RULE``.

    Returns:
        ``{"seed", "rule", "groups": [{"group", "modality", "images", "validation"}], "split_by_image": [groups],
        "train": [names], "validation": [names]}``.
    """
    rng = np.random.default_rng(seed)
    validation: set[str] = set()
    split_by_image: list[str] = []
    for modality in sorted({image.modality for image in images}):
        members = [image for image in images if image.modality == modality]
        groups: dict[str, list[str]] = {}
        for image in members:
            groups.setdefault(image.group, []).append(image.name)
        keys = sorted(groups)
        target, cap = math.ceil(share * len(members)), math.floor(cap_share * len(members))
        taken: list[str] = []
        count = 0
        for index in rng.permutation(len(keys)):
            if count >= target:
                break
            key = keys[index]
            if count + len(groups[key]) <= cap:
                taken.append(key)
                count += len(groups[key])
        for key in taken:
            validation.update(groups[key])
        if count < target:
            largest = max((key for key in keys if key not in taken), key=lambda key: (len(groups[key]), key))
            names = sorted(groups[largest])
            validation.update(names[i] for i in rng.permutation(len(names))[: target - count])
            split_by_image.append(largest)
    summary = []
    for key in sorted({image.group for image in images}):
        names = [image.name for image in images if image.group == key]
        summary.append(
            {
                "group": key,
                "modality": next(image.modality for image in images if image.group == key),
                "images": len(names),
                "validation": sum(name in validation for name in names),
            }
        )
    return {
        "seed": seed,
        "rule": DSB_RULE,
        "groups": summary,
        "split_by_image": split_by_image,
        "train": sorted(image.name for image in images if image.name not in validation),
        "validation": sorted(validation),
    }


def usiigaci_split(images: Sequence[ImageInfo], seed: int = SPLIT_SEED) -> dict[str, Any]:
    """The seeded 5-image validation split of ``USIIGACI_RULE``."""
    from cellseg.data.datamodule import split_names

    names = sorted(image.name for image in images)
    train, validation = split_names(names, USIIGACI_VALIDATION_IMAGES / len(names), seed)
    return {"seed": seed, "rule": USIIGACI_RULE, "train": sorted(train), "validation": sorted(validation)}


def write_split(split: dict[str, Any], path: Path) -> None:
    """Write ``split`` to ``path``; if the file is there already it must hold the same split.

    Raises:
        SplitMismatchError: the file holds another split (the rule, seed or data changed).
    """
    if path.exists():
        if json.loads(path.read_text()) != split:
            raise SplitMismatchError(
                f"{path} holds another split than the rule gives now (rule, seed or metadata changed); results of "
                "the two splits are not comparable. Delete the file (and the results made with it) to start again."
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(split, indent=1) + "\n")
    temporary.replace(path)


def ensure_split(data: Path, dataset: str) -> dict[str, Any]:
    """The data set's split, written to (or checked against) ``benchmarks/splits/DATASET.json``."""
    images = read_metadata(data, dataset)
    split = dsb_split(images) if dataset == "dsb2018" else usiigaci_split(images)
    write_split(split, SPLITS / f"{dataset}.json")
    return split


def subsets_of(data: Path, dataset: str) -> dict[str, str]:
    """``{image name: modality group}``."""
    return {image.name: image.modality for image in read_metadata(data, dataset)}


# --------------------------------------------------------------------------------------------------------------
# Classical pipeline


def otsu_watershed(image: npt.NDArray[Any]) -> Labels:
    """Instance labels of a ``(C, H, W)`` image by Otsu threshold and distance watershed (see the module doc)."""
    from cellseg.data.intensity import LUMA_WEIGHTS

    channels = image.astype(np.float32)
    gray = np.tensordot(LUMA_WEIGHTS, channels[:3], axes=1) if len(channels) >= 3 else channels[0]
    smooth = ndimage.gaussian_filter(gray, sigma=1.0)
    if smooth.min() == smooth.max():
        return np.zeros(gray.shape, dtype=np.int32)
    above = smooth > threshold_otsu(smooth)
    mask = above if np.count_nonzero(above) <= above.size / 2 else ~above
    components, count = ndimage.label(mask)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    small = np.flatnonzero(sizes < OTSU_MIN_SIZE)
    mask[np.isin(components, small[small > 0])] = False
    mask = ndimage.binary_fill_holes(mask)
    distance = ndimage.distance_transform_edt(mask)
    components, _ = ndimage.label(mask)
    peaks = peak_local_max(distance, min_distance=OTSU_MIN_DISTANCE, labels=components, exclude_border=False)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-distance, markers, mask=mask).astype(np.int32)
    unseeded, _ = ndimage.label(mask & (labels == 0))
    labels[unseeded > 0] = unseeded[unseeded > 0] + labels.max()
    relabelled: Labels = relabel_sequential(labels)[0].astype(np.int32)
    return relabelled


# --------------------------------------------------------------------------------------------------------------
# Training


def make_monai_network(architecture: str, channels: Sequence[int], in_channels: int, out_channels: int) -> nn.Module:
    """MONAI's ``AttentionUnet`` or ``UNet(num_res_units=2)`` where ``SegmentationModule`` expects its network.

    The returned module has the attributes ``SegmentationModule`` and ``load_model`` read of a ``ResAttUNet``
    (``deep_supervision``, ``spatial_dims``, ``in_channels``, ``total_stride``) and ``description``, plain data that
    the checkpoint keeps as ``hyper_parameters["network"]``.
    """
    import torch
    from monai.networks.nets.attentionunet import AttentionUnet
    from monai.networks.nets.unet import UNet

    strides = [2] * (len(channels) - 1)
    net: nn.Module
    description: dict[str, Any] = {
        "monai": architecture, "spatial_dims": 2, "in_channels": in_channels, "out_channels": out_channels,
        "channels": list(channels), "strides": strides,
    }  # fmt: skip
    if architecture == "AttentionUnet":
        net = AttentionUnet(2, in_channels, out_channels, channels=list(channels), strides=strides)
    elif architecture == "UNet":
        net = UNet(2, in_channels, out_channels, channels=list(channels), strides=strides, num_res_units=2)
        description["num_res_units"] = 2
    else:
        raise ValueError(f"unknown MONAI architecture {architecture!r}")

    class MonaiNetwork(torch.nn.Module):
        deep_supervision = False

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.spatial_dims = 2
            self.in_channels = in_channels
            self.total_stride = 2 ** len(strides)
            self.description = description

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.net(image)
            return logits

    return MonaiNetwork()


@contextmanager
def quiet_fit() -> Iterator[None]:
    """The warnings ``run_fit`` silences (known, harmless notices of Lightning, jsonargparse and torch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="lightning")
        yield


def build_cli(system: str, arguments: list[str]) -> CellsegCLI:
    """Cellseg's LightningCLI parsed and instantiated (not run) from ``arguments``; a MONAI network swapped in."""
    from cellseg.data.datamodule import CellDataModule
    from cellseg.training.cli import CellsegCLI
    from cellseg.training.module import SegmentationModule

    with quiet_fit():
        cli = CellsegCLI(SegmentationModule, CellDataModule, args=arguments, run=False,
                         save_config_kwargs={"overwrite": True})  # fmt: skip
    if system != "cellseg":
        swap_network(cli.model, system.removeprefix("monai-"))
    return cli


def swap_network(module: Any, architecture: str) -> None:
    """Replace a ``SegmentationModule``'s ``ResAttUNet`` by a MONAI network of the same widths, in place.

    A folded ``ResAttUNet`` (``fold`` 2: widths 16-128 from half resolution) gets the MONAI network of its
    ``unfolded_channels`` (8-128 from full resolution): the same width at every resolution they share, the same
    total stride.
    """
    import torch

    from cellseg.models.unet import unfolded_channels
    from cellseg.training.cli import DEFAULT_CHANNELS

    network = module.hparams["network"]
    if len(module.output_names) != 3:
        raise ValueError("the MONAI systems train without the distance head: pass --model.distance_head false")
    channels = unfolded_channels(list(network.get("channels", DEFAULT_CHANNELS)), int(network.get("fold", 1)))
    module.network = make_monai_network(architecture, channels, int(network.get("in_channels", 1)), 3)
    module.network.to(memory_format=torch.channels_last)  # as cellseg's 2D network: same pipeline, same layout
    module.hparams["network"] = module.network.description  # the checkpoint says what it holds


# The clock: a LambdaCallback added through the CLI (``--trainer.callbacks+``), so that ``run_fit`` carries it too;
# its functions are found by import path, this file's directory being on ``sys.path`` when it runs as a script.
CLOCK = json.dumps(
    {
        "class_path": "lightning.pytorch.callbacks.LambdaCallback",
        "init_args": {
            hook: f"{Path(__file__).stem}.clock_{hook.removeprefix('on_')}"
            for hook in ("on_train_start", "on_train_batch_end", "on_validation_start", "on_validation_end")
        },
    }
)


def clock_marks(trainer: Any) -> dict[str, Any]:
    """The clock's marks, kept on the trainer: ``train_start``, ``batch_ends``, ``validation`` (``[start, end]``s)."""
    marks: dict[str, Any] = trainer.__dict__.setdefault(
        "_accuracy_clock",
        {"train_start": None, "batch_ends": [], "validation": [], "time_up_at_step": None, "curve": []},
    )
    return marks


def _now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def clock_train_start(trainer: Any, pl_module: Any) -> None:
    """Mark the start of training (after the sanity check, where Lightning's ``Timer`` starts too)."""
    clock_marks(trainer)["train_start"] = _now()


def clock_train_batch_end(trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
    """Mark the end of a training batch; when ``max_time`` is up, turn off the validation Lightning would run then.

    Lightning validates once more when a callback stops training (its ``Timer`` included): that pass trains nothing
    and only costs wall time (``final.ckpt`` is what is scored), so it is skipped.
    """
    from lightning.pytorch.callbacks import Timer

    marks = clock_marks(trainer)
    marks["batch_ends"].append(_now())
    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is not None and remaining <= 0 and marks["time_up_at_step"] is None:
        marks["time_up_at_step"] = trainer.global_step
        trainer.limit_val_batches = 0


def clock_validation_start(trainer: Any, pl_module: Any) -> None:
    """Mark the start of a validation pass (the sanity check's too; it comes before ``train_start``)."""
    clock_marks(trainer)["validation"].append([_now()])


def clock_validation_end(trainer: Any, pl_module: Any) -> None:
    """Mark the end of a validation pass; after the sanity check, keep its scores with the training time so far."""
    marks = clock_marks(trainer)
    marks["validation"][-1].append(_now())
    if marks["train_start"] is not None and not trainer.sanity_checking:
        start, end = marks["validation"][-1]
        validating = sum(b - a for a, b in marks["validation"][:-1] if a >= marks["train_start"])
        scores = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("val/")}
        marks["curve"].append(
            {"step": trainer.global_step, "train_seconds": start - marks["train_start"] - validating,
             "wall_seconds": end - marks["train_start"], **scores}
        )  # fmt: skip
        replan(trainer, pl_module, end - start)


def replan(trainer: Any, pl_module: Any, validation_seconds: float) -> None:
    """After a validation pass, plan the rest of the budget again from the pace and the pass just measured.

    The timing pass validates an untrained model, whose noisy probabilities make the post-processing slower than a
    trained one's (84-240 s estimated against 56-84 s measured per pass on DSB2018), so the first plan leaves budget
    unused. Here the steps left are planned with ``planned_steps`` from the time ``max_time`` leaves (less the
    margin), the steady pace so far and this pass's seconds; ``max_steps`` and the learning-rate schedule's total
    (the cosine's end, warm-up unchanged) move to the new total. Only runs with a ``max_time`` and a ``max_steps``
    (the benchmark's real runs, not the timing pass) are re-planned.
    """
    from lightning.pytorch.callbacks import Timer

    from cellseg.training.schedule import warmup_cosine_factor

    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    remaining = timer.time_remaining() if timer is not None else None
    if timer is None or remaining is None or trainer.max_steps <= 0 or not trainer.lr_scheduler_configs:
        return
    marks = clock_marks(trainer)
    ends = marks["batch_ends"]
    if len(ends) <= WARMUP_BATCHES:
        return
    first, last = ends[WARMUP_BATCHES - 1], ends[-1]
    passes = [span for span in marks["validation"] if len(span) == 2]
    inside = sum(end - start for start, end in passes if first <= start and end <= last)
    seconds_per_batch = (last - first - inside) / (len(ends) - WARMUP_BATCHES)
    accumulate = trainer.accumulate_grad_batches
    batches_per_validation = int(trainer.num_training_batches) * (trainer.check_val_every_n_epoch or 1)
    available = remaining - PLAN_MARGIN * (remaining + timer.time_elapsed())
    more = planned_steps(available, seconds_per_batch, validation_seconds, batches_per_validation, accumulate)
    old_total, total = trainer.max_steps, trainer.global_step + more
    trainer.fit_loop.epoch_loop.max_steps = total
    hparams = pl_module.hparams
    warmup = max(round(hparams["warmup_fraction"] * old_total), 1)
    scheduler = trainer.lr_scheduler_configs[0].scheduler

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, total, warmup, hparams["final_lr_factor"])

    scheduler.lr_lambdas = [factor] * len(scheduler.lr_lambdas)
    marks.setdefault("replans", []).append(
        {"at_step": trainer.global_step, "seconds_left": remaining, "seconds_per_batch": seconds_per_batch,
         "validation_seconds": validation_seconds, "planned_steps_before": old_total, "planned_steps": total}
    )  # fmt: skip


def plan_schedule(system: str, arguments: list[str], budget_seconds: float) -> dict[str, Any]:
    """Time the case's training batches and validation, and plan the optimiser steps that fill the budget."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cellseg-accuracy-plan-") as scratch:
        cli = build_cli(system, [
            *arguments, "--trainer.default_root_dir", scratch, "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", str(WARMUP_BATCHES + TIMED_BATCHES),
            "--trainer.limit_val_batches", str(TIMING_VALIDATION_IMAGES), "--trainer.num_sanity_val_steps", "0",
        ])  # fmt: skip
        with quiet_fit():
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        datamodule, trainer = cli.datamodule, cli.trainer
    marks = clock_marks(trainer)
    ends, validation = marks["batch_ends"], marks["validation"]
    if len(ends) < WARMUP_BATCHES + TIMED_BATCHES or len(validation) != 1:
        raise RuntimeError(
            f"timing pass incomplete: {len(ends)} of {WARMUP_BATCHES + TIMED_BATCHES} batches (an epoch must have as "
            f"many), {len(validation)} validation passes timed (1 expected)"
        )
    seconds_per_batch = (ends[-1] - ends[WARMUP_BATCHES - 1]) / (len(ends) - WARMUP_BATCHES)
    # what the first batches cost beyond the steady pace: loader workers starting, first allocations
    startup = max(ends[WARMUP_BATCHES - 1] - marks["train_start"] - WARMUP_BATCHES * seconds_per_batch, 0.0)
    areas = [int(np.prod(sample.image.shape[1:])) for sample in datamodule.val_samples]
    timed_images = min(TIMING_VALIDATION_IMAGES, len(areas))
    validation_measured = validation[0][1] - validation[0][0]
    validation_per_pass = validation_measured * sum(areas) / sum(areas[:timed_images])
    hparams = datamodule.hparams
    batches_per_epoch = math.ceil(hparams["patches_per_epoch"] / hparams["batch_size"])
    every = trainer.check_val_every_n_epoch or 1
    accumulate = trainer.accumulate_grad_batches
    available = budget_seconds * (1 - PLAN_MARGIN) - startup
    steps = planned_steps(available, seconds_per_batch, validation_per_pass, batches_per_epoch * every, accumulate)
    return {
        "rule": f"the most steps s with startup + s * accumulation * s per batch + floor(s * accumulation / batches "
        f"between validations) * s per validation pass <= (1 - {PLAN_MARGIN}) * budget",
        "timed_batches": len(ends) - WARMUP_BATCHES,
        "seconds_per_batch": seconds_per_batch,
        "steps_per_s": 1 / (seconds_per_batch * accumulate),
        "startup_seconds": startup,
        "validation_images_timed": timed_images,
        "validation_seconds_timed": validation_measured,
        "validation_seconds_per_pass": validation_per_pass,
        "validation_images": len(areas),
        "batches_per_epoch": batches_per_epoch,
        "validation_every_n_epochs": every,
        "accumulate_grad_batches": accumulate,
        "planned_steps": steps,
        "planned_validation_passes": steps * accumulate // (batches_per_epoch * every),
        "seconds": time.perf_counter() - started,
    }


def planned_steps(
    budget_seconds: float,
    seconds_per_batch: float,
    validation_seconds: float,
    batches_per_validation: int,
    accumulate: int = 1,
) -> int:
    """The most optimiser steps whose batches and validation passes fit the budget (at least 1).

    Example:
        >>> planned_steps(100, 1.0, 30.0, batches_per_validation=40)  # 40 batches + 30 s, 30 batches: 100 s
        70
        >>> planned_steps(100, 1.0, 0.0, batches_per_validation=40, accumulate=2)
        50
    """

    def cost(steps: int) -> float:
        batches = steps * accumulate
        return batches * seconds_per_batch + batches // batches_per_validation * validation_seconds

    steps = max(int(budget_seconds / (seconds_per_batch * accumulate)), 1)
    while steps > 1 and cost(steps) > budget_seconds:
        steps -= 1
    return steps


def max_time(seconds: float) -> str:
    """Lightning's ``DD:HH:MM:SS`` for a number of seconds (rounded to whole seconds)."""
    total = max(round(seconds), 1)
    return f"{total // 86400:02d}:{total % 86400 // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def train_case(
    config: str, system: str, seed: int, budget_seconds: float, data: Path, split: dict[str, Any], run_dir: Path
) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Plan and train one case; return its final checkpoint, the plan, the training record and the network's."""
    from lightning.pytorch.callbacks import Timer

    from cellseg.training.cli import run_fit

    run_dir.mkdir(parents=True, exist_ok=True)
    override = run_dir / "validation_names.yaml"
    override.write_text(yaml.safe_dump({"data": {"validation_names": split["validation"]}}))
    base = [
        "--config", config, "--config", relative(override),
        "--data.data_dir", str(data), "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+", CLOCK,
    ]  # fmt: skip
    if system != "cellseg":
        base += ["--model.distance_head", "false"]
    case = f"[{Path(config).stem} {system} seed {seed}]"
    print(f"{case} timing pass ...", flush=True)
    plan = plan_schedule(system, base, budget_seconds)
    print(
        f"{case} {plan['steps_per_s']:.3f} steps/s, validation pass "
        f"{plan['validation_seconds_per_pass']:.0f} s: {plan['planned_steps']} steps planned",
        flush=True,
    )
    arguments = [
        *base, "--trainer.default_root_dir", relative(run_dir), "--trainer.max_time", max_time(budget_seconds),
        "--trainer.max_epochs", "-1", "--trainer.max_steps", str(plan["planned_steps"]),
    ]  # fmt: skip
    started = time.perf_counter()
    if system == "cellseg":
        cli = run_fit(arguments)  # the real ``cellseg fit`` path
        command = shlex.join(["cellseg", "fit", *arguments])
    else:
        cli = build_cli(system, arguments)
        with quiet_fit():
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        command = f"(benchmark) CellsegCLI(run=False), network swapped for MONAI {system}, then fit: " + shlex.join(
            arguments
        )
    fit_seconds = time.perf_counter() - started
    trainer, module = cli.trainer, cli.model
    log_dir = Path(trainer.log_dir or run_dir)
    checkpoint = log_dir / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=True)  # weights, hyperparameters and the cellseg entry
    callbacks: list[Any] = trainer.callbacks  # type: ignore[attr-defined]
    timer = next(callback for callback in callbacks if isinstance(callback, Timer))
    train_seconds = timer.time_elapsed("train")
    marks = clock_marks(trainer)
    last_step = marks["batch_ends"][-1] if marks["batch_ends"] else marks["train_start"]
    passes = [(start, end) for start, end in marks["validation"] if start >= marks["train_start"]]
    validating = sum(end - start for start, end in passes if end <= last_step)  # between training steps
    ends, pace = marks["batch_ends"], None
    if len(ends) > WARMUP_BATCHES:  # the pace after the first batches, validation left out: what the plan assumed
        first, last = ends[WARMUP_BATCHES - 1], ends[-1]
        inside = sum(end - start for start, end in passes if first <= start and end <= last)
        pace = (last - first - inside) / (len(ends) - WARMUP_BATCHES)
    optimizer = trainer.optimizers[0]
    training = {
        "fit_command": command,
        "run_dir": relative(log_dir),
        "checkpoint": relative(checkpoint),
        "max_time": max_time(budget_seconds),
        "planned_steps": plan["planned_steps"],
        "steps": trainer.global_step,
        "epochs": trainer.global_step * plan["accumulate_grad_batches"] / plan["batches_per_epoch"],
        "replans": marks.get("replans", []),
        "schedule_completed": trainer.global_step >= trainer.max_steps,
        "stopped_by": "max_steps" if marks["time_up_at_step"] is None else "max_time",
        "final_lr_factor": optimizer.param_groups[0]["lr"] / module.hparams["learning_rate"],
        "train_seconds": train_seconds,
        "seconds_to_last_step": last_step - marks["train_start"],
        "validation_passes": len(passes),
        "validation_seconds": sum(end - start for start, end in passes),
        "validation_passes_after_last_step": sum(start >= last_step for start, _ in passes),
        "fit_seconds": fit_seconds,
        "steps_per_s": trainer.global_step / max(last_step - marks["train_start"] - validating, 1e-9),
        "seconds_per_batch": pace,
        "validation_names": relative(override),
        "curve": marks["curve"],  # per validation pass: step, seconds of training before it, wall seconds, val/ scores
    }
    network = {
        "class": type(module.network).__name__ if system == "cellseg" else system,
        "hyper_parameters": module.hparams["network"],
        "parameters": sum(parameter.numel() for parameter in module.network.parameters()),
        "distance_head": bool(module.hparams["distance_head"]),
    }
    return checkpoint, plan, training, network


# --------------------------------------------------------------------------------------------------------------
# Prediction and scoring


def load_monai_model(path: Path, device: str) -> LoadedModel:
    """A MONAI case's checkpoint as a ``LoadedModel`` (safely: ``weights_only=True``), for ``predict_probabilities``."""
    import inspect

    import torch

    from cellseg.inference.model import LoadedModel, file_sha256
    from cellseg.training.module import CLASS_NAMES, SegmentationModule

    checkpoint: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    hparams = checkpoint["hyper_parameters"]
    network = hparams["network"]
    accepted = inspect.signature(SegmentationModule).parameters
    arguments = {key: value for key, value in hparams.items() if key in accepted}
    arguments["network"] = {"channels": network["channels"], "in_channels": network["in_channels"]}
    module = SegmentationModule(**arguments)
    swap_network(module, network["monai"])
    module.load_state_dict(checkpoint["state_dict"])
    module.eval().to(device)
    lower, upper = hparams["percentiles"]
    return LoadedModel(
        module=module,
        path=path,
        sha256=file_sha256(path),
        output_names=list(CLASS_NAMES),
        tile_size=tuple(hparams["patch_size"]),
        percentiles=(float(lower), float(upper)),
        channel_order=hparams.get("channel_order"),
        in_channels=int(network["in_channels"]),
        spatial_dims=2,
        stride=int(module.network.total_stride),
        object_diameter=hparams.get("object_diameter"),
    )


MAIN = ""
CELLSEG_INSTANCES = "cellseg instances"


def predictor(
    system: str, checkpoint: Path | None, device: str, object_diameter: float | None = None
) -> Callable[[ImageData], dict[str, Labels]]:
    """A function from an image to its instance labels, the system's own way (see the module doc), under ``MAIN``.

    For the MONAI systems also under ``CELLSEG_INSTANCES``: the same probabilities through cellseg's
    post-processing (the default ``InstanceConfig``; the 3 classes are the same), which tells the network's share of
    a difference from the post-processing's. Both post-processings scale to the checkpoint's object diameter, or to
    ``object_diameter`` for a checkpoint written before fitting recorded it (the same median over the training masks).
    cellseg's instances take its checkpoint's foreground threshold (``model.foreground_threshold`` of its config, as
    ``cellseg predict`` does); the MONAI systems' cellseg post-processing keeps the default (0.5), as it did for the
    records before the threshold travelled with a model.
    """
    if system == DETERMINISTIC:
        return lambda image: {MAIN: otsu_watershed(image.array)}
    from cellseg.inference.instances import InstanceConfig, instances_from_probabilities
    from cellseg.inference.model import load_model
    from cellseg.inference.prepare import Preparation, prepare
    from cellseg.inference.segment import segment_image
    from cellseg.inference.tiling import TileConfig, predict_probabilities

    assert checkpoint is not None
    if system == "cellseg":
        model = with_diameter(load_model(checkpoint, device), object_diameter)
        preparation = Preparation.of(model)
        return lambda image: {MAIN: segment_image(model, prepare(image, preparation)).labels}
    monai_model = with_diameter(load_monai_model(checkpoint, device), object_diameter)
    instances = InstanceConfig().for_model(monai_model.object_diameter)
    monai_preparation = Preparation.of(monai_model)

    def components(image: ImageData) -> dict[str, Labels]:
        prepared = prepare(image, monai_preparation)  # tiles of the training patch, as a MONAI user runs them
        probabilities = predict_probabilities(monai_model, prepared, TileConfig(tile_size=monai_model.tile_size))
        return {
            MAIN: connected_components(probabilities),
            CELLSEG_INSTANCES: instances_from_probabilities(probabilities, instances),
        }

    return components


def connected_components(probabilities: npt.NDArray[np.floating]) -> Labels:
    """A MONAI user's instances: the connected components (4-connectivity) of ``argmax != background``.

    Args:
        probabilities: ``(K, *S)``, class 0 the background.

    Returns:
        int32 labels ``S``, numbered 1..N, nothing removed.
    """
    labels: Labels = ndimage.label(probabilities.argmax(axis=0) != 0)[0].astype(np.int32)
    return labels


def with_diameter(model: LoadedModel, object_diameter: float | None) -> LoadedModel:
    """``model``, given ``object_diameter`` when its checkpoint has none."""
    if model.object_diameter is not None or object_diameter is None:
        return model
    return replace(model, object_diameter=object_diameter)


def training_diameter(data: Path, train_names: Sequence[str]) -> float | None:
    """The median object diameter of the training split's masks (what ``cellseg fit`` stores in a checkpoint)."""
    from cellseg.data.object_size import median_object_diameter
    from cellseg.io import discover_pairs, read_mask

    pairs = discover_pairs(data).by_name
    return median_object_diameter(read_mask(pairs[name].mask) for name in train_names)


INSTANCES = {
    "cellseg": "segment_image with the default InstanceConfig scaled to the model's object diameter (boundary seeds "
    "at 0.5, foreground 0.5, seeds split at h-maxima, small objects dropped, holes filled), as cellseg predict",
    "monai-AttentionUnet": "connected components (4-connectivity) of argmax != background, nothing removed",
    "monai-UNet": "connected components (4-connectivity) of argmax != background, nothing removed",
    DETERMINISTIC: "Otsu + distance watershed (see the module doc)",
}


def score_case(
    system: str,
    checkpoint: Path | None,
    data: Path,
    names: Sequence[str],
    subsets: dict[str, str],
    object_diameter: float | None = None,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Score the system on ``names`` (``object_diameter``: for checkpoints without one, see ``predictor``).

    Returns:
        ``{variant: {subset: aggregate}}`` (``MAIN`` and, for MONAI, ``CELLSEG_INSTANCES``), the main variant's
        per-image rows, and the scoring record.
    """
    import torch

    from cellseg.evaluation.matching import match_instances
    from cellseg.evaluation.scoring import ImageEvaluation
    from cellseg.evaluation.summary import summarise
    from cellseg.io import discover_pairs, read_image, read_mask

    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    segment = predictor(system, checkpoint, device, object_diameter)
    pairs = discover_pairs(data).by_name
    evaluations: dict[str, list[ImageEvaluation]] = {}
    rows = []
    for name in names:
        image_started = time.perf_counter()
        variants = segment(read_image(pairs[name].image))
        truth = read_mask(pairs[name].mask)
        for variant, labels in variants.items():
            scores = match_instances(truth, labels)
            seconds = time.perf_counter() - image_started
            evaluations.setdefault(variant, []).append(ImageEvaluation(name, scores, False, False, seconds))
        main = evaluations[MAIN][-1].scores
        rows.append(
            {
                "name": name, "subset": subsets[name], "n_true": main.n_true, "n_predicted": main.n_predicted,
                "dice": round(main.dice, 4), "f1_50": round(main.at(0.5).f1, 4),
                "f1_75": round(main.at(0.75).f1, 4), "pq_50": round(main.at(0.5).panoptic_quality, 4),
            }
        )  # fmt: skip
    groups = {name: subsets[name] for name in names}
    by_variant = {}
    for variant, of_variant in evaluations.items():
        summary = summarise(of_variant, groups)
        by_variant[variant] = {"all": summary["all"], **summary["groups"]}
    record = {
        "seconds": time.perf_counter() - started,
        "images": len(names),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "instances": INSTANCES[system],
        "tiles": TILES.get(system, "training patch, overlap 0.25"),
        "object_diameter_fallback": object_diameter,
    }
    return by_variant, rows, record


# --------------------------------------------------------------------------------------------------------------
# One case (in its own process)


def machine() -> dict[str, Any]:
    """Where the case ran."""
    import lightning
    import monai
    import torch

    return {
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "monai": monai.__version__,
    }


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, family, model and widest vector unit, e.g. ``AMD EPYC (family 25 model 17, AVX-512)``.

    Virtual machines often report only a vendor line (``AMD EPYC``) whatever the generation under it; the family,
    model and AVX-512 flag tell a Zen 3 from a Zen 4 host, which train at different speeds and so must not share a
    table.

    Args:
        cpuinfo: the ``/proc/cpuinfo`` file to read; where it is not there, the platform's processor is returned.
    """
    try:
        fields: dict[str, str] = {}
        for line in cpuinfo.read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        fields = {}
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    vector_unit = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    family, model = fields.get("cpu family"), fields.get("model")
    generation = f"family {family} model {model}, " if family and model else ""
    return f"{name} ({generation}{vector_unit})"


def this_machine_name() -> str:
    """This machine's name as ``machine_name`` gives a record's: the GPU where there is one, else the CPU."""
    import torch

    return str(torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model())


def machine_name(record: dict[str, Any]) -> str:
    """The GPU a case ran on, else its CPU's model name (``?`` for a record that did not note it)."""
    return str(record["machine"].get("gpu") or record["machine"].get("cpu", "?"))


def git_state() -> dict[str, Any]:
    """The commit, whether tracked files differ from it, and this script's own state and SHA-256."""

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    script = Path(__file__).resolve()
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "script_committed_unchanged": not git("status", "--porcelain", "--", str(script)),
        "script_sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
    }


def case_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two records the same case."""
    return (
        record["dataset"], record["system"], record["seed"], record["budget_minutes"], record["limit_val"],
        record["config"] if record["system"] != DETERMINISTIC else None,
    )  # fmt: skip


def other_machine(done: dict[str, Any], this_machine: str) -> str | None:
    """Why a case in the results must not count as done here, or ``None`` where it may.

    A trained case's wall-clock budget buys a different number of steps on another CPU (4,484 against 2,418 on two
    AMD EPYC generations), so a case run elsewhere is not this machine's case: skipping it would mix machines in one
    comparison, and ``--force`` would replace another machine's record. Otsu has no budget and may be shared.

    Args:
        done: the record already in the results folder for the case.
        this_machine: this machine's name as ``machine_name`` gives it (``this_machine_name()``).
    """
    if done["seed"] is None:
        return None
    there = machine_name(done) if "machine" in done else "?"
    if there == this_machine:
        return None
    return (
        f"ran on {there}, this machine is {this_machine}: a wall-clock budget is not the same case on another CPU; "
        "give --results a folder for this machine (e.g. benchmarks/results/accuracy_MYMACHINE)"
    )


def run_one(arguments: argparse.Namespace, command: str) -> dict[str, Any]:
    """Train (unless Otsu) and score one case; return its record."""
    data = arguments.data.resolve()
    dataset = dataset_name(data)
    system, seed = arguments.system[0], arguments.seed[0]
    split = ensure_split(data, dataset)
    names = split["validation"][: arguments.limit_val] if arguments.limit_val else split["validation"]
    config = config_of(arguments, dataset)
    record: dict[str, Any] = {
        "dataset": dataset,
        "system": system,
        "seed": None if system == DETERMINISTIC else seed,
        "budget_minutes": None if system == DETERMINISTIC else arguments.budget_minutes,
        "limit_val": arguments.limit_val,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_state(),
        "command": command,
        "data": str(data),
        "config": config,
        "split": {
            "file": relative(SPLITS / f"{dataset}.json"),
            "train": len(split["train"]),
            "validation": len(split["validation"]),
        },
    }
    checkpoint = None
    if arguments.rescore:  # the case's own training record and checkpoint, scored again with this code
        previous = next(r for r in load_results(arguments.results) if case_key(r) == case_key(record))
        if system != DETERMINISTIC:
            checkpoint = ROOT / previous["training"]["checkpoint"]
        rescored = {
            "date": record["date"], "git": record["git"], "command": command,
            "previous_scores": headline_scores(previous["scores"]),
        }  # fmt: skip
        record = previous | {"rescored": rescored}
    elif system != DETERMINISTIC:
        run_dir = runs_dir(arguments.results) / dataset / Path(config).stem / system / f"seed{seed}"
        checkpoint, plan, training, network = train_case(
            config, system, seed, arguments.budget_minutes * 60, data, split, run_dir
        )
        record |= {"plan": plan, "training": training, "network": network}
    diameter = None if system == DETERMINISTIC else training_diameter(data, split["train"])
    print(f"[{dataset} {system}] scoring {len(names)} validation images ...", flush=True)
    scores, rows, scoring = score_case(system, checkpoint, data, names, subsets_of(data, dataset), diameter)
    variants = {variant: of_variant for variant, of_variant in scores.items() if variant != MAIN}
    return record | {"scoring": scoring, "scores": scores[MAIN], "variant_scores": variants, "per_image": rows}


def config_of(arguments: argparse.Namespace, dataset: str) -> str:
    """The config a case trains from: ``--config`` or ``configs/DATASET.yaml``, relative to the repository root."""
    return relative(arguments.config or ROOT / "configs" / f"{dataset}.yaml")


def runs_dir(results: Path) -> Path:
    """Where the training runs of a results folder go: ``accuracy/`` -> ``accuracy_runs/``."""
    return results.parent / f"{results.stem}_runs"


# --------------------------------------------------------------------------------------------------------------
# Results and tables


def load_results(path: Path) -> list[dict[str, Any]]:
    """The records so far, oldest first (none if ``path`` is not there).

    Args:
        path: a results folder (one JSON record per case file), or a JSON list of records (the single-file format
            used before 2026-12-02, still read so older results can be merged).
    """
    if path.is_dir():
        records = [json.loads(case.read_text()) for case in sorted(path.glob("*.json"))]
        return sorted(records, key=lambda record: str(record["date"]))
    listed: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    return listed


def case_file(results: Path, record: dict[str, Any]) -> Path:
    """The file of ``record``'s case in the folder ``results``: a readable name and 8 hex digits of the case key.

    Example: ``dsb2018-dsb2018-cellseg-seed2-20min-1c2d3e4f.json``; the hash keeps two configs with the same file
    name in different folders apart.
    """
    dataset, system, seed, budget, limit, config = case_key(record)
    digest = hashlib.sha256(json.dumps(case_key(record)).encode()).hexdigest()[:8]
    parts = [dataset, system]
    if config is not None:
        parts = [dataset, Path(config).stem, system, f"seed{seed}", f"{budget:g}min"]
    if limit:
        parts.append(f"val{limit}")
    return results / f"{'-'.join(parts)}-{digest}.json"


def headline_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """What a rescored record keeps of its previous ``scores`` (subset -> summary): the numbers the tables show.

    Counts, and Dice, IoU, F1 and PQ at IoU 0.5 and 0.75, averaged over images and pooled over objects.
    """
    headline: dict[str, Any] = {}
    for subset, summary in scores.items():
        kept = {key: summary[key] for key in ("images", "n_true", "n_predicted") if key in summary}
        for average in ("mean", "pooled"):
            if average not in summary:
                continue
            numbers = summary[average]
            kept[average] = {key: numbers[key] for key in ("dice", "iou") if key in numbers} | {
                f"{name}@{threshold}": numbers["by_threshold"][threshold][name]
                for threshold in ("0.50", "0.75") if threshold in numbers.get("by_threshold", {})
                for name in ("f1", "pq")
            }  # fmt: skip
        headline[subset] = kept
    return headline


def save_record(results: Path, record: dict[str, Any]) -> Path:
    """Write one case's record atomically to its own file in the folder ``results``, replacing an earlier run of it.

    One file per case keeps a diff to the cases that changed and every file small (~36 kB: floats to 6 significant
    digits, the tables show 3 decimals); the single file of all cases grew to 0.8 MB after 24 cases.

    Returns:
        The file written.
    """
    results.mkdir(parents=True, exist_ok=True)
    path = case_file(results, record)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(rounded(record)) + "\n")
    temporary.replace(path)
    return path


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to 6 significant digits, through lists and dicts.

    Example:
        >>> rounded({"dice": 0.91012345678, "steps": [2368, 1.0 / 3]})
        {'dice': 0.910123, 'steps': [2368, 0.333333]}
    """
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


METRICS = ("dice", "iou", "f1_50", "f1_75", "f1_50_90", "pq_50")
METRIC_HEADERS = ("Dice", "IoU", "F1@0.5", "F1@0.75", "F1 0.5-0.9", "PQ@0.5")


def metrics_of(aggregate: dict[str, Any], kind: str) -> dict[str, float]:
    """Dice, IoU, F1@0.5, F1@0.75, F1 over 0.5-0.9 and PQ@0.5 of an ``aggregate`` (``mean`` or ``pooled``)."""
    scores = aggregate[kind]
    by_threshold = scores["by_threshold"]
    return {
        "dice": scores["dice"],
        "iou": scores["iou"],
        "f1_50": by_threshold["0.50"]["f1"],
        "f1_75": by_threshold["0.75"]["f1"],
        "f1_50_90": float(np.mean([v["f1"] for k, v in by_threshold.items() if float(k) <= 0.9 + 1e-9])),
        "pq_50": by_threshold["0.50"]["pq"],
    }


def system_label(record: dict[str, Any]) -> str:
    """The system's name, with `` @ CONFIG`` when it trained from a config other than ``configs/DATASET.yaml``."""
    config = record.get("config")
    if record["system"] == DETERMINISTIC or config in (None, f"configs/{record['dataset']}.yaml"):
        return str(record["system"])
    return f"{record['system']} @ {Path(config).stem}"


def table_rows(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """One row per (data set, subset, system, budget, limit): each metric's mean over seeds and its range.

    A MONAI system's probabilities through cellseg's post-processing are the rows ``SYSTEM + cellseg instances``.
    """
    expanded = [
        variant
        for record in records
        for variant in [
            {**record, "system": system_label(record)},
            *({**record, "system": f"{system_label(record)} + {name}", "scores": scores}
              for name, scores in record.get("variant_scores", {}).items()),
        ]
    ]  # fmt: skip
    cases: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in expanded:
        key = (
            record["dataset"],
            record["limit_val"],
            record["system"],
            record["budget_minutes"],
            machine_name(record),
        )  # seeds are averaged on one machine only
        cases.setdefault(key, []).append(record)
    rows = []
    for (dataset, limit, system, budget, on), members in cases.items():
        members.sort(key=lambda record: record["seed"] if record["seed"] is not None else -1)
        scores = members[0]["scores"]
        subsets = [s for s in scores if all(kind in m["scores"].get(s, {}) for m in members)]
        if len(subsets) == 2 and scores[subsets[1]]["images"] == scores["all"]["images"]:
            subsets = ["all"]  # one group holding every image: the same row twice
        for subset in subsets:
            values = [metrics_of(member["scores"][subset], kind) for member in members]
            steps = [m["training"]["steps"] for m in members if "training" in m]
            rows.append(
                {
                    "dataset": dataset, "subset": subset, "system": system, "machine": on,
                    "budget_minutes": budget, "limit_val": limit, "seeds": [m["seed"] for m in members],
                    "images": members[0]["scores"][subset]["images"],
                    "steps": float(np.mean(steps)) if steps else None,
                    **{name: [float(np.mean([v[name] for v in values])),
                              float(max(v[name] for v in values) - min(v[name] for v in values))]
                       for name in METRICS},
                }
            )  # fmt: skip

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        subset = SUBSET_ORDER.index(row["subset"]) if row["subset"] in SUBSET_ORDER else len(SUBSET_ORDER)
        base = row["system"].split(" + ")[0].split(" @ ")[0]
        system = SYSTEMS.index(base) if base in SYSTEMS else len(SYSTEMS)
        budget = row["budget_minutes"] or 0
        return (
            row["dataset"],
            row["limit_val"] or 0,
            subset,
            row["subset"],
            system,
            row["system"],
            row["machine"],
            budget,
        )

    return sorted(rows, key=order)


def cell(value: list[float], seeds: int) -> str:
    """``0.812`` for one seed, ``0.812 (0.020)`` (mean, max - min) for several."""
    return f"{value[0]:.3f}" if seeds < 2 else f"{value[0]:.3f} ({value[1]:.3f})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows of ``table_rows`` as a markdown table."""
    lines = [
        "| data set | subset | system | machine | budget | seeds | images | steps | "
        + " | ".join(METRIC_HEADERS)
        + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(METRICS),
    ]
    for row in rows:
        seeds = [s for s in row["seeds"] if s is not None]
        limit = f" (first {row['limit_val']} val.)" if row["limit_val"] else ""
        budget = f"{row['budget_minutes']:g} min" if row["budget_minutes"] is not None else "-"
        steps = f"{row['steps']:.0f}" if row["steps"] is not None else "-"
        metrics = " | ".join(cell(row[name], len(seeds)) for name in METRICS)
        lines.append(
            f"| {row['dataset']}{limit} | {row['subset']} | {row['system']} | {row['machine']} | {budget} | "
            f"{', '.join(map(str, seeds)) or '-'} | {row['images']} | {steps} | {metrics} |"
        )
    return "\n".join(lines)


def training_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trained case: the plan, what training reached, and the times."""
    return [
        {
            "dataset": r["dataset"], "system": system_label(r), "seed": r["seed"],
            "budget_minutes": r["budget_minutes"],
            "limit_val": r["limit_val"], "steps_per_s": r["plan"]["steps_per_s"],
            "seconds_per_batch_planned": r["plan"]["seconds_per_batch"],
            "seconds_per_batch_run": r["training"].get("seconds_per_batch"),
            "validation_seconds_per_pass": r["plan"]["validation_seconds_per_pass"],
            "planned_steps": r["plan"]["planned_steps"], "steps": r["training"]["steps"],
            "epochs": r["training"]["epochs"],
            "stopped_by": r["training"]["stopped_by"],
            "seconds_to_last_step": r["training"]["seconds_to_last_step"],
            "validation_passes": r["training"]["validation_passes"],
            "train_seconds": r["training"]["train_seconds"], "scoring_seconds": r["scoring"]["seconds"],
            "parameters": r["network"]["parameters"], "device": r["machine"]["gpu"] or
            f"{machine_name(r)} x{r['machine']['torch_threads']} threads",
        }
        for r in sorted(records, key=lambda r: (r["dataset"], SYSTEMS.index(r["system"]), system_label(r),
                                                r["seed"] or 0))
        if "training" in r
    ]  # fmt: skip


def markdown_training(rows: list[dict[str, Any]]) -> str:
    """The rows of ``training_rows`` as a markdown table."""
    lines = [
        "| data set | system | seed | budget | device | parameters | steps/s (timing) | s/batch timing, run "
        "| val. pass s | planned steps | steps | epochs | stopped by | s to last step | val. passes | fit s "
        "| scoring s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['system']} | {r['seed']} | {r['budget_minutes']:g} min | {r['device']} | "
            f"{r['parameters'] / 1e6:.2f} M | {r['steps_per_s']:.3f} | {r['seconds_per_batch_planned']:.2f}, "
            f"{'-' if r['seconds_per_batch_run'] is None else format(r['seconds_per_batch_run'], '.2f')} | "
            f"{r['validation_seconds_per_pass']:.0f} | "
            f"{r['planned_steps']} | {r['steps']} | {r['epochs']:.2f} | {r['stopped_by']} | "
            f"{r['seconds_to_last_step']:.0f} | {r['validation_passes']} | {r['train_seconds']:.0f} | "
            f"{r['scoring_seconds']:.0f} |"
        )
    return "\n".join(lines)


CURVE_LEVELS = {"val/dice": (0.80, 0.85, 0.90), "val/f1@0.5": (0.60, 0.70, 0.80, 0.85)}


def curve_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trained case: the training seconds (validation left out) after which each score first reached each level.

    The scores are those logged at the validation passes during training (pooled over the validation images;
    ``val/f1@0.5`` through cellseg's post-processing for every system), so a level is seen only at a pass: the time
    is an upper bound, as fine as the validation schedule. ``None`` where the level was never reached.
    """
    rows = []
    for record in sorted(records, key=lambda r: (r["dataset"], SYSTEMS.index(r["system"]), system_label(r),
                                                  r["seed"] or 0)):  # fmt: skip
        curve = record.get("training", {}).get("curve")
        if not curve:
            continue
        reached = {
            f"{score}>={level:.2f}": next((p["train_seconds"] for p in curve if p.get(score, -1.0) >= level), None)
            for score, levels in CURVE_LEVELS.items()
            for level in levels
        }
        final = {score: curve[-1].get(score) for score in CURVE_LEVELS}
        rows.append({"dataset": record["dataset"], "system": system_label(record), "seed": record["seed"],
                     "passes": len(curve), "reached": reached, "final": final})  # fmt: skip
    return rows


def markdown_curves(rows: list[dict[str, Any]]) -> str:
    """The rows of ``curve_rows`` as a markdown table (minutes of training)."""
    levels = list(rows[0]["reached"]) if rows else []
    lines = [
        "| data set | system | seed | val. passes | last val/dice | last val/f1@0.5 | "
        + " | ".join(f"min to {level}" for level in levels) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(levels),
    ]  # fmt: skip
    for row in rows:
        final = " | ".join("-" if row["final"][s] is None else f"{row['final'][s]:.3f}" for s in CURVE_LEVELS)
        times = " | ".join("-" if t is None else f"{t / 60:.1f}" for t in row["reached"].values())
        lines.append(f"| {row['dataset']} | {row['system']} | {row['seed']} | {row['passes']} | {final} | {times} |")
    return "\n".join(lines)


def group_rows(records: list[dict[str, Any]], groups: dict[str, str]) -> list[dict[str, Any]]:
    """Per experiment group of the validation images: each seed's mean Dice and F1@0.5 over the group's images.

    The subsets of ``table_rows`` mix experiments of very different difficulty; this says which experiment a
    difference (or a seed's spread) comes from.

    Args:
        records: results records with their ``per_image`` scores.
        groups: image name -> experiment group (``ImageInfo.group``, e.g. ``"520x696 fluorescence"``).

    Returns:
        One row per (data set, group, system, machine, budget): ``seeds`` and, per metric, one value per seed.
    """
    cases: dict[tuple[Any, ...], list[tuple[Any, list[dict[str, Any]]]]] = {}
    for record in records:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for image in record.get("per_image", []):
            if image["name"] in groups:
                by_group.setdefault(groups[image["name"]], []).append(image)
        for group, images in by_group.items():
            key = (record["dataset"], group, system_label(record), machine_name(record), record["budget_minutes"])
            cases.setdefault(key, []).append((record["seed"], images))
    rows = []
    for (dataset, group, system, on, budget), members in cases.items():
        members.sort(key=lambda member: member[0] if member[0] is not None else -1)
        rows.append(
            {
                "dataset": dataset, "group": group, "system": system, "machine": on, "budget_minutes": budget,
                "images": len(members[0][1]), "seeds": [seed for seed, _ in members],
                **{name: [float(np.mean([image[name] for image in images])) for _, images in members]
                   for name in ("dice", "f1_50")},
            }
        )  # fmt: skip

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        base = row["system"].split(" @ ")[0]
        system = SYSTEMS.index(base) if base in SYSTEMS else len(SYSTEMS)
        return (row["dataset"], -row["images"], row["group"], system, row["system"], row["machine"])

    return sorted(rows, key=order)


def markdown_groups(rows: list[dict[str, Any]]) -> str:
    """The rows of ``group_rows`` as a markdown table: each seed's value, then the mean over seeds."""

    def values(per_seed: list[float]) -> str:
        each = " / ".join(f"{value:.3f}" for value in per_seed)
        return each if len(per_seed) < 2 else f"{each} (mean {np.mean(per_seed):.3f})"

    lines = [
        "| data set | group | images | system | machine | seeds | Dice per seed | F1@0.5 per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seeds = ", ".join("-" if seed is None else str(seed) for seed in row["seeds"])
        lines.append(
            f"| {row['dataset']} | {row['group']} | {row['images']} | {row['system']} | {row['machine']} | {seeds} | "
            f"{values(row['dice'])} | {values(row['f1_50'])} |"
        )
    return "\n".join(lines)


def print_tables(records: list[dict[str, Any]], as_json: bool) -> None:
    """Print the mean-over-images and pooled-over-objects tables and the training table (markdown or JSON)."""
    tables = {"mean": table_rows(records, "mean"), "pooled": table_rows(records, "pooled")}
    training = training_rows(records)
    if as_json:
        print(json.dumps({**tables, "training": training, "curves": curve_rows(records)}, indent=1))
        return
    legend = "mean over seeds, (max - min) over seeds in brackets where there are several"
    print(f"Scores averaged over images ({legend}):\n")
    print(markdown_table(tables["mean"]))
    print(f"\nScores pooled over objects ({legend}):\n")
    print(markdown_table(tables["pooled"]))
    if training:
        print(
            "\nTraining (steps/s and val. pass s: the timing pass, the pass extrapolated to all validation images; "
            "fit s: Lightning's Timer, validation included):\n"
        )
        print(markdown_training(training))
    curves = curve_rows(records)
    if curves:
        print(
            "\nTraining time to each level of the validation scores logged during training (minutes of training, "
            "validation left out; seen at validation passes only, so an upper bound):\n"
        )
        print(markdown_curves(curves))


# --------------------------------------------------------------------------------------------------------------
# Command line


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="dsb2018_train or usiigaci_train folder (with metadata.csv)")
    parser.add_argument("--system", action="append", choices=SYSTEMS, help="repeatable; default: all")
    parser.add_argument("--seed", action="append", type=int, help="repeatable; default: 0 1 (Otsu runs once)")
    parser.add_argument("--budget-minutes", type=float, default=20.0, help="training wall clock per case")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (one JSON file per case)")
    parser.add_argument("--force", action="store_true", help="run cases already in the results again (replace)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score cases already in the results again from their checkpoints "
        "(after a post-processing change; training is kept, the headline numbers of the old scores stay under "
        "rescored.previous_scores)",
    )
    parser.add_argument("--table", action="store_true", help="only print the tables of the results")
    parser.add_argument("--json-table", action="store_true", help="only print the tables, as JSON")
    parser.add_argument(
        "--groups",
        action="store_true",
        help="only print each experiment group's scores per seed (with --data: the groups of its metadata.csv)",
    )
    parser.add_argument("--config", type=Path, help="training config (default: configs/DATASET.yaml); a tuning variant")
    parser.add_argument("--limit-val", type=int, help="debug: score only the first N validation images")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record-to", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the missing cases, each in its own process, then print the tables."""
    arguments = parse_arguments(argv)
    arguments.results = arguments.results.resolve()
    if arguments.one:
        if str(Path(__file__).parent) not in sys.path:  # the clock's functions are imported by path
            sys.path.insert(0, str(Path(__file__).parent))
        record = run_one(arguments, shlex.join([relative(Path(sys.executable)), *sys.argv]))
        arguments.record_to.write_text(json.dumps(record))
        return 0
    if arguments.groups:
        if arguments.data is None or not (arguments.data / "metadata.csv").is_file():
            sys.exit("--groups needs --data: a dsb2018_train or usiigaci_train folder with metadata.csv")
        images = read_metadata(arguments.data, dataset_name(arguments.data))
        print(markdown_groups(group_rows(load_results(arguments.results), {i.name: i.group for i in images})))
        return 0
    if arguments.table or arguments.json_table:
        print_tables(load_results(arguments.results), arguments.json_table)
        return 0
    if arguments.results.is_file():
        sys.exit(f"--results {arguments.results}: a single-file results list (the format before 2026-12-02); "
                 "give a folder (each case gets its own file there); --table still reads the list")  # fmt: skip
    if arguments.data is None or not (arguments.data / "metadata.csv").is_file():
        sys.exit(f"--data {arguments.data}: give a dsb2018_train or usiigaci_train folder with metadata.csv")
    dataset = dataset_name(arguments.data)
    try:
        split = ensure_split(arguments.data, dataset)
    except SplitMismatchError as error:
        sys.exit(str(error))
    print(f"{dataset}: {len(split['train'])} training and {len(split['validation'])} validation images "
          f"({relative(SPLITS / f'{dataset}.json')})")  # fmt: skip
    failed = []
    here = this_machine_name()
    seeds = arguments.seed or list(DEFAULT_SEEDS)
    # seed by seed, so that a comparison of every system is there after the first round
    systems = arguments.system or list(SYSTEMS)
    cases = [(system, None if system == DETERMINISTIC else seed) for seed in seeds for system in systems]
    for system, seed in dict.fromkeys(cases):  # Otsu once
        key = (
            dataset, system, seed, None if seed is None else arguments.budget_minutes, arguments.limit_val,
            None if seed is None else config_of(arguments, dataset),
        )  # fmt: skip
        done = [r for r in load_results(arguments.results) if case_key(r) == key]
        if arguments.rescore and not done:
            print(f"{dataset} {system} seed {seed}: not in {relative(arguments.results)}; nothing to rescore")
            continue
        clash = other_machine(done[-1], here) if done and not arguments.rescore else None
        if clash:
            print(f"{dataset} {system} seed {seed}: in {relative(arguments.results)} already, but {clash}",
                  file=sys.stderr)  # fmt: skip
            failed.append(f"{system} seed {seed} (another machine's case)")
            continue
        if done and not arguments.force and not arguments.rescore:
            print(f"{dataset} {system} seed {seed}: in {relative(arguments.results)} already (--force reruns)")
            continue
        with tempfile.TemporaryDirectory(prefix="cellseg-accuracy-") as scratch:
            record_path = Path(scratch) / "record.json"
            command = [
                sys.executable, __file__, "--one", "--data", str(arguments.data.resolve()), "--system", system,
                "--seed", str(seed or 0), "--budget-minutes", str(arguments.budget_minutes),
                "--results", str(arguments.results), "--record-to", str(record_path),
                *(["--limit-val", str(arguments.limit_val)] if arguments.limit_val else []),
                *(["--config", str(arguments.config.resolve())] if arguments.config else []),
                *(["--rescore"] if arguments.rescore else []),
            ]  # fmt: skip
            print(f"=== {dataset} {system} seed {seed}", flush=True)
            returncode = subprocess.run(command, cwd=ROOT).returncode
            if returncode != 0 or not record_path.exists():
                print(f"{dataset} {system} seed {seed}: failed (exit status {returncode})", file=sys.stderr)
                failed.append(f"{system} seed {seed}")
                continue
            record = json.loads(record_path.read_text())
        save_record(arguments.results, record)
    print_tables(load_results(arguments.results), as_json=False)
    if failed:
        print(f"failed cases: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
