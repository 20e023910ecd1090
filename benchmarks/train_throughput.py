"""Training throughput of cellseg against MONAI's ``AttentionUnet`` and ``UNet`` through the same pipeline, in one run.

Every system trains through the real ``CellDataModule`` (cached images, foreground-favouring patches), the real
``SegmentationModule`` (on-device MONAI augmentation, 3-class target, Dice + CE, AdamW) and a real Lightning
``Trainer``; only the network differs, at the same widths (``--channels``, default those of
``configs/dsb2018.yaml``; cellseg's network takes that config's other options too, or ``--network``; where it folds
its input, ``fold`` 2 with widths 16-128, the MONAI networks take the unfolded widths, 8-128), all in NHWC
memory format, all with 3 outputs (no distance head, as the DSB2018 and
Usiigaci configs train). Each system runs in its own process, so its peak memory is its own.
Printed per system: parameters, patches/s, the share of a step spent waiting for data (DataLoader fetch), the share
spent augmenting and building the target (on the device), and peak memory (RSS on the CPU, CUDA peak allocation on
a GPU). Ratios are to MONAI's ``AttentionUnet`` measured in the same run.

Results are appended to ``benchmarks/results/train_throughput.json``, one record per (system, device, data, patch,
widths) case; a rerun skips cases already there (``--force`` remeasures)::

    .venv/bin/python benchmarks/train_throughput.py                       # synthetic data, CPU
    .venv/bin/python benchmarks/train_throughput.py --data ../shared/data/dsb2018_train --patch 128
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from monai.networks.nets.attentionunet import AttentionUnet
from monai.networks.nets.unet import UNet
from torch import nn

from cellseg.data.datamodule import CellDataModule
from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.models.unet import unfolded_channels
from cellseg.training.module import Batch, SegmentationModule

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"
SYSTEMS = ("monai-AttentionUnet", "monai-UNet", "cellseg-ResAttUNet")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "dsb2018.yaml"


def config_channels(config: Path = CONFIG) -> list[int]:
    """The widths of a config's ``model.network`` (configs/dsb2018_wide.yaml: 16 32 64 128 256)."""
    channels: list[int] = yaml.safe_load(config.read_text())["model"]["network"]["channels"]
    return channels


def config_network(config: Path = CONFIG) -> dict[str, Any]:
    """The ``ResAttUNet`` options of a config's ``model.network`` besides its widths and input channels."""
    network: dict[str, Any] = yaml.safe_load(config.read_text())["model"]["network"]
    return {key: value for key, value in network.items() if key not in ("channels", "in_channels")}


WARMUP_STEPS = 3


class MonaiNetwork(nn.Module):
    """MONAI's ``AttentionUnet`` or ``UNet(num_res_units=2)`` (2D, 1 -> 3 channels) as ``SegmentationModule``'s network.

    Its weights are NHWC (channels-last), as cellseg's 2D network's are: the same pipeline, the same layout.
    """

    deep_supervision = False

    def __init__(self, system: str, channels: list[int]) -> None:
        super().__init__()
        strides = [2] * (len(channels) - 1)
        self.net: nn.Module
        if system == "monai-AttentionUnet":
            self.net = AttentionUnet(2, 1, 3, channels=channels, strides=strides)
        else:
            self.net = UNet(2, 1, 3, channels=channels, strides=strides, num_res_units=2)
        self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 3, H, W)`` for ``(N, 1, H, W)``."""
        logits: torch.Tensor = self.net(image)
        return logits


class TimedModule(SegmentationModule):
    """``SegmentationModule`` that also times its on-device augmentation and target."""

    augment_seconds: list[float]

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Time the parent's augmentation + target."""
        start = time.perf_counter()
        prepared = super().on_after_batch_transfer(batch, dataloader_idx)
        if prepared["image"].is_cuda:
            torch.cuda.synchronize()
        self.augment_seconds.append(time.perf_counter() - start)
        return prepared


class StepTimer(Callback):
    """Timestamps of every training batch's start and end (end synchronised with the GPU)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        """Record the start."""
        self.starts.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        """Record the end."""
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def measure(
    system: str,
    data: Path,
    patch: int,
    batch: int,
    steps: int,
    workers: int,
    channels: list[int],
    network: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``steps`` steps of ``system``; return throughput, wait shares and peak memory.

    ``network``: cellseg's ``ResAttUNet`` options besides the widths; the MONAI systems take only its ``fold``, to run
    the ``unfolded_channels`` of ``channels``.
    """
    L.seed_everything(0)
    options = network_of(system, network or {})
    module = TimedModule(network={"channels": channels} | options, patch_size=[patch, patch], distance_head=False)
    module.augment_seconds = []
    network_channels = channels
    if system.startswith("monai-"):
        network_channels = unfolded_channels(channels, int((network or {}).get("fold", 1)))
        module.network = MonaiNetwork(system, network_channels)  # type: ignore[assignment]
    datamodule = CellDataModule(
        str(data), patch_size=[patch, patch], batch_size=batch, patches_per_epoch=batch * (steps + WARMUP_STEPS),
        num_workers=workers, size_divisor=8,
    )  # fmt: skip
    timer = StepTimer()
    trainer = L.Trainer(
        max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0,
        default_root_dir=tempfile.mkdtemp(prefix="cellseg-throughput-"),  # split.json goes there, not into cwd
    )  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule)
    starts, ends = timer.starts[WARMUP_STEPS:], timer.ends[WARMUP_STEPS:]
    total = ends[-1] - timer.ends[WARMUP_STEPS - 1]
    # Between one step's end and the next one's start: DataLoader fetch, transfer, augmentation and target.
    gaps = [start - previous_end for start, previous_end in zip(starts, timer.ends[WARMUP_STEPS - 1 : -1], strict=True)]
    augment = sum(module.augment_seconds[WARMUP_STEPS:])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "system": system,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()} threads",
        "data": str(data),
        "patch": patch,
        "batch": batch,
        "channels": channels,
        "network_channels": network_channels,
        "network": options,
        "parameters": sum(parameter.numel() for parameter in module.network.parameters()),
        "steps": len(starts),
        "patches_per_s": batch * len(starts) / total,
        "mpx_per_s": batch * len(starts) * patch * patch / 1e6 / total,
        "data_wait_share": max(sum(gaps) - augment, 0.0) / total,
        "augment_share": augment / total,
        "peak_memory_mb": peak_mb,
        "date": time.strftime("%Y-%m-%d"),
    }


def network_of(system: str, network: dict[str, Any]) -> dict[str, Any]:
    """The network options a record of ``system`` holds: ``network`` for cellseg, none for the MONAI systems."""
    return network if system == "cellseg-ResAttUNet" else {}


def run_case_in_subprocess(system: str, arguments: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Measure one system in a fresh process (so its peak memory is its own); return its record."""
    command = [
        sys.executable, __file__, "--one", system, "--data", str(data), "--patch", str(arguments.patch),
        "--batch", str(arguments.batch), "--steps", str(arguments.steps), "--workers", str(arguments.workers),
        "--channels", *map(str, arguments.channels), "--network", json.dumps(arguments.network),
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    record: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return record


def main() -> None:
    """Measure every system missing from the results for this device and data; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="annotated folder (default: a synthetic set in a temp folder)")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per system (after 3 warm-up steps)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument(
        "--channels", type=int, nargs="+", default=None,
        help="cellseg's widths (default: configs/dsb2018.yaml's); the MONAI systems' too, unfolded where cellseg folds",
    )  # fmt: skip
    parser.add_argument(
        "--network", type=json.loads, default=None,
        help="cellseg's ResAttUNet options as JSON (default: configs/dsb2018.yaml's), e.g. '{\"fold\": 2}'",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="remeasure cases already in the results")
    parser.add_argument("--one", choices=SYSTEMS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.network is None:
        arguments.network = config_network()
    if arguments.channels is None:
        arguments.channels = config_channels()
    if arguments.one:
        record = measure(arguments.one, arguments.data, arguments.patch, arguments.batch, arguments.steps,
                         arguments.workers, arguments.channels, arguments.network)  # fmt: skip
        print(json.dumps(record))
        return
    with tempfile.TemporaryDirectory() as scratch:
        data = arguments.data
        if data is None:
            data = Path(scratch) / "synthetic"
            write_dataset(data, 12, SyntheticConfig(shape=(256, 256)), seed=0)
        label = str(arguments.data) if arguments.data else "synthetic 12 x 256x256"
        records = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        for system in SYSTEMS:
            done = [
                r for r in records
                if r["system"] == system and r["device"].startswith(device) and r["data_label"] == label
                and r["patch"] == arguments.patch and r.get("channels", [32, 64, 128, 256]) == arguments.channels
                and r.get("network", {}) == network_of(system, arguments.network)
            ]  # fmt: skip
            if done and not arguments.force:
                continue
            print(f"measuring {system} ...", flush=True)
            record = run_case_in_subprocess(system, arguments, data) | {"data_label": label}
            records = [r for r in records if r not in done] + [record]
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            temporary = RESULTS.with_suffix(".tmp")
            temporary.write_text(json.dumps(records, indent=1))
            temporary.replace(RESULTS)
    rows = [
        r for r in records
        if r["data_label"] == label and r["patch"] == arguments.patch
        and r.get("channels", [32, 64, 128, 256]) == arguments.channels
        and r.get("network", {}) == network_of(r["system"], arguments.network)
    ]  # fmt: skip
    reference = next((r for r in rows if r["system"] == SYSTEMS[0]), None)
    print(f"data: {label}; patch {arguments.patch}, batch {arguments.batch}; widths {arguments.channels}; "
          f"cellseg's network {arguments.network}")  # fmt: skip
    print("| system | device | parameters | patches/s | vs MONAI AttentionUnet | data wait | augment + target "
          "| peak memory MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["patches_per_s"] / reference["patches_per_s"] if reference else float("nan")
        parameters = f"{r['parameters'] / 1e6:.2f} M" if "parameters" in r else "-"
        print(f"| {r['system']} | {r['device']} | {parameters} | {r['patches_per_s']:.1f} | {ratio:.2f} | "
              f"{r['data_wait_share']:.1%} | {r['augment_share']:.1%} | {r['peak_memory_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
