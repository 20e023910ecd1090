"""A ``cellseg predict`` run: every input image segmented and exported, unattended, on one or many devices.

The run goes through Lightning's ``Trainer.predict``, one image per step, so ``devices: N`` (and multi-node) runs
DDP with each process taking every N-th image. A ``DataLoader`` reads and normalises the next images in worker
processes while the current one is predicted, and a writer thread exports the previous one, so reading, compute and
writing overlap. An image that cannot be read, or has the wrong dimensionality, is reported in one line and the run
goes on; images whose mask is already in the output folder are skipped unless ``overwrite``. At the end the first
process writes ``predictions.csv`` (one row per image) and ``provenance.json`` (what made these masks).
"""

from __future__ import annotations

import csv
import json
import platform
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from cellseg import __version__
from cellseg.inference.inputs import InputImage
from cellseg.inference.instances import InstanceConfig
from cellseg.inference.model import LoadedModel
from cellseg.inference.prepare import Preparation, prepare
from cellseg.inference.segment import BlockConfig, Segmentation, segment_image
from cellseg.inference.tiling import TileConfig
from cellseg.io import ImageData, ImageReadError, read_image
from cellseg.io.atomic import atomic_output
from cellseg.io.geojson import write_geojson
from cellseg.io.roi import write_imagej_rois
from cellseg.io.writers import MASK_EXTENSIONS, LabelFormat, write_labels, write_outlines, write_probability

CSV_NAME = "predictions.csv"
PROVENANCE_NAME = "provenance.json"
Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class OutputOptions:
    """What is written per image, besides the label mask.

    Attributes:
        fmt: the label mask's format: ``tif`` (compressed label TIFF), ``png`` (16-bit, 2D) or ``nii`` (NIfTI, with
            the input's affine when the input is NIfTI).
        mask_suffix: appended to the image's name for the mask (``NAME_masks.tif``).
        probabilities: the foreground probability as a float16 TIFF (``NAME_probabilities.tif``).
        outlines: a PNG of the image with each object's contour (``NAME_outlines.png``).
        rois: an ImageJ/Fiji ROI set (``NAME_rois.zip``).
        geojson: QuPath-compatible polygons (``NAME.geojson``).
    """

    fmt: LabelFormat = "tif"
    mask_suffix: str = "_masks"
    probabilities: bool = False
    outlines: bool = False
    rois: bool = False
    geojson: bool = False

    def paths(self, output: Path, name: str) -> dict[str, Path]:
        """The files an image named ``name`` gets under ``output``, the mask last (it marks the image as done)."""
        wanted = {
            "probabilities": (self.probabilities, f"{name}_probabilities.tif"),
            "outlines": (self.outlines, f"{name}_outlines.png"),
            "rois": (self.rois, f"{name}_rois.zip"),
            "geojson": (self.geojson, f"{name}.geojson"),
            "masks": (True, f"{name}{self.mask_suffix}{MASK_EXTENSIONS[self.fmt]}"),
        }
        return {kind: output / file_name for kind, (on, file_name) in wanted.items() if on}


@dataclass(frozen=True)
class PredictOptions:
    """Everything a run is told, saved in its provenance.

    Attributes:
        output: the output folder; nothing is written outside it.
        tiles: sliding-window tiles, overlap, TTA, precision.
        instances: instance post-processing.
        blocks: block size for bounded memory on large images.
        outputs: the files written per image.
        overwrite: redo images whose mask is already there.
        workers: ``DataLoader`` processes reading ahead (0 reads in the main process).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``).
        devices: Lightning devices (``1``, ``4``, ``auto``); more than one runs DDP.
        num_nodes: machines, for multi-node DDP.
        strategy: Lightning strategy (``auto``; ``ddp_spawn`` where the command cannot be relaunched).
        progress: show a progress bar.
    """

    output: Path
    tiles: TileConfig = field(default_factory=TileConfig)
    instances: InstanceConfig = field(default_factory=InstanceConfig)
    blocks: BlockConfig = field(default_factory=BlockConfig)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    overwrite: bool = False
    workers: int = 1
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    progress: bool = True


@dataclass
class ImageResult:
    """One row of ``predictions.csv``."""

    image: str
    name: str
    status: Status
    objects: int = 0
    mean_area: float = float("nan")
    median_area: float = float("nan")
    mean_confidence: float = float("nan")
    border_objects: int = 0
    cut_objects: int = 0
    seconds: float = 0.0
    error: str = ""

    @classmethod
    def from_segmentation(cls, image: InputImage, segmentation: Segmentation, seconds: float) -> ImageResult:
        """The row of an image segmented in this run."""
        has_objects = segmentation.count > 0
        return cls(
            image=str(image.path),
            name=image.name,
            status="ok",
            objects=segmentation.count,
            mean_area=float(segmentation.areas.mean()) if has_objects else 0.0,
            median_area=float(np.median(segmentation.areas)) if has_objects else 0.0,
            mean_confidence=float(segmentation.confidences.mean()) if has_objects else float("nan"),
            border_objects=segmentation.border_objects,
            cut_objects=segmentation.cut_objects,
            seconds=round(seconds, 3),
        )


@dataclass
class RunSummary:
    """What a run did: every image's row, in input order."""

    results: list[ImageResult]

    @property
    def failed(self) -> list[ImageResult]:
        """The images that could not be predicted."""
        return [result for result in self.results if result.status == "failed"]


class ImageFiles(Dataset[dict[str, Any]]):
    """Reads and normalises images; an image that fails gives its error message instead of raising.

    Items are ``{"index", "image": ImageData | None, "prepared": (C, *S) float32 | None, "error": str}``.
    """

    def __init__(self, images: list[InputImage], indices: list[int], preparation: Preparation) -> None:
        self.images, self.indices, self.preparation = images, indices, preparation

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = self.indices[position]
        item: dict[str, Any] = {"index": index, "image": None, "prepared": None, "error": ""}
        try:
            image = read_image(self.images[index].path)
            item["prepared"] = prepare(image, self.preparation)
            item["image"] = image
        except (ImageReadError, ValueError) as error:
            item["error"] = str(error)
        return item


class PredictionTask(L.LightningModule):
    """Lightning's view of a run: one step per image; this process's share is every ``world_size``-th image."""

    def __init__(
        self,
        model: LoadedModel,
        images: list[InputImage],
        todo: list[int],
        options: PredictOptions,
        ready_rows: dict[int, ImageResult],
    ) -> None:
        super().__init__()
        self.model, self.images, self.todo, self.options = model, images, todo, options
        self.network = model.module  # registered, so Lightning moves it to the device
        self.ready_rows = ready_rows  # images settled before the run: skipped, or failed for a clashing name
        self.results: dict[int, ImageResult] = {}
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[tuple[int, Future[None]]] = []

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """This process's images, read ahead by ``workers`` processes."""
        share = self.todo[self.global_rank :: self.trainer.world_size]
        return DataLoader(
            ImageFiles(self.images, share, Preparation.of(self.model)),
            batch_size=None,  # one image per step, left as numpy
            num_workers=self.options.workers,
            persistent_workers=False,
        )

    def on_predict_start(self) -> None:
        """Start the writer thread."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cellseg-writer")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Leave the image on the host: ``segment_image`` sends tiles to the device as it goes."""
        return batch

    def predict_step(self, item: dict[str, Any], batch_idx: int) -> None:
        """Segment one image and hand its outputs to the writer thread."""
        index, image = item["index"], self.images[item["index"]]
        if item["error"]:
            self._fail(index, item["error"])
            return
        start = time.perf_counter()
        try:
            segmentation = segment_image(
                self.model, item["prepared"], self.options.tiles, self.options.instances, self.options.blocks
            )
        except (ValueError, RuntimeError, MemoryError) as error:  # e.g. out of memory on one huge image: go on
            self._fail(index, f"{image.path}: prediction failed ({error}); try a smaller --block-size.")
            return
        self.results[index] = ImageResult.from_segmentation(image, segmentation, time.perf_counter() - start)
        assert self._writer is not None
        future = self._writer.submit(write_outputs, image, item["image"], segmentation, self.options)
        self._pending.append((index, future))

    def on_predict_end(self) -> None:
        """Wait for the writes, gather every process's rows; the first process writes the table and provenance.

        The files are written here, in the processes that did the work, because a spawned process's state does
        not come back to the one that started the run.
        """
        for index, future in self._pending:
            try:
                future.result()
            except Exception as error:  # a failed export fails its image, not the run
                self._fail(index, f"{self.images[index].path}: writing the outputs failed ({error}).")
        if self._writer is not None:
            self._writer.shutdown()
        rows = dict(self.results)
        if dist.is_available() and dist.is_initialized():
            everyone: list[dict[int, ImageResult] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, rows)
            rows = {index: row for part in everyone if part for index, row in part.items()}
        if self.global_rank == 0:
            write_run_files(self.model, self.images, self.ready_rows | rows, self.options, self.started)

    def _fail(self, index: int, message: str) -> None:
        image = self.images[index]
        print(f"cellseg predict: skipped {message}", file=sys.stderr, flush=True)
        self.results[index] = ImageResult(image=str(image.path), name=image.name, status="failed", error=message)


def write_outputs(image: InputImage, data: ImageData, segmentation: Segmentation, options: PredictOptions) -> None:
    """Export one image's segmentation: every requested file, the mask last, each written atomically."""
    paths = options.outputs.paths(options.output, image.name)
    paths["masks"].parent.mkdir(parents=True, exist_ok=True)
    labels = segmentation.labels
    if "probabilities" in paths:
        write_probability(paths["probabilities"], segmentation.foreground)
    if "outlines" in paths:
        write_outlines(paths["outlines"], data.array, labels)
    if "rois" in paths:
        write_imagej_rois(paths["rois"], labels)
    if "geojson" in paths:
        measurements = {
            label: {"area": float(area), "confidence": float(confidence)}
            for label, (area, confidence) in enumerate(
                zip(segmentation.areas, segmentation.confidences, strict=True), start=1
            )
        }
        write_geojson(paths["geojson"], labels, measurements)
    write_labels(paths["masks"], labels, options.outputs.fmt, reference=data)


def run_predictions(model: LoadedModel, images: list[InputImage], options: PredictOptions) -> RunSummary:
    """Predict ``images`` into ``options.output``; return every image's row (also in ``predictions.csv``).

    Args:
        model: the loaded model (moved to the run's device by Lightning).
        images: the images, with their output names (``collect_inputs``).
        options: the run's settings.

    Returns:
        The rows, in input order; images done in an earlier run are ``skipped`` and keep that run's numbers.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    options.output.mkdir(parents=True, exist_ok=True)
    earlier = read_rows(options.output / CSV_NAME)
    rows: dict[int, ImageResult] = {}
    todo: list[int] = []
    owner: dict[str, InputImage] = {}
    for index, image in enumerate(images):
        if image.name in owner:
            message = f"{image.path}: same output name as {owner[image.name].path}; rename one or predict apart."
            rows[index] = ImageResult(image=str(image.path), name=image.name, status="failed", error=message)
            continue
        owner[image.name] = image
        if options.outputs.paths(options.output, image.name)["masks"].exists() and not options.overwrite:
            kept = earlier.get(str(image.path))
            rows[index] = (
                replace(kept, status="skipped") if kept else ImageResult(str(image.path), image.name, "skipped")
            )
        else:
            todo.append(index)
    if not todo:
        return write_run_files(model, images, rows, options, started)
    trainer = L.Trainer(
        accelerator=options.accelerator, devices=options.devices, num_nodes=options.num_nodes,
        strategy=options.strategy, logger=False, enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=options.progress, default_root_dir=options.output, use_distributed_sampler=False,
    )  # fmt: skip
    trainer.predict(PredictionTask(model, images, todo, options, rows), return_predictions=False)
    if not trainer.is_global_zero:
        return RunSummary([])
    table = read_rows(options.output / CSV_NAME)
    return RunSummary([table[str(image.path)] for image in images if str(image.path) in table])


def write_run_files(
    model: LoadedModel,
    images: list[InputImage],
    rows: dict[int, ImageResult],
    options: PredictOptions,
    started: str,
) -> RunSummary:
    """Write ``predictions.csv`` (this run's rows, in input order, then earlier runs' others) and the provenance."""
    csv_path = options.output / CSV_NAME
    summary = RunSummary([rows[index] for index in sorted(rows)])
    write_rows(csv_path, summary.results, read_rows(csv_path))
    write_provenance(options.output / PROVENANCE_NAME, model, options, summary, started)
    return summary


def read_rows(path: Path) -> dict[str, ImageResult]:
    """An earlier run's rows by image path (empty when there is none)."""
    if not path.exists():
        return {}
    types = {f.name: f.type for f in fields(ImageResult)}
    rows = {}
    with path.open(newline="") as stream:
        for record in csv.DictReader(stream):
            values: dict[str, Any] = {}
            for key, text in record.items():
                if key in types:
                    kind = types[key]
                    values[key] = int(text) if kind == "int" else float(text) if kind == "float" else text
            rows[record["image"]] = ImageResult(**values)
    return rows


def write_rows(path: Path, results: list[ImageResult], earlier: dict[str, ImageResult]) -> None:
    """Write ``predictions.csv``: this run's rows, then earlier rows of images not in this run."""
    this_run = {result.image for result in results}
    kept = [row for image, row in earlier.items() if image not in this_run]
    with atomic_output(path) as temporary, temporary.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[f.name for f in fields(ImageResult)])
        writer.writeheader()
        for row in [*results, *kept]:
            writer.writerow(asdict(row))


def instances_in_force(instances: InstanceConfig, model: LoadedModel) -> dict[str, Any]:
    """The post-processing settings the masks were made with: the options, the model's defaults filled in.

    Returns:
        ``InstanceConfig``'s fields with the model's object diameter and foreground threshold where the options left
        them at ``None``, and the sizes in pixels they come to in 2D (``min_seed_pixels``, ``split_pixels``,
        ``min_object_pixels``; voxels in 3D).
    """
    used = instances.for_model(model.object_diameter, model.foreground_threshold)
    return {
        **asdict(used),
        "foreground_threshold": used.foreground_cut(),
        "min_seed_pixels": used.seed_pixels(model.spatial_dims),
        "split_pixels": used.split_pixels(),
        "min_object_pixels": used.object_pixels(model.spatial_dims),
    }


def write_provenance(
    path: Path, model: LoadedModel, options: PredictOptions, summary: RunSummary, started: str
) -> None:
    """Write what produced the masks: versions, the checkpoint's hash, every option, the counts."""
    provenance = {
        "cellseg_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "command": sys.argv,
        "checkpoint": str(model.path),
        "checkpoint_sha256": model.sha256,
        "output_names": model.output_names,
        "options": json.loads(json.dumps(asdict(options), default=str)),
        "instances_in_force": instances_in_force(options.instances, model),
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "images": len(summary.results),
        "predicted": sum(result.status == "ok" for result in summary.results),
        "skipped": sum(result.status == "skipped" for result in summary.results),
        "failed": len(summary.failed),
    }
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(provenance, indent=1))
