"""Probability maps of whole images of any size: MONAI's sliding window with Gaussian blending, and optional TTA.

Tiles are the training patch size by default, neighbours sharing ``overlap`` of a tile, batched (``batch_size`` tiles
per forward pass) and blended with a Gaussian weight so tile edges, where a convolution sees padding, count little:
the result has no seams. Test-time augmentation averages the probabilities over flips and 90-degree rotations of
every tile batch, so it costs compute but no memory.

In 2D, ``max_tile`` asks for tiles fitted to the image instead, a trade of accuracy for speed: the fewest tiles of at
most ``max_tile`` pixels a side (a multiple of the network's stride) that cover it with neighbours sharing
``overlap`` x the training patch's side (32 px for a 128 px patch). A 256 x 320 image is then one pass instead of
3 x 4 overlapping tiles, and a 2048 px field 5 x 5 tiles of 448 px (1.2x its pixels computed) instead of 21 x 21 of
128 px (1.7x). Measured on a trained DSB2018 model (8-128, 2026-12-02, 2-core CPU): probabilities 1.25-1.5x faster
on the 2048 px field, but Dice on the 116 validation images 0.002 lower (fluorescence 0.004). The cause is the tile's
size, not the averaging over overlapping tiles: 256 px tiles at overlap 0.25, as many pixels computed as 128 px ones,
lose as much (``benchmarks/tile_accuracy.py``, 2026-12-03: Dice 0.9163 -> 0.9146, two seeds alike); the network
trained on 128 px patches. Less overlap loses too (0.125: Dice 0.9141).
"""

from __future__ import annotations

import itertools
import math
import warnings
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.inferers.utils import sliding_window_inference

from cellseg.inference.model import LoadedModel
from cellseg.training.module import SegmentationModule

Transform = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


@dataclass(frozen=True)
class TileConfig:
    """How an image is cut into tiles for the network.

    Attributes:
        tile_size: tile sides in pixels, multiples of the network's stride; ``None`` takes the model's patch size.
        overlap: in ``[0, 1)``; the fraction of a tile shared with its neighbour along each axis; with fitted tiles
            the shared margin is this fraction of the training patch's side, in pixels.
        max_tile: 2D, no ``tile_size``: fit tiles of at most this side to the image (``fitted_tiles``; never below
            the training patch); ``None`` (default) keeps the training patch.
        batch_size: tiles per forward pass; ``None`` (default): ``tile_batch_for``, as many as make
            ``TILE_BATCH_PIXELS`` (32 tiles of 128 x 128, 8 of 256 x 256 in 2D), at least 2.
        tta: average over flips and 90-degree rotations (8 views in 2D; the 4 in-plane flips in 3D).
        precision: ``"32"``, ``"bf16"`` autocast (GPU or CPU) or ``"16"`` autocast (GPU; ignored on the CPU).
        compile: run the network through ``torch.compile`` (``compiled_network``): once compiled, faster tiles
            (the network 1.95x on the 2-core CPU, 128 px tiles of an 8-128 model), for a compilation on the first
            tile batch (about 50 s there; a few seconds from the on-disk cache after). Pays off on many
            megapixels, not on one small image (every tile batch is padded to ``tile_batch_for``'s size, 32
            tiles of 128 px: a 256 px image's 9 tiles compute 32; set ``batch_size`` lower for small images); with
            ``max_tile`` every new tile shape compiles again. Falls back to the plain network, with a warning, where
            compiling fails (no C++ compiler, say).
    """

    tile_size: tuple[int, ...] | None = None
    overlap: float = 0.25
    max_tile: int | None = None
    batch_size: int | None = None
    tta: bool = False
    precision: str = "32"
    compile: bool = False


TILE_BATCH_PIXELS: dict[int, int] = {2: 2**19, 3: 2**17}
"""Pixels (voxels) per forward pass when ``TileConfig.batch_size`` is not given, by the tiles' spatial dims: in 2D
32 tiles of 128 x 128, 8 of 256 x 256, 2 of 448 x 448; in 3D 4 tiles of 16 x 32 x 64, 2 of 32 x 64 x 64.

2D, since 2026-12-04 (was 2^17, 8 tiles of 128 px): on the Intel Xeon's 2 cores (``benchmarks/tile_batch.py``,
the folded DSB2018 model, the 2048 x 2048 field, 5 alternated rounds, glibc keeping freed memory as ``cellseg
predict`` has it), 128 px tiles took 0.74 / 0.69 / 0.67 / 0.65 s at 8 / 16 / 32 / 64 per pass: 32 is 1.10x faster
than 8 and within 3% of 64 for half its activations. MONAI's ``AttentionUnet`` 8-128 in the same rounds: 2.02 /
1.97 / 1.97 / 1.89 s at 4 / 8 / 16 / 32. Before, on the Zen 4 with glibc's defaults (2026-12-03, a random-init
8-128 network), 8 took 2.47-2.60 s against 2.84-3.28 s for 4 and 2.27-3.51 s for 16 (fastest in two runs, slowest in
two); 256 px tiles, 2 / 4 / 8 per pass 2.63 / 2.47 / 2.61 s; 448 px (``--max-tile 512``), 1 / 2 / 4: 1.65 / 1.65 /
2.18 s. 3D (Zen 4), 32 x 64 x 64 tiles of an 8-64 network, 1 / 2 / 4 / 8: 30.1 / 7.2 / 9.1 / 10.0 s, so 3D keeps
2^17. Not measured on a GPU, where more tiles per pass likely pay (``--tile-batch``).
"""


def tile_batch_for(config: TileConfig, tile: tuple[int, ...]) -> int:
    """Tiles per forward pass: ``config.batch_size``, or as many as make ``TILE_BATCH_PIXELS``, at least 2.

    Example:
        >>> tile_batch_for(TileConfig(), (128, 128)), tile_batch_for(TileConfig(), (448, 448))
        (32, 2)
    """
    if config.batch_size is not None:
        return config.batch_size
    return max(2, TILE_BATCH_PIXELS[len(tile)] // math.prod(tile))


def tile_size_for(model: LoadedModel, config: TileConfig) -> tuple[int, ...]:
    """The given or default (training patch) tile size, checked against the network's stride.

    Raises:
        ValueError: a side is not a multiple of the stride, or the number of sides is not the model's dimension.
    """
    tile = tuple(config.tile_size or model.tile_size)
    if len(tile) != model.spatial_dims or any(side % model.stride or side <= 0 for side in tile):
        raise ValueError(
            f"tile size {list(tile)} does not fit this {model.spatial_dims}D model: give {model.spatial_dims} sides, "
            f"each a positive multiple of {model.stride}."
        )
    return tile


def fitted_tiles(
    shape: tuple[int, ...], patch: tuple[int, ...], stride: int, margin: int, max_tile: int
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The tile and overlap fractions that cover ``shape`` with the fewest tiles of at most ``max_tile`` a side.

    Along each axis: ``count`` tiles, the fewest whose sides (at most ``max_tile``, at least the patch's, a multiple
    of ``stride``) cover the axis with ``margin`` pixels shared between neighbours; then the smallest side that does
    it with that count. One tile covers an axis no longer than the largest tile (no overlap: nothing to share).

    Args:
        shape: the image's spatial shape ``S``.
        patch: the training patch ``(*P)``.
        stride: the network's total stride.
        margin: pixels neighbours share.
        max_tile: the largest side.

    Returns:
        Tile sides and overlap fractions per axis, as ``sliding_window_inference`` takes them (its scan steps by
        ``int(side * (1 - overlap))`` = ``side - margin``).

    Example:
        >>> fitted_tiles((2048, 300), (128, 128), 16, 32, 512)
        ((448, 304), (0.0703125, 0.0))
    """
    sides: list[int] = []
    overlaps: list[float] = []
    for size, patch_side in zip(shape, patch, strict=True):
        largest = max(max_tile, patch_side) // stride * stride
        if size <= largest:
            sides.append(-(-size // stride) * stride)
            overlaps.append(0.0)
            continue
        count = -(-(size - margin) // (largest - margin))
        side = -(-(size + (count - 1) * margin) // count)
        side = -(-side // stride) * stride
        sides.append(side)
        overlaps.append(max(margin - 0.5, 0.0) / side)  # the half pixel keeps int() of the scan step at side - margin
    return tuple(sides), tuple(overlaps)


def tiles_for(
    model: LoadedModel, config: TileConfig, shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[float, ...] | float]:
    """The tile and overlap the sliding window takes for an image of spatial shape ``shape``.

    The given or patch-sized tile with ``config.overlap``; with ``config.max_tile`` (2D, no ``tile_size``) the
    ``fitted_tiles`` sharing ``config.overlap`` x the training patch's side.
    """
    tile = tile_size_for(model, config)
    if config.tile_size is not None or config.max_tile is None or model.spatial_dims != 2:
        return tile, config.overlap
    margin = round(config.overlap * min(model.tile_size))
    return fitted_tiles(shape, tile, model.stride, margin, config.max_tile)


def dihedral_transforms(spatial_dims: int) -> list[Transform]:
    """(forward, inverse) pairs over the last ``spatial_dims`` axes of ``(N, C, *S)`` tensors.

    2D: the 8 symmetries of the square (4 rotations, each with and without a flip); 3D: flips of the two in-plane
    axes (anisotropic stacks forbid rotations into the z axis).
    """
    height_axis, width_axis = spatial_dims, spatial_dims + 1  # the last two axes of (N, C, *S)
    transforms: list[Transform] = []
    if spatial_dims == 2:
        for turns, flip in itertools.product(range(4), (False, True)):
            transforms.append(_rotate_flip(turns, flip, height_axis, width_axis))
    else:
        for flip_height, flip_width in itertools.product((False, True), repeat=2):
            axes = [axis for axis, flip in ((height_axis, flip_height), (width_axis, flip_width)) if flip]
            transforms.append(_flip(axes))
    return transforms


def _flip(axes: list[int]) -> Transform:
    def forward(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.flip(axes) if axes else tensor

    return forward, forward  # a flip is its own inverse


def _rotate_flip(turns: int, flip: bool, height_axis: int, width_axis: int) -> Transform:
    def forward(tensor: torch.Tensor) -> torch.Tensor:
        rotated = torch.rot90(tensor, turns, dims=(height_axis, width_axis))
        return rotated.flip(width_axis) if flip else rotated

    def inverse(tensor: torch.Tensor) -> torch.Tensor:
        unflipped = tensor.flip(width_axis) if flip else tensor
        return torch.rot90(unflipped, -turns, dims=(height_axis, width_axis))

    return forward, inverse


def compiled_network(module: SegmentationModule) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module``'s network through ``torch.compile``, compiled once per module and kept while the module lives.

    The compiled graph is specialised to one input shape and memory format (``dynamic=False``): ``tile_predictor``
    pads every tile batch to the same size and makes it contiguous, so that one compilation serves every batch.
    The first call compiles; where that fails (no C++ compiler for the CPU backend, an unsupported operator), a
    warning says so and the plain network runs from then on, so a prediction never fails for want of a compiler.

    Args:
        module: the loaded model's ``SegmentationModule``, in eval mode.

    Returns:
        A function from a normalised batch ``(N, C, *S)`` to logits ``(N, K, *S)``, the same as ``module(batch)``
        to float rounding.
    """
    cached = _COMPILED.get(module)
    if cached is not None:
        return cached
    network = module.network  # the closure holds the network, not the module: the cache entry dies with the module
    compiled = torch.compile(network, dynamic=False)
    state = {"compiled": True}

    def run(batch: torch.Tensor) -> torch.Tensor:
        if state["compiled"]:
            try:
                logits: torch.Tensor = compiled(batch)
                return logits
            except Exception as error:  # inductor raises many types; each means "run it plainly"
                state["compiled"] = False
                message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                warnings.warn(
                    f"torch.compile failed ({type(error).__name__}: {message}); running the network uncompiled, "
                    "as without --compile.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        plain: torch.Tensor = network(batch)  # what SegmentationModule.forward computes
        return plain

    _COMPILED[module] = run
    return run


_COMPILED: weakref.WeakKeyDictionary[SegmentationModule, Callable[[torch.Tensor], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _padded(tiles: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``tiles`` ``(B, C, *T)`` padded to ``(batch_size, C, *T)`` by repeating its last tile.

    Contiguous in the layout of the network's weights (NHWC in 2D), so that a compiled network sees one shape and
    one memory format whatever the batch and the test-time transform.
    """
    missing = batch_size - tiles.shape[0]
    if missing > 0:
        tiles = torch.cat([tiles, tiles[-1:].expand(missing, *tiles.shape[1:])])
    layout = torch.channels_last if tiles.ndim == 4 else torch.contiguous_format
    return tiles.contiguous(memory_format=layout)


def tile_predictor(model: LoadedModel, config: TileConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from a tile batch ``(B, C, *T)`` to probabilities ``(B, K, *T)``, with TTA and autocast.

    Where ``config.compile``, the network is the compiled one and tile batches are padded to ``tile_batch_for``'s
    size.
    """
    module = model.module
    network: Callable[[torch.Tensor], torch.Tensor] = compiled_network(module) if config.compile else module
    transforms = dihedral_transforms(model.spatial_dims) if config.tta else [_flip([])]
    device_type = next(module.parameters()).device.type
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(config.precision)
    # bf16 autocast also runs on the CPU (fast where the CPU has bf16 instructions); fp16 only on a GPU.
    use_autocast = dtype is torch.bfloat16 or (dtype is torch.float16 and device_type == "cuda")
    autocast = torch.autocast(device_type, dtype=dtype) if use_autocast else nullcontext()

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for forward, inverse in transforms:
            with autocast:
                if config.compile:
                    batch = tile_batch_for(config, tuple(tiles.shape[2:]))
                    logits = network(_padded(forward(tiles), batch))[: tiles.shape[0]]
                else:
                    logits = network(forward(tiles))
            probabilities = inverse(module.probabilities(logits.float()))  # softmax in float32, sums to 1
            total = probabilities if total is None else total + probabilities
        assert total is not None
        return total / len(transforms)

    return predict


def predict_probabilities(
    model: LoadedModel, image: npt.NDArray[np.float32], config: TileConfig
) -> npt.NDArray[np.float32]:
    """Probabilities of a prepared image, tiled and blended.

    Args:
        model: the loaded model (its device is where the tiles run).
        image: normalised ``(C, *S)`` float32 with ``C == model.in_channels``.
        config: tiles, overlap, TTA, precision.

    Returns:
        ``(K, *S)`` float32 probabilities, in the order of ``model.output_names``.
    """
    device = next(model.module.parameters()).device
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
    if model.spatial_dims == 2:  # the network's weights are channels-last (NHWC) on every device
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    tile, overlap = tiles_for(model, config, image.shape[1:])
    with torch.inference_mode():
        probabilities = sliding_window_inference(
            tensor,
            roi_size=tile,
            sw_batch_size=tile_batch_for(config, tile),
            predictor=tile_predictor(model, config),
            overlap=overlap,
            mode="gaussian",
            padding_mode="replicate",
            device=device,  # blend where the tiles are: a block's output fits a GPU, and no copy per tile batch
        )
    assert isinstance(probabilities, torch.Tensor)
    result: npt.NDArray[np.float32] = probabilities[0].cpu().numpy()
    return result
