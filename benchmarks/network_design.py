"""Measure ResAttUNet's design choices: downsampling, upsampling and attention gates, for speed and accuracy.

Two parts, each printing a table and writing JSON under ``benchmarks/results/`` (git-ignored):

* ``--part speed``: parameters, a training step (forward + backward + AdamW, batch 8 x 1 x 128 x 128) and
  inference throughput (one 512 x 512 image, eval mode) for each variant and for MONAI's ``AttentionUnet`` at the
  same widths, measured in the same run; times are reported as ratios to the MONAI reference.
* ``--part accuracy``: each variant trained for the same number of steps on the fluorescence images of DSB2018
  (``../shared/data/dsb2018_train``, or ``--data``), then scored by foreground Dice on a seeded 15% of the images
  held out. Steps, not wall clock, so that other work on the machine cannot skew the comparison; the speed part
  says what a step costs. Resumable case by case: every (variant, seed) is appended to the JSON when done, and a
  rerun skips the cases already there. ``--case conv-down:0`` runs just one.

This is a design study with a deliberately small, self-contained pipeline (random crops, flips, Dice + CE); the
real training pipeline is ``cellseg fit``. Run from the repository root::

    .venv/bin/python benchmarks/network_design.py --part speed
    .venv/bin/python benchmarks/network_design.py --part accuracy --steps 400
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from monai.losses.dice import DiceCELoss
from monai.networks.nets.attentionunet import AttentionUnet
from torch import nn

from cellseg.models import ResAttUNet

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dsb2018_train"
STUDY_CHANNELS = (16, 32, 64, 128)
SPEED_CHANNELS = (32, 64, 128, 256)
REFERENCE = "monai-AttentionUnet"
# Each variant changes one choice from the strided-conv baseline (the study that made max-pool the default).
VARIANTS: dict[str, dict[str, Any]] = {
    "conv-down": {"downsample": "conv"},
    "maxpool-down": {"downsample": "maxpool"},
    "interp-up": {"downsample": "conv", "upsample": "interp"},
    "no-attention": {"downsample": "conv", "attention": "none"},
    "2-blocks": {"downsample": "conv", "blocks_per_level": 2},
}
PATCH = 128
BATCH = 8
SEEDS = (0, 1)


def build(name: str, channels: tuple[int, ...]) -> nn.Module:
    """A 2D, 1-channel-in, 2-class-out network: a ResAttUNet variant or the MONAI reference."""
    if name == REFERENCE:
        return AttentionUnet(2, 1, 2, channels=channels, strides=(2,) * (len(channels) - 1))
    return ResAttUNet(2, 1, 2, channels=channels, **VARIANTS[name])


def interleaved_medians(functions: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per function, timed round-robin (one call of each per round) so drift hits all alike."""
    for function in functions.values():
        function()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def make_train_step(net: nn.Module, batch: torch.Tensor) -> Callable[[], None]:
    """One forward + backward + AdamW step of ``net`` on ``batch``, as a closure."""
    optimizer = torch.optim.AdamW(net.parameters())

    def train_step() -> None:
        net.train()
        optimizer.zero_grad()
        net(batch).square().mean().backward()
        optimizer.step()

    return train_step


def make_inference(net: nn.Module, image: torch.Tensor) -> Callable[[], None]:
    """One eval-mode forward pass of ``net`` on ``image`` under ``inference_mode``, as a closure."""

    def infer() -> None:
        net.eval()
        with torch.inference_mode():
            net(image)

    return infer


def speed_part(rounds: int) -> list[dict[str, Any]]:
    """Time a training step and inference for the reference and every variant; add ratios to the reference."""
    names = [REFERENCE, *VARIANTS]
    nets = {name: build(name, SPEED_CHANNELS) for name in names}
    batch = torch.randn(BATCH, 1, PATCH, PATCH)
    image = torch.randn(1, 1, 512, 512)
    step_s = interleaved_medians({n: make_train_step(net, batch) for n, net in nets.items()}, rounds)
    infer_s = interleaved_medians({n: make_inference(net, image) for n, net in nets.items()}, rounds)
    rows = []
    for name in names:
        rows.append(
            {
                "network": name,
                "params_M": sum(p.numel() for p in nets[name].parameters()) / 1e6,
                "train_step_s": step_s[name],
                "infer_mpx_per_s": image.numel() / 1e6 / infer_s[name],
                "train_step_vs_ref": step_s[name] / step_s[REFERENCE],
                "infer_speed_vs_ref": infer_s[REFERENCE] / infer_s[name],
            }
        )
    return rows


def normalise(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 1st and 99.8th percentile (float32, ``(H, W)``)."""
    low, high = np.percentile(image, (1.0, 99.8))
    scaled: np.ndarray = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)
    return scaled


def load_fluorescence(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image ``(H, W)`` float32, foreground ``(H, W)`` int64) for every fluorescence image of DSB2018."""
    with (data / "metadata.csv").open() as handle:
        names = [row["image_id"] for row in csv.DictReader(handle) if row["modality_guess"] == "fluorescence"]
    samples = []
    for name in sorted(names):
        image = iio.imread(data / "images" / f"{name}.png")
        if image.ndim == 3:
            image = image.mean(axis=-1)
        mask = iio.imread(data / "masks" / f"{name}.png")
        samples.append((name, normalise(image), (mask > 0).astype(np.int64)))
    return samples


def split(samples: list[Any], seed: int, validation_fraction: float = 0.15) -> tuple[list[Any], list[Any]]:
    """A seeded split of ``samples`` into training and validation lists (same split for every variant)."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_validation = round(validation_fraction * len(samples))
    return [samples[i] for i in order[n_validation:]], [samples[i] for i in order[:n_validation]]


def random_batch(train: list[Any], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``BATCH`` random ``PATCH``-sized crops with flips and 90-degree rotations: ``(B, 1, P, P)`` twice."""
    images, masks = [], []
    for index in rng.integers(len(train), size=BATCH):
        _, image, mask = train[index]
        pad = [(0, max(PATCH - s, 0)) for s in image.shape]
        image, mask = np.pad(image, pad, mode="reflect"), np.pad(mask, pad, mode="reflect")
        top, left = (rng.integers(s - PATCH + 1) for s in image.shape)
        image, mask = image[top : top + PATCH, left : left + PATCH], mask[top : top + PATCH, left : left + PATCH]
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        image, mask = np.rot90(image, turns), np.rot90(mask, turns)
        if flip:
            image, mask = image[:, ::-1], mask[:, ::-1]
        images.append(image.copy())
        masks.append(mask.copy())
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(masks))[:, None]


def foreground_dice(net: nn.Module, validation: list[Any], stride: int) -> tuple[float, float]:
    """Pooled and mean per-image foreground Dice of ``net`` on whole validation images (reflect-padded)."""
    net.eval()
    intersection_total = size_total = 0.0
    per_image = []
    with torch.inference_mode():
        for _, image, mask in validation:
            height, width = image.shape
            padded = np.pad(image, ((0, -height % stride), (0, -width % stride)), mode="reflect")
            logits = net(torch.from_numpy(padded)[None, None])[0, :, :height, :width]
            predicted = (logits.argmax(0) == 1).numpy()
            truth = mask.astype(bool)
            intersection = float(np.logical_and(predicted, truth).sum())
            size = float(predicted.sum() + truth.sum())
            intersection_total += intersection
            size_total += size
            per_image.append(1.0 if size == 0 else 2 * intersection / size)
    return 2 * intersection_total / size_total, float(np.mean(per_image))


def train_case(name: str, seed: int, samples: list[Any], steps: int) -> dict[str, Any]:
    """Train one variant for ``steps`` steps (cosine learning rate), then score it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, validation = split(samples, seed=2026)
    net = build(name, STUDY_CHANNELS)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    start = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        images, masks = random_batch(train, rng)
        net.train()
        optimizer.zero_grad()
        loss = loss_function(net(images), masks)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    pooled, mean = foreground_dice(net, validation, stride=2 ** (len(STUDY_CHANNELS) - 1))
    return {"network": name, "seed": seed, "steps": steps, "train_s": seconds, "dice_pooled": pooled,
            "dice_mean": mean, "final_loss": loss.item(), "n_validation": len(validation)}  # fmt: skip


def accuracy_part(data: Path, steps: int, cases: list[tuple[str, int]], output: Path) -> list[dict[str, Any]]:
    """Run every case not yet in ``output``, appending each result as it finishes."""
    done = json.loads(output.read_text()) if output.exists() else []
    todo = [c for c in cases if not any(r["network"] == c[0] and r["seed"] == c[1] for r in done)]
    if todo:
        samples = load_fluorescence(data)
    for name, seed in todo:
        print(f"training {name} seed {seed} for {steps} steps ...", flush=True)
        done.append(train_case(name, seed, samples, steps))
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_suffix(".tmp")
        temporary.write_text(json.dumps(done, indent=1))
        temporary.replace(output)
    return done


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print ``rows`` as a Markdown table of ``columns``."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    """Parse the arguments and run the chosen part."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["speed", "accuracy"], required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DSB2018 folder (images/, masks/, csv)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per case (accuracy part)")
    parser.add_argument("--case", help="run one case NETWORK:SEED (accuracy part), e.g. conv-down:0")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per measurement (speed part)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "speed":
        rows = speed_part(args.rounds)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "network_design_speed.json").write_text(json.dumps(rows, indent=1))
        print(f"CPU, {args.threads} threads; channels {SPEED_CHANNELS}; train step: batch {BATCH}x1x{PATCH}x{PATCH}")
        print_table(rows, ["network", "params_M", "train_step_vs_ref", "infer_speed_vs_ref"])
        return
    if not (args.data / "metadata.csv").exists():
        raise SystemExit(f"{args.data}: no DSB2018 folder here (metadata.csv missing); pass --data PATH.")
    if args.case:
        name, seed = args.case.split(":")
        cases = [(name, int(seed))]
    else:
        cases = [(name, seed) for seed in SEEDS for name in [REFERENCE, *VARIANTS]]
    rows = accuracy_part(args.data, args.steps, cases, RESULTS / "network_design_accuracy.json")
    print(f"DSB2018 fluorescence, channels {STUDY_CHANNELS}, batch {BATCH}x1x{PATCH}x{PATCH}, same steps per case")
    print_table(rows, ["network", "seed", "steps", "dice_pooled", "dice_mean"])


if __name__ == "__main__":
    main()
