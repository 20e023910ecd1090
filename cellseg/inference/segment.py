"""Instance segmentation of one image of any size, in blocks so memory stays bounded.

An image larger than ``block_size`` along an axis is cut into blocks; each block is predicted with a margin of
context around it (tiled and blended, ``cellseg.inference.tiling``), turned into instances
(``cellseg.inference.instances``), and keeps the objects whose centre lies in the block itself and which do not run
With a margin wider than the largest cell's radius, every cell is whole in exactly one block, so blocks leave no cut
or doubled cells. A cell wider than that still comes out, cut at the margin's edge, and is counted in
``Segmentation.cut_objects`` (so a run can say the margin was too small). Memory grows with the block, not the image:
besides the prepared input, only the labels (int32) and the foreground probability (float16) are held whole.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from cellseg.data.targets import TargetClass
from cellseg.inference.instances import InstanceConfig, instances_from_probabilities
from cellseg.inference.model import LoadedModel
from cellseg.inference.tiling import TileConfig, predict_probabilities

Labels = npt.NDArray[np.int32]
Box = tuple[slice, ...]


@dataclass(frozen=True)
class BlockConfig:
    """How a large image is split for bounded memory.

    Attributes:
        block_size: largest side predicted at once; larger images go block by block.
        margin: context around each block, in pixels; more than the largest cell's radius.
    """

    block_size: int = 4096
    margin: int = 128


@dataclass(frozen=True)
class Segmentation:
    """One image's segmentation.

    Attributes:
        labels: int32 instance labels ``S``, objects 1..N.
        foreground: float16 ``S``, the probability of being in a cell (1 - P(background)).
        areas: int64 ``(N,)``, pixels per object, object ``i + 1`` at index ``i``.
        confidences: float32 ``(N,)``, each object's mean foreground probability.
        border_objects: objects that touched the image border (removed when asked to be).
        cut_objects: objects wider than the block margin, cut where their block's context ended.
        blocks: blocks the image was predicted in.
    """

    labels: Labels
    foreground: npt.NDArray[np.float16]
    areas: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]
    border_objects: int
    cut_objects: int
    blocks: int

    @property
    def count(self) -> int:
        """The number of objects."""
        return len(self.areas)


def block_boxes(shape: tuple[int, ...], config: BlockConfig) -> list[tuple[Box, Box]]:
    """The (core, extended) boxes of the blocks covering ``shape``; cores tile it, extended boxes add the margin.

    Example:
        >>> [(core[0], extended[0]) for core, extended in block_boxes((10,), BlockConfig(block_size=6, margin=2))]
        [(slice(0, 5, None), slice(0, 7, None)), (slice(5, 10, None), slice(3, 10, None))]
    """
    per_axis = []
    for size in shape:
        count = -(-size // config.block_size)
        step = -(-size // count)  # equal blocks rather than a sliver at the end
        per_axis.append(
            [
                (
                    slice(start, min(start + step, size)),
                    slice(max(start - config.margin, 0), min(start + step + config.margin, size)),
                )
                for start in range(0, size, step)
            ]
        )
    return [
        (tuple(core for core, _ in combination), tuple(extended for _, extended in combination))
        for combination in itertools.product(*per_axis)
    ]


def segment_image(
    model: LoadedModel,
    prepared: npt.NDArray[np.float32],
    tiles: TileConfig | None = None,
    instances: InstanceConfig | None = None,
    blocks: BlockConfig | None = None,
) -> Segmentation:
    """Segment a prepared image block by block.

    Args:
        model: the loaded model.
        prepared: ``(C, *S)`` float32 from ``prepare_image``.
        tiles: sliding-window settings.
        instances: post-processing settings; ``remove_border`` refers to the image's border. Size settings left
            at ``None`` scale to the model's object diameter; a foreground threshold left at ``None`` is the model's.
        blocks: block size and margin.

    Returns:
        Labels, foreground probability and per-object statistics.
    """
    tiles, blocks = tiles or TileConfig(), blocks or BlockConfig()
    instances = (instances or InstanceConfig()).for_model(model.object_diameter, model.foreground_threshold)
    shape = prepared.shape[1:]
    boxes = block_boxes(shape, blocks)
    if len(boxes) == 1:
        return _segment_whole(model, prepared, tiles, instances)
    return _segment_blocks(model, prepared, tiles, instances, boxes)


def _segment_blocks(
    model: LoadedModel,
    prepared: npt.NDArray[np.float32],
    tiles: TileConfig,
    instances: InstanceConfig,
    boxes: list[tuple[Box, Box]],
) -> Segmentation:
    """``segment_image`` block by block: each block's objects placed in the image, a neighbour's kept where placed."""
    shape = prepared.shape[1:]
    labels = np.zeros(shape, dtype=np.int32)
    foreground = np.zeros(shape, dtype=np.float16)
    sums: list[npt.NDArray[np.float64]] = []  # per block, each kept object's summed foreground probability
    cut_objects = 0
    for core, extended in boxes:
        block_foreground, block_labels = _predict_block(model, prepared[(slice(None), *extended)], tiles, instances)
        block_labels, cut = _objects_owned_by_block(block_labels, core, extended, shape)
        cut_objects += cut
        inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, extended, strict=True))
        foreground[core] = block_foreground[inner]
        count = int(block_labels.max())
        if count == 0:
            continue
        target = labels[extended]
        free = (block_labels > 0) & (target == 0)  # a neighbour's object, already placed, keeps its pixels
        target[free] = block_labels[free] + sum(len(block) for block in sums)
        weights = np.where(free, block_foreground, 0.0).ravel()  # confidence over the pixels the object keeps
        sums.append(np.bincount(block_labels.ravel(), weights=weights, minlength=count + 1)[1:].astype(np.float64))
    all_sums = np.concatenate(sums) if sums else np.zeros(0, dtype=np.float64)
    segmentation = _finish(labels, foreground, all_sums, instances.remove_border, len(boxes))
    return replace(segmentation, cut_objects=cut_objects)


def _segment_whole(
    model: LoadedModel, prepared: npt.NDArray[np.float32], tiles: TileConfig, instances: InstanceConfig
) -> Segmentation:
    """``segment_image`` of an image that is one block: its labels as they come, no placing among neighbours.

    The same result as the block loop with one block, without its full-size passes (which pixels are free, the
    masked copy of the labels, the masked weights: ~0.05 s of a 2048 px field).
    """
    foreground, labels = _predict_block(model, prepared, tiles, instances)
    count = int(labels.max())
    on_objects = labels > 0  # summed over the objects' pixels alone: the same sums, a fraction of the pixels
    sums = np.bincount(labels[on_objects], weights=foreground[on_objects], minlength=count + 1)[1:]
    return _finish(labels, foreground.astype(np.float16), sums.astype(np.float64), instances.remove_border, 1)


def _predict_block(
    model: LoadedModel, prepared: npt.NDArray[np.float32], tiles: TileConfig, instances: InstanceConfig
) -> tuple[npt.NDArray[np.float32], Labels]:
    """One block's foreground probability ``S`` (float32) and instance labels ``S``.

    Objects on the block's border are kept: the image's border is decided once the blocks are placed. The instance
    step runs on as many threads as torch (a large block is cut into slabs, ``cellseg.inference.parts``).
    """
    probabilities = predict_probabilities(model, prepared, tiles)
    foreground: npt.NDArray[np.float32] = 1.0 - probabilities[TargetClass.BACKGROUND]
    # the network is done with the cores (torch's threads: Lightning gives each process of a run its share)
    labels = instances_from_probabilities(
        probabilities, replace(instances, remove_border=False), workers=torch.get_num_threads()
    )
    return foreground, labels


def _objects_owned_by_block(
    block_labels: Labels, core: Box, extended: Box, shape: tuple[int, ...]
) -> tuple[Labels, int]:
    """Keep the objects centred in ``core``, renumbered 1..n; also count those cut by the extended box's edges.

    An edge of the extended box that is the image's edge cuts nothing.
    """
    count = int(block_labels.max())
    if count == 0:
        return block_labels, 0
    index = np.arange(1, count + 1)
    centres = np.asarray(ndimage.center_of_mass(np.ones_like(block_labels), block_labels, index)).reshape(count, -1)
    keep = np.ones(count, dtype=bool)
    cut = np.zeros(count, dtype=bool)
    for axis, (c, e) in enumerate(zip(core, extended, strict=True)):
        centre = centres[:, axis] + e.start
        keep &= (centre >= c.start) & (centre < c.stop)
        for side, at_image_edge in ((0, e.start == 0), (-1, e.stop == shape[axis])):
            if not at_image_edge:
                touching = np.unique(np.take(block_labels, [side], axis=axis))
                cut[touching[touching > 0] - 1] = True
    lookup = np.zeros(count + 1, dtype=np.int32)
    lookup[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    owned: Labels = lookup[block_labels]
    return owned, int((keep & cut).sum())


def _finish(
    labels: Labels,
    foreground: npt.NDArray[np.float16],
    sums: npt.NDArray[np.float64],
    remove_border: bool,
    blocks: int,
) -> Segmentation:
    """Recount areas (a neighbour may have kept contested pixels), drop emptied and, if asked, border objects.

    Objects are numbered 1..N on entry and stay so: dropping goes through a lookup that closes the gaps.
    """
    count = int(labels.max())
    areas = np.bincount(labels[labels > 0], minlength=count + 1)[1:].astype(np.int64)
    border = np.zeros(count + 1, dtype=bool)
    for axis in range(labels.ndim):
        border[np.unique(np.take(labels, [0, -1], axis=axis))] = True
    border[0] = False
    drop = (areas == 0) | (border[1:] if remove_border else False)
    if drop.any():
        lookup = np.zeros(count + 1, dtype=np.int32)
        lookup[1:][~drop] = np.arange(1, int((~drop).sum()) + 1, dtype=np.int32)
        labels = lookup[labels]
    confidences = (sums / np.maximum(areas, 1)).astype(np.float32)  # from each block's own pixels
    return Segmentation(
        labels=labels,
        foreground=foreground,
        areas=areas[~drop],
        confidences=confidences[~drop],
        border_objects=int(border.sum()),
        cut_objects=0,
        blocks=blocks,
    )
