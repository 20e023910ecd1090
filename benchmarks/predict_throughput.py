"""Inference throughput and peak memory of cellseg against MONAI's ``AttentionUnet`` on large images, in one run.

Measured per (system, image size), each case in its own process so that its peak memory is its own:

* ``cellseg``: the full path of ``cellseg predict``, ``segment_image`` with the default ``BlockConfig`` (blocks of
  4096 px with a 128 px margin, so memory stays bounded): tiled, Gaussian-blended probabilities, then instances.
* ``cellseg-probabilities``: ``predict_probabilities`` on the whole image, no instance step; the gap to
  ``cellseg`` is the share of post-processing (instances, block margins).
* ``monai-AttentionUnet``: what a MONAI user gets: MONAI's ``AttentionUnet`` at ``--monai-channels`` (default: the
  cellseg model's widths, unfolded where it folds: 8-128 for fold 2 and 16-128; a fast cellseg variant is compared
  with MONAI at the widths it was benchmarked at) in eval mode through ``monai.inferers.sliding_window_inference``
  (same tile, overlap 0.25, 4 tiles per batch, Gaussian blending, output on the CPU), then a softmax; no instance
  step. Ratios in the table are to this system at the same size.
* ``monai-AttentionUnet-channels-last``: the same, with the network's weights and input in NHWC memory format, as
  cellseg's 2D network runs (1.3-1.9x on a CPU): what MONAI's network would give with cellseg's layout, so that the
  gap to ``cellseg`` is the architecture's and the pipeline's, not the memory format's.
* ``monai-AttentionUnet-cellseg-tiles``: the same NHWC network on the tiles cellseg uses (``--tiles``), as many
  per pass as cellseg: with the format, the tiling and the batching the same as cellseg's, the gap to
  ``cellseg-probabilities`` is the network's alone.
* ``monai-AttentionUnet-compiled``, ``cellseg-compiled``, ``cellseg-probabilities-compiled``: the same systems with
  the network through ``torch.compile`` (MONAI's: ``torch.compile(network)`` with the defaults, NCHW, as a MONAI user
  would add it; cellseg's: ``cellseg predict --compile``, tile batches padded to one shape). The compilation runs in
  the warm-up pass (``warmup_seconds``), outside the timed part; ratios are still to the uncompiled MONAI reference.
* Memory: cellseg's rows call ``keep_freed_memory`` first, as ``cellseg predict`` does (glibc keeps freed memory
  for reuse; ``--plain-malloc`` leaves the defaults); MONAI's rows run with glibc's defaults, as a MONAI script does.
* Tiles per forward pass: cellseg's rows take ``cellseg predict``'s default (``tile_batch_for``: 2^19 pixels in 2D,
  32 tiles of 128 px; 2^17 until 2026-12-04; ``--tile-batch`` sets another), MONAI's reference rows 4 (MONAI's own
  default is 1).
* ``cellseg-naive``: the network on the whole (padded) image in one forward pass, no tiling, to show the memory that
  tiling saves; measured up to ``--naive-max`` (2048 px), above that estimated from the largest measured size scaled
  by the pixel count (marked as an estimate; not run, it would need tens of GB).

Every system starts from the same prepared input: a single-channel ``uint16`` image, a 1024 x 1024 synthetic field
of nuclei (``cellseg.data.synthetic``) tiled across the square image, normalised with ``prepare`` as ``cellseg
predict`` does (its time is recorded as ``prepare_seconds``, outside the timed part). The cellseg model goes through
the real loading path: a ``SegmentationModule`` with random-init weights is saved as a checkpoint by a Lightning
``Trainer`` and read back with ``load_model``. Timings are for random weights: the compute is the same as a trained
model's, but the instance step sees noisy probabilities, so its object count (and, a little, its time) differs from
a trained model's; ``--checkpoint`` measures a trained model instead.

Tiles (``--tiles``) of the cellseg rows: ``patch`` (default, what ``cellseg predict`` does): the training patch
with overlap 0.25, as the MONAI rows always use; ``fitted``: ``cellseg predict --max-tile 512``, the fewest tiles of
at most 512 px a side sharing a quarter of the training patch (``cellseg.inference.tiling.fitted_tiles``).
``--no-fold-norms`` loads the cellseg model without folding its batch norms into the convolutions (that step's A/B).

Timing: one warm-up pass on a 512 x 512 crop, then the median of ``--repeats`` passes (default 3 up to 2048 x 2048,
1 above). Memory: on the CPU, the process's peak RSS (``ru_maxrss``) from just after the input is prepared (the
peak is reset there through ``/proc/self/clear_refs``, so normalisation's temporaries do not count) to the end,
next to the baseline RSS at that point (imports, model and input); on a GPU, ``torch.cuda.max_memory_allocated``
over the timed passes, next to the allocation before them.

Results are appended to ``benchmarks/results/predict_throughput.json``, one record per (system, size, device,
settings) case; a rerun skips cases already there (``--force`` remeasures)::

    .venv/bin/python benchmarks/predict_throughput.py --sizes 2048 10000
    .venv/bin/python benchmarks/predict_throughput.py --device cuda --precision bf16
    .venv/bin/python benchmarks/predict_throughput.py --checkpoint runs/dsb/best.ckpt --sizes 2048
    .venv/bin/python benchmarks/predict_throughput.py --checkpoint runs/fast.ckpt --monai-channels 16 32 64 128 256
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from monai.inferers.utils import sliding_window_inference
from monai.networks.nets.attentionunet import AttentionUnet
from torch import nn

from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.inference.memory import keep_freed_memory
from cellseg.inference.model import LoadedModel, load_model
from cellseg.inference.prepare import Preparation, prepare
from cellseg.inference.segment import BlockConfig, segment_image
from cellseg.inference.tiling import TileConfig, predict_probabilities, tile_batch_for, tiles_for
from cellseg.io import ImageData
from cellseg.models.unet import unfolded_channels
from cellseg.training.module import SegmentationModule

RESULTS = Path(__file__).resolve().parent / "results" / "predict_throughput.json"
REFERENCE = "monai-AttentionUnet"
REFERENCE_NHWC = "monai-AttentionUnet-channels-last"
REFERENCE_CELLSEG_TILES = "monai-AttentionUnet-cellseg-tiles"
NAIVE = "cellseg-naive"
COMPILED = "-compiled"  # a system's name with this suffix: the same system, its network through torch.compile
SYSTEMS = (
    REFERENCE, REFERENCE_NHWC, REFERENCE_CELLSEG_TILES, REFERENCE + COMPILED, "cellseg", "cellseg-probabilities",
    "cellseg" + COMPILED, "cellseg-probabilities" + COMPILED, NAIVE,
)  # fmt: skip
TILINGS = ("patch", "fitted")
FITTED_MAX_TILE = 512
CHANNELS = [8, 16, 32, 64, 128]  # configs/dsb2018_unfolded.yaml (configs/dsb2018_wide.yaml: 16 32 64 128 256)
TILE = 128  # configs/dsb2018.yaml's patch size
OVERLAP = 0.25
MONAI_BATCH = 4  # tiles per pass of what a MONAI user runs (MONAI's own default is 1)
AUTO_BATCH = "auto"  # a record's tile_batch when cellseg chose its own (TileConfig's default)
SAMPLE_SIDE = 1024  # the synthetic field tiled across the image
SAMPLE_NUCLEI = (320, 640)  # the default density (20-40 per 256 x 256) at 1024 x 1024
WARMUP_SIDE = 512
MANY_REPEATS_UP_TO = 2048 * 2048  # pixels; larger images are timed once by default
RANDOM_INIT = "random-init"

Array = npt.NDArray[np.float32]


def write_random_checkpoint(path: Path, channels: list[int], tile: int, network: dict[str, Any] | None = None) -> Path:
    """Save a random-init ``SegmentationModule`` as a cellseg checkpoint, the way ``cellseg fit`` writes one.

    Args:
        path: the ``.ckpt`` to write.
        channels: the network's widths, finest first.
        tile: the patch size recorded in the checkpoint (the default tile of ``load_model``).
        network: more ``ResAttUNet`` arguments (``{"first_level": "light"}``, say).

    Returns:
        ``path``.
    """
    L.seed_everything(0, verbose=False)
    module = SegmentationModule(network={"channels": channels, **(network or {})}, patch_size=[tile, tile])
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=path.parent,
    )  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def append_records(results: Path, records: list[dict[str, Any]]) -> None:
    """Append ``records`` to the JSON list in ``results`` (created if missing), through a temporary file."""
    previous: list[dict[str, Any]] = json.loads(results.read_text()) if results.exists() else []
    results.parent.mkdir(parents=True, exist_ok=True)
    temporary = results.with_suffix(".tmp")
    temporary.write_text(json.dumps(previous + records, indent=1))
    temporary.replace(results)


def synthetic_image(sample: npt.NDArray[np.uint16], side: int) -> npt.NDArray[np.uint16]:
    """A ``(side, side)`` ``uint16`` image: ``sample`` repeated across it, cut at the far edges."""
    repeats = -(-side // sample.shape[0]), -(-side // sample.shape[1])
    image: npt.NDArray[np.uint16] = np.ascontiguousarray(np.tile(sample, repeats)[:side, :side])
    return image


def prepared_input(sample: npt.NDArray[np.uint16], side: int, model: LoadedModel) -> Array:
    """The ``(1, side, side)`` float32 input of every system, normalised as ``cellseg predict`` does."""
    image = ImageData(
        array=synthetic_image(sample, side)[None], spatial_dims=2, spacing=(1.0, 1.0), affine=None,
        path=Path(f"synthetic-{side}.tif"),
    )  # fmt: skip
    return prepare(image, Preparation.of(model))


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """bf16 autocast on a GPU when asked for; nothing otherwise (as ``cellseg.inference.tiling`` does)."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def monai_network(channels: list[int], device: torch.device, channels_last: bool = False) -> nn.Module:
    """MONAI's ``AttentionUnet`` (2D, 1 -> 3 channels) at ``channels``, random-init, in eval mode on ``device``.

    With ``channels_last`` its weights are NHWC, as cellseg's are (not what MONAI does by default).
    """
    torch.manual_seed(0)
    network = AttentionUnet(
        spatial_dims=2, in_channels=1, out_channels=3, channels=channels, strides=(2,) * (len(channels) - 1)
    )
    if channels_last:
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return network.eval().to(device)


def monai_probabilities(
    network: nn.Module,
    image: Array,
    tile: tuple[int, ...],
    overlap: tuple[float, ...] | float,
    precision: str,
    batch: int = MONAI_BATCH,
) -> torch.Tensor:
    """Probabilities ``(1, 3, H, W)`` on the CPU as a MONAI user gets them: a sliding window, then a softmax.

    ``batch`` tiles per forward pass (``MONAI_BATCH``; ``REFERENCE_CELLSEG_TILES`` takes cellseg's).

    The input follows the network's weights' memory format (NCHW by default, NHWC for ``REFERENCE_NHWC``).
    """
    device = next(network.parameters()).device
    tensor = torch.from_numpy(image)[None].to(device)
    if next(network.parameters()).is_contiguous(memory_format=torch.channels_last):
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(device, precision):
        logits = sliding_window_inference(
            tensor, roi_size=tile, sw_batch_size=batch, predictor=network, overlap=overlap,
            mode="gaussian", device=torch.device("cpu"),
        )  # fmt: skip
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits.float(), dim=1)


def naive_probabilities(model: LoadedModel, image: Array, precision: str) -> torch.Tensor:
    """Probabilities ``(1, K, H, W)`` on the CPU from one forward pass over the whole image, padded to the stride."""
    device = next(model.module.parameters()).device
    tensor = torch.from_numpy(image)[None].to(device)
    height, width = image.shape[1:]
    padding = (0, -width % model.stride, 0, -height % model.stride)
    with torch.inference_mode(), autocast(device, precision):
        padded = F.pad(tensor, padding, mode="replicate")
        probabilities = model.module.probabilities(model.module(padded)).float()
        return probabilities[:, :, :height, :width].cpu()


def run_system(
    system: str, model: LoadedModel, monai: nn.Module | None, image: Array, tiles: TileConfig
) -> tuple[int | None, int | None]:
    """One pass of ``system`` over ``image``; return (objects found, blocks) where the system has them."""
    if system == "cellseg":
        segmentation = segment_image(model, image, tiles, None, BlockConfig())
        return segmentation.count, segmentation.blocks
    if system == "cellseg-probabilities":
        predict_probabilities(model, image, tiles)
    elif system in (REFERENCE, REFERENCE_NHWC):
        assert monai is not None
        patch = model.tile_size
        monai_probabilities(monai, image, patch, OVERLAP, tiles.precision)
    elif system == REFERENCE_CELLSEG_TILES:
        assert monai is not None
        tile, overlap = tiles_for(model, tiles, image.shape[1:])
        monai_probabilities(monai, image, tile, overlap, tiles.precision, tile_batch_for(tiles, tile))
    elif system == NAIVE:
        naive_probabilities(model, image, tiles.precision)
    else:
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}.")
    return None, None


def used_batch(model: LoadedModel, tiles: TileConfig, side: int) -> int:
    """The tiles per forward pass cellseg's sliding window takes on a ``side`` x ``side`` image."""
    tile, _ = tiles_for(model, tiles, (side, side))
    return tile_batch_for(tiles, tile)


def current_rss_mb() -> float:
    """The process's resident memory now, in MB (its peak so far where ``/proc`` is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident memory (``ru_maxrss``, kB on Linux), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux ``clear_refs``); whether that worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(
    system: str,
    side: int,
    checkpoint: Path,
    sample_path: Path,
    device_name: str,
    precision: str,
    tile: int,
    repeats: int,
    monai_channels: list[int] | None = None,
    tiling: str = "patch",
    fold_norms: bool = True,
    tile_batch: int | None = None,
    plain_malloc: bool = False,
) -> dict[str, Any]:
    """Time ``system`` on a ``side`` x ``side`` image in this process; return its record.

    Args:
        system: one of ``SYSTEMS``.
        side: the square image's side in pixels.
        checkpoint: the cellseg checkpoint (its widths are also MONAI's unless ``monai_channels``).
        sample_path: ``.npy`` of the ``uint16`` synthetic field tiled across the image.
        device_name: ``cpu`` or ``cuda``.
        precision: ``32`` or ``bf16`` (GPU only).
        tile: the training patch's side in pixels (the tile of ``patch`` tiling and of the MONAI reference).
        repeats: timed passes; the median is reported.
        monai_channels: MONAI's widths, finest first; ``None``: the cellseg model's.
        tiling: ``patch`` (``tile`` with overlap 0.25, cellseg's default) or ``fitted`` (``max_tile`` 512).
        fold_norms: fold the cellseg model's batch norms into its convolutions (``load_model``'s default).
        tile_batch: cellseg's tiles per forward pass (also ``REFERENCE_CELLSEG_TILES``'s); ``None``: cellseg's
            default (``tile_batch_for``). MONAI's reference rows always run ``MONAI_BATCH``.
        plain_malloc: leave glibc's malloc as it is for a cellseg system too (``cellseg predict`` calls
            ``keep_freed_memory``; MONAI's rows always run with the defaults, as a MONAI script does).

    Returns:
        Seconds, megapixels/s, memory, objects and the settings, as plain data.
    """
    device = torch.device(device_name)
    kept_freed_memory = not system.startswith(REFERENCE) and not plain_malloc and keep_freed_memory()
    compiled = system.endswith(COMPILED)
    system = system.removesuffix(COMPILED)
    model = load_model(checkpoint, device, fold_norms=fold_norms)
    model = replace(model, tile_size=(tile, tile))
    network = model.module.hparams["network"]
    channels = [int(width) for width in network["channels"]]
    is_monai = system.startswith(REFERENCE)
    if is_monai:
        channels = monai_channels or unfolded_channels(channels, int(network.get("fold", 1)))
    monai = monai_network(channels, device, system in (REFERENCE_NHWC, REFERENCE_CELLSEG_TILES)) if is_monai else None
    if monai is not None and compiled:
        monai = cast(nn.Module, torch.compile(monai))  # what a MONAI user who compiles gets: the defaults
    tile_size, max_tile = ((tile, tile), None) if tiling == "patch" else (None, FITTED_MAX_TILE)
    tiles = TileConfig(
        tile_size=tile_size, overlap=OVERLAP, max_tile=max_tile, batch_size=tile_batch, precision=precision,
        compile=compiled and not is_monai,
    )  # fmt: skip
    model_rss = current_rss_mb()
    sample: npt.NDArray[np.uint16] = np.load(sample_path)
    start = time.perf_counter()
    image = prepared_input(sample, side, model)
    prepare_seconds = time.perf_counter() - start
    warmup = np.ascontiguousarray(image[:, :WARMUP_SIDE, :WARMUP_SIDE])
    prepare_peak = peak_rss_mb()
    gc.collect()
    peak_was_reset = reset_peak_rss()
    baseline_rss = current_rss_mb()
    start = time.perf_counter()
    run_system(system, model, monai, warmup, tiles)  # compiles a compiled system's network
    warmup_seconds = time.perf_counter() - start
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline_cuda = torch.cuda.memory_allocated() / 2**20 if cuda else None
    seconds: list[float] = []
    objects: int | None = None
    blocks: int | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        objects, blocks = run_system(system, model, monai, image, tiles)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    peak_rss = peak_rss_mb()
    median = statistics.median(seconds)
    return {
        "system": system + (COMPILED if compiled else ""),
        "size": side,
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu x{torch.get_num_threads()} threads",
        "precision": precision,
        "channels": channels,
        "tile": tile,
        "tiles": tiling,
        "fold_norms": fold_norms,
        "overlap": OVERLAP,
        "batch": MONAI_BATCH if system in (REFERENCE, REFERENCE_NHWC) else used_batch(model, tiles, side),
        "tile_batch": tile_batch or AUTO_BATCH,
        "kept_freed_memory": kept_freed_memory,
        "repeats": repeats,
        "seconds": median,
        "seconds_all": seconds,
        "megapixels_per_s": side * side / 1e6 / median,
        "peak_memory_mb": peak_cuda if peak_cuda is not None else peak_rss,
        "baseline_memory_mb": baseline_cuda if baseline_cuda is not None else baseline_rss,
        "peak_rss_mb": peak_rss,
        "baseline_rss_mb": baseline_rss,
        "model_rss_mb": model_rss,
        "prepare_peak_rss_mb": prepare_peak,
        "peak_rss_reset": peak_was_reset,
        "peak_cuda_mb": peak_cuda,
        "baseline_cuda_mb": baseline_cuda,
        "objects": objects,
        "blocks": blocks,
        "prepare_seconds": prepare_seconds,
        "warmup_seconds": warmup_seconds,
        "torch_threads": torch.get_num_threads(),
        "estimate": False,
        "date": time.strftime("%Y-%m-%d"),
    }


def run_case_in_subprocess(
    system: str, side: int, checkpoint: Path, sample_path: Path, arguments: argparse.Namespace, tile: int
) -> dict[str, Any] | None:
    """Measure one case in a fresh process (so its peak memory is its own); its record, or ``None`` if it failed."""
    command = [
        sys.executable, __file__, "--one", f"{system}:{side}", "--checkpoint", str(checkpoint),
        "--sample", str(sample_path), "--device", arguments.device, "--precision", arguments.precision,
        "--tile", str(tile), "--repeats", str(repeats_for(side, arguments.repeats)), "--tiles", arguments.tiles,
        *(["--no-fold-norms"] if arguments.no_fold_norms else []),
        *(["--tile-batch", str(arguments.tile_batch)] if arguments.tile_batch else []),
        *(["--plain-malloc"] if arguments.plain_malloc else []),
        *(["--monai-channels", *map(str, arguments.monai_channels)] if arguments.monai_channels else []),
    ]  # fmt: skip
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        print(f"  {system} at {side} failed (exit {completed.returncode}):\n{tail}", file=sys.stderr, flush=True)
        return None
    record: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return record


def repeats_for(side: int, repeats: int | None) -> int:
    """Timed passes for a ``side`` x ``side`` image: ``repeats``, or 3 up to 2048 x 2048 and 1 above."""
    if repeats is not None:
        return repeats
    return 3 if side * side <= MANY_REPEATS_UP_TO else 1


def naive_estimate(measured: dict[str, Any], side: int, cuda: bool) -> dict[str, Any]:
    """The naive pass's memory at ``side``, scaled from a measured record by the pixel count (not run).

    On the CPU the part above the model's RSS (input, activations, output) scales with the pixels; on a GPU the
    whole allocation does (the weights are a few MB).
    """
    ratio = side * side / measured["size"] ** 2
    if cuda:
        peak = measured["peak_memory_mb"] * ratio
    else:
        peak = measured["model_rss_mb"] + (measured["peak_rss_mb"] - measured["model_rss_mb"]) * ratio
    return measured | {
        "size": side, "seconds": None, "megapixels_per_s": None, "peak_memory_mb": peak, "baseline_memory_mb": None,
        "estimate": True, "estimated_from": measured["size"],
    }  # fmt: skip


def print_table(rows: list[dict[str, Any]], sizes: list[int], naive_max: int, cuda: bool) -> None:
    """Markdown table of ``rows`` (this device and settings), with ratios to MONAI at the same size."""
    print("| system | size | device | Mpx/s | vs MONAI | peak memory MB | baseline MB | objects |")
    print("|---|---|---|---|---|---|---|---|")
    naive_measured = sorted((r for r in rows if r["system"] == NAIVE), key=lambda r: r["size"])
    notes = []
    for side in sizes:
        at_size = {r["system"]: r for r in rows if r["size"] == side}
        if NAIVE not in at_size and side > naive_max and naive_measured:
            at_size[NAIVE] = naive_estimate(naive_measured[-1], side, cuda)
        reference = at_size.get(REFERENCE)
        for system in SYSTEMS:
            r = at_size.get(system)
            if r is None:
                continue
            if r["estimate"]:
                print(f"| {system} (estimate) | {side}x{side} | {r['device']} | - | - | "
                      f"~{r['peak_memory_mb']:.0f} (scaled from {r['estimated_from']}) | - | - |")  # fmt: skip
                continue
            ratio = r["megapixels_per_s"] / reference["megapixels_per_s"] if reference else math.nan
            objects = "-" if r["objects"] is None else str(r["objects"])
            print(f"| {system} | {side}x{side} | {r['device']} | {r['megapixels_per_s']:.3f} | {ratio:.2f} | "
                  f"{r['peak_memory_mb']:.0f} | {r['baseline_memory_mb']:.0f} | {objects} |")  # fmt: skip
        for suffix in ("", COMPILED):
            full, probabilities = at_size.get("cellseg" + suffix), at_size.get("cellseg-probabilities" + suffix)
            if full and probabilities:
                share = 1 - probabilities["seconds"] / full["seconds"]
                notes.append(f"{side}x{side}: instances + block margins take {share:.0%} of cellseg{suffix}'s time")
        for system, r in at_size.items():
            if system.endswith(COMPILED) and r.get("warmup_seconds") is not None:
                notes.append(f"{side}x{side}: {system} compiled in its warm-up pass: {r['warmup_seconds']:.0f} s")
    for note in notes:
        print(f"\n{note}", end="")
    print()


def main() -> None:
    """Measure every case missing from the results for this device and settings; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 10000], help="square image sides in pixels")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32", help="bf16 autocast (GPU only)")
    parser.add_argument("--channels", type=int, nargs="+", default=CHANNELS, help="widths of the random-init models")
    parser.add_argument("--monai-channels", type=int, nargs="+",
                        help="MONAI AttentionUnet's widths (default: the cellseg model's)")  # fmt: skip
    parser.add_argument("--tile", type=int, help=f"tile side (default: the checkpoint's patch size, {TILE})")
    parser.add_argument("--tiles", choices=TILINGS, default="patch",
                        help="cellseg's tiles: the training patch (default) or fitted (--max-tile 512)")  # fmt: skip
    parser.add_argument("--no-fold-norms", action="store_true", help="keep the cellseg model's batch norms unfolded")
    parser.add_argument("--tile-batch", type=int,
                        help="cellseg's tiles per pass (default: cellseg predict's own; MONAI's: 4)")  # fmt: skip
    parser.add_argument("--plain-malloc", action="store_true",
                        help="cellseg rows without cellseg predict's keep_freed_memory (glibc's defaults)")  # fmt: skip
    parser.add_argument("--repeats", type=int, help="timed passes per case (default: 3 up to 2048 px, 1 above)")
    parser.add_argument("--naive-max", type=int, default=2048, help="largest size the naive pass is run at")
    parser.add_argument("--checkpoint", type=Path, help="a trained cellseg checkpoint instead of random weights")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON results file")
    parser.add_argument("--force", action="store_true", help="remeasure cases already in the results")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="systems to measure")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "system:size", measured in this process
    parser.add_argument("--sample", type=Path, help=argparse.SUPPRESS)  # internal: the uint16 field, .npy
    arguments = parser.parse_args()
    if arguments.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible to torch.")
    if arguments.device == "cpu":
        arguments.precision = "32"  # autocast is GPU only in cellseg; the CPU runs float32
    if arguments.one:
        system, side = arguments.one.rsplit(":", 1)
        record = measure(system, int(side), arguments.checkpoint, arguments.sample, arguments.device,
                         arguments.precision, arguments.tile, arguments.repeats, arguments.monai_channels,
                         arguments.tiles, not arguments.no_fold_norms, arguments.tile_batch,
                         arguments.plain_malloc)  # fmt: skip
        print(json.dumps(record))
        return
    results: Path = arguments.results
    label = str(arguments.checkpoint) if arguments.checkpoint else RANDOM_INIT
    device = torch.cuda.get_device_name() if arguments.device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="cellseg-predict-throughput-") as scratch:
        checkpoint = arguments.checkpoint
        if checkpoint is None:
            checkpoint = write_random_checkpoint(
                Path(scratch) / "random.ckpt", arguments.channels, arguments.tile or TILE
            )
        model = load_model(checkpoint)
        network = model.module.hparams["network"]
        channels = [int(width) for width in network["channels"]]
        monai_channels: list[int] = arguments.monai_channels or unfolded_channels(channels, int(network.get("fold", 1)))
        tile = arguments.tile or model.tile_size[0]
        sample_path = Path(scratch) / "sample.npy"
        nuclei = SyntheticConfig(shape=(SAMPLE_SIDE, SAMPLE_SIDE), n_nuclei=SAMPLE_NUCLEI)
        np.save(sample_path, generate_sample(nuclei, seed=0).image)

        def same_settings(r: dict[str, Any]) -> bool:
            widths = monai_channels if r["system"].startswith(REFERENCE) else channels
            monai_batch = r["system"].removesuffix(COMPILED) in (REFERENCE, REFERENCE_NHWC)
            batch_matches = monai_batch or r.get("tile_batch", MONAI_BATCH) == (arguments.tile_batch or AUTO_BATCH)
            malloc_matches = r["system"].startswith(REFERENCE) or r.get("kept_freed_memory", False) != (
                arguments.plain_malloc or not sys.platform.startswith("linux")
            )
            return bool(
                batch_matches and malloc_matches and
                r["device"].startswith(device) and r["model"] == label and r["channels"] == widths
                and r["tile"] == tile and r["precision"] == arguments.precision
                and r.get("tiles", "patch") == arguments.tiles and r.get("fold_norms", False) != arguments.no_fold_norms
            )  # fmt: skip

        records: list[dict[str, Any]] = json.loads(results.read_text()) if results.exists() else []
        for side in arguments.sizes:
            for system in arguments.systems:
                if system == NAIVE and side > arguments.naive_max:
                    continue
                done = [r for r in records if same_settings(r) and r["system"] == system and r["size"] == side]
                if done and not arguments.force:
                    continue
                print(f"measuring {system} at {side}x{side} on {arguments.device} ...", flush=True)
                measured = run_case_in_subprocess(system, side, checkpoint, sample_path, arguments, tile)
                if measured is None:
                    continue
                records = [r for r in records if r not in done] + [measured | {"model": label}]
                results.parent.mkdir(parents=True, exist_ok=True)
                temporary = results.with_suffix(".tmp")
                temporary.write_text(json.dumps(records, indent=1))
                temporary.replace(results)
    rows = [r for r in records if same_settings(r)]
    print(f"model: {label}; widths {channels} (MONAI {monai_channels}); cellseg tiles {arguments.tiles}, "
          f"norms {'unfolded' if arguments.no_fold_norms else 'folded'}; MONAI tile {tile}, overlap {OVERLAP}; "
          f"tiles per pass: cellseg {arguments.tile_batch or AUTO_BATCH}, MONAI {MONAI_BATCH}; "
          f"precision {arguments.precision}")  # fmt: skip
    print_table(rows, sorted(set(arguments.sizes)), arguments.naive_max, arguments.device == "cuda")


if __name__ == "__main__":
    main()
