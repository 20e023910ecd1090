"""The pictures of the report: per image a thumbnail and the layers the detail view stacks, as PNG files.

Every picture of an image has the same pixel grid: the image shrunk by a whole factor so its longest side is at
most ``MAX_LAYER_SIDE`` (the thumbnail shrinks that grid again to at most ``MAX_THUMBNAIL_SIDE``). The image is
averaged over each factor x factor block (anti-aliased); labels take the block's first pixel (nearest neighbour), so
they stay labels. Contours are found on the shrunk labels, so each is one display pixel wide (those of objects
smaller than a block may vanish). 3D images show their middle z-slice.

Files are named by the image's index in the report (``thumbs/000012.png``, ``layers/000012_mask.png``), never by
its file name, which may hold anything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import numpy.typing as npt

from cellseg.io.atomic import atomic_output
from cellseg.io.image import ImageData
from cellseg.io.writers import outline_colours

MAX_LAYER_SIDE = 2048
MAX_THUMBNAIL_SIDE = 256
DISPLAY_PERCENTILES = (1.0, 99.8)
MASK_ALPHA = 0.45
PROBABILITY_MAX_ALPHA = 0.8  # at probability 1; the image still shows through
TRUTH_COLOUR = (255, 255, 255)
_PERCENTILE_SAMPLE = 1_000_000  # pixels: percentiles of a larger image are taken on a regular subsample
_PNG_COMPRESSION = 3  # zlib level: mostly transparent layers compress well even so, and it writes ~2x faster than 6

Labels = npt.NDArray[np.integer[Any]]
Rgba = npt.NDArray[np.uint8]


def shrink_factor(shape: tuple[int, ...], max_side: int) -> int:
    """The smallest whole factor that brings the longest side of ``shape`` (H, W) to ``max_side`` or less.

    >>> shrink_factor((512, 512), 2048), shrink_factor((4100, 300), 2048), shrink_factor((512, 300), 256)
    (1, 3, 2)
    """
    return max(1, -(-max(shape) // max_side))


def shrink_labels(labels: Labels, factor: int) -> Labels:
    """``(H, W)`` labels shrunk by ``factor`` by nearest neighbour: ``(ceil(H / factor), ceil(W / factor))``."""
    return labels[::factor, ::factor] if factor > 1 else labels


def shrink_image(image: npt.NDArray[Any], factor: int) -> npt.NDArray[np.float32]:
    """``(H, W)`` or ``(H, W, C)`` values averaged over ``factor`` x ``factor`` blocks, as ``float32``.

    The result has ``ceil(H / factor)`` rows and ``ceil(W / factor)`` columns, like :func:`shrink_labels`; the last
    blocks are completed by repeating the edge.

    >>> shrink_image(np.arange(9).reshape(3, 3), 2)
    array([[2. , 3.5],
           [6.5, 8. ]], dtype=float32)
    """
    values = image.astype(np.float32, copy=False)
    if factor == 1:
        return values
    height, width = values.shape[:2]
    rows, columns = -(-height // factor), -(-width // factor)
    padding = [(0, rows * factor - height), (0, columns * factor - width)] + [(0, 0)] * (values.ndim - 2)
    padded = np.pad(values, padding, mode="edge") if any(after for _, after in padding) else values
    blocks = padded.reshape(rows, factor, columns, factor, *values.shape[2:])
    shrunk: npt.NDArray[np.float32] = blocks.mean(axis=(1, 3), dtype=np.float32)
    return shrunk


def display_channels(image: ImageData) -> npt.NDArray[Any]:
    """The channels of an image to show: ``(H, W)`` for one channel, else ``(H, W, 3)`` RGB.

    Two channels get an empty blue, more than three keep the first three. A 3D image gives its middle z-slice.
    """
    array = image.array
    if image.spatial_dims == 3:
        array = array[:, array.shape[1] // 2]
    if array.shape[0] == 1:
        grey: npt.NDArray[Any] = array[0]
        return grey
    channels = array[:3]
    if channels.shape[0] == 2:
        channels = np.concatenate([channels, np.zeros_like(channels[:1])])
    rgb: npt.NDArray[Any] = np.moveaxis(channels, 0, -1)
    return rgb


def to_display(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """``(H, W)`` or ``(H, W, C)`` values as 8-bit, each channel stretched between its 1st and 99.8th percentiles.

    A flat channel (e.g. the empty blue of a 2-channel image) comes out black.

    >>> to_display(np.array([[0.0, 1.0], [2.0, 10.0]], dtype=np.float32)).dtype
    dtype('uint8')
    """
    stacked = values[..., None] if values.ndim == 2 else values
    step = max(1, int(np.sqrt(stacked.shape[0] * stacked.shape[1] / _PERCENTILE_SAMPLE)))
    sample = stacked[::step, ::step].reshape(-1, stacked.shape[2])
    low, high = np.percentile(sample, DISPLAY_PERCENTILES, axis=0)
    span = np.where(high > low, high - low, np.inf)
    scaled = np.clip((stacked - low) * (255.0 / span), 0, 255)
    display: npt.NDArray[np.uint8] = (scaled + 0.5).astype(np.uint8)
    return display[..., 0] if values.ndim == 2 else display


def object_boundaries(labels: Labels) -> npt.NDArray[np.bool_]:
    """The inner boundary of each object in ``(H, W)`` labels: object pixels with a 4-neighbour of another label.

    Pixels on the image's edge count as boundary, so an object cut by the border is drawn closed.

    >>> object_boundaries(np.pad(np.ones((3, 3), dtype=np.uint8), 1)).astype(int)[1:-1, 1:-1]
    array([[1, 1, 1],
           [1, 0, 1],
           [1, 1, 1]])
    """
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    differs = (padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
    differs |= (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre)
    boundary: npt.NDArray[np.bool_] = differs & (centre != 0)
    return boundary


def contour_layer(labels: Labels) -> Rgba:
    """``(H, W, 4)`` RGBA: each object's 1-pixel contour in its own colour, transparent elsewhere."""
    layer = np.zeros((*labels.shape, 4), dtype=np.uint8)
    boundary = object_boundaries(labels)
    layer[boundary, :3] = outline_colours(labels[boundary])
    layer[boundary, 3] = 255
    return layer


def fill_layer(labels: Labels) -> Rgba:
    """``(H, W, 4)`` RGBA: each object filled with its colour at ``MASK_ALPHA``, transparent background."""
    layer = np.zeros((*labels.shape, 4), dtype=np.uint8)
    inside = labels != 0
    layer[inside, :3] = outline_colours(labels[inside])
    layer[inside, 3] = round(MASK_ALPHA * 255)
    return layer


def truth_layer(labels: Labels) -> Rgba:
    """``(H, W, 4)`` RGBA: the true objects' contours in ``TRUTH_COLOUR``, transparent elsewhere."""
    layer = np.zeros((*labels.shape, 4), dtype=np.uint8)
    layer[object_boundaries(labels)] = (*TRUTH_COLOUR, 255)
    return layer


@functools.cache
def _magma() -> npt.NDArray[np.uint8]:
    """The ``magma`` colour map of matplotlib colour map as a ``(256, 3)`` ``uint8`` lookup table."""
    from matplotlib import colormaps

    table: npt.NDArray[np.uint8] = np.round(colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(
        np.uint8
    )
    return table


def probability_layer(probability: npt.NDArray[np.floating[Any]]) -> Rgba:
    """``(H, W, 4)`` RGBA heat map of a ``(H, W)`` probability in [0, 1]: magma colours, opacity rising with it."""
    levels = (np.clip(np.nan_to_num(probability.astype(np.float32)), 0, 1) * 255 + 0.5).astype(np.uint8)
    layer = np.empty((*levels.shape, 4), dtype=np.uint8)
    layer[..., :3] = _magma()[levels]
    layer[..., 3] = (levels.astype(np.float32) * PROBABILITY_MAX_ALPHA + 0.5).astype(np.uint8)
    return layer


def draw_contours(rgb: npt.NDArray[np.uint8], labels: Labels, colour: tuple[int, int, int] | None = None) -> None:
    """Draw the objects' contours into ``(H, W, 3)`` ``rgb`` in place: each in its colour, or all in ``colour``."""
    boundary = object_boundaries(labels)
    rgb[boundary] = outline_colours(labels[boundary]) if colour is None else colour


def as_rgb(display: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An ``(H, W)`` grey or ``(H, W, 3)`` display image as a writable ``(H, W, 3)`` copy."""
    if display.ndim == 2:
        return np.repeat(display[..., None], 3, axis=2)
    return display.copy()


def write_png(path: Path, pixels: npt.NDArray[np.uint8]) -> Path:
    """Write ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA ``uint8`` pixels as a PNG, atomically."""
    with atomic_output(path) as temporary:
        iio.imwrite(temporary, pixels, extension=".png", compress_level=_PNG_COMPRESSION)
    return path


@dataclass(frozen=True)
class RenderedImage:
    """The pictures written for one image, as paths relative to the report folder (``None``: not written).

    Attributes:
        thumbnail: ``thumbs/NNNNNN.png``.
        layers: ``{"image", "mask", "contours", "probability", "truth"}`` to ``layers/NNNNNN_KIND.png``.
        width: the layers' width in pixels.
        height: the layers' height in pixels.
    """

    thumbnail: str | None
    layers: dict[str, str | None]
    width: int
    height: int


LAYER_KINDS = ("image", "mask", "contours", "probability", "truth")


def render_image(
    report: Path,
    index: int,
    image: ImageData | None,
    labels: Labels | None,
    probability: npt.NDArray[np.floating[Any]] | None = None,
    truth: Labels | None = None,
) -> RenderedImage:
    """Write the thumbnail and layers of image number ``index`` into ``report/thumbs`` and ``report/layers``.

    Args:
        report: the report folder (``thumbs/`` and ``layers/`` are created).
        index: the image's number in the report; the files' names.
        image: the image, or ``None`` when it was not found (the mask is then drawn on black).
        labels: the predicted labels, ``(H, W)`` or ``(D, H, W)`` like the image; ``None`` without a mask.
        probability: the foreground probability, same shape, or ``None``.
        truth: the true labels, same shape, or ``None``.

    Returns:
        The files written; nothing at all when there is neither image nor mask.

    Raises:
        ValueError: the image, labels, probability or truth differ in spatial shape.
    """
    shape = _common_shape(image, labels, probability, truth)
    layers: dict[str, str | None] = dict.fromkeys(LAYER_KINDS)
    if shape is None:
        return RenderedImage(None, layers, 0, 0)
    factor = shrink_factor(shape[-2:], MAX_LAYER_SIDE)
    if image is not None:
        display = to_display(shrink_image(display_channels(image), factor))
    else:
        display = np.zeros(tuple(-(-side // factor) for side in shape[-2:]), dtype=np.uint8)
    shrunk = {
        kind: shrink_labels(_middle_slice(values), factor)
        for kind, values in (("labels", labels), ("truth", truth))
        if values is not None
    }
    (report / "layers").mkdir(parents=True, exist_ok=True)
    (report / "thumbs").mkdir(parents=True, exist_ok=True)
    stem = f"{index:06d}"
    pictures: dict[str, npt.NDArray[np.uint8]] = {"image": display}
    if "labels" in shrunk:
        pictures["mask"] = fill_layer(shrunk["labels"])
        pictures["contours"] = contour_layer(shrunk["labels"])
    if probability is not None:
        pictures["probability"] = probability_layer(shrink_image(_middle_slice(probability), factor))
    if "truth" in shrunk:
        pictures["truth"] = truth_layer(shrunk["truth"])
    for kind, pixels in pictures.items():
        layers[kind] = relative = f"layers/{stem}_{kind}.png"
        write_png(report / relative, pixels)
    thumbnail = f"thumbs/{stem}.png"
    write_png(report / thumbnail, thumbnail_pixels(display, shrunk.get("labels")))
    return RenderedImage(thumbnail, layers, int(display.shape[1]), int(display.shape[0]))


def thumbnail_pixels(display: npt.NDArray[np.uint8], labels: Labels | None) -> npt.NDArray[np.uint8]:
    """The ``(h, w, 3)`` thumbnail of a display image and its labels (same grid), longest side at most 256 px.

    The objects' contours are drawn in their colours at the thumbnail's own resolution.
    """
    factor = shrink_factor(display.shape[:2], MAX_THUMBNAIL_SIDE)
    small = as_rgb((shrink_image(display, factor) + 0.5).astype(np.uint8) if factor > 1 else display)
    if labels is not None:
        draw_contours(small, shrink_labels(labels, factor))
    return small


def _middle_slice(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A 2D ``(H, W)`` array as is, the middle z-slice of a 3D ``(D, H, W)`` one."""
    return values[values.shape[0] // 2] if values.ndim == 3 else values


def _common_shape(image: ImageData | None, *arrays: npt.NDArray[Any] | None) -> tuple[int, ...] | None:
    """The spatial shape everything shares (``None`` without image and arrays); raise if they differ."""
    shapes = {"image": tuple(image.array.shape[1:])} if image is not None else {}
    for kind, array in zip(("mask", "probability", "truth"), arrays, strict=True):
        if array is not None:
            shapes[kind] = tuple(array.shape)
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{kind} {shape}" for kind, shape in shapes.items())
        raise ValueError(f"the files of this image differ in size ({described}); they must show the same pixels")
    return next(iter(shapes.values()), None)
