"""Per-image intensity normalisation and channel conversion, applied to every image before the network sees it.

Shapes: images are channels first, ``(C, H, W)`` or ``(C, D, H, W)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DEFAULT_PERCENTILES = (1.0, 99.8)
# ITU-R BT.601 luma weights: what a gray conversion of an RGB microscopy image should look like to the eye.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def percentile_normalise(
    image: npt.NDArray[np.generic], percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> npt.NDArray[np.float32]:
    """Map each channel's low percentile to 0 and high percentile to 1 (values outside are kept, not clipped).

    Percentiles, not min/max, so that saturated highlights in 16-bit phase contrast or a few hot pixels do not
    squash the cells into a narrow band. A constant channel maps to zeros.

    Args:
        image: ``(C, *S)`` of any real dtype.
        percentiles: the (low, high) percentiles, in [0, 100].

    Returns:
        float32 array of the same shape.

    Example:
        >>> percentile_normalise(np.arange(101, dtype=np.uint16).reshape(1, 1, 101), (0.0, 100.0))[0, 0, [0, 50, 100]]
        array([0. , 0.5, 1. ], dtype=float32)
    """
    low_percentile, high_percentile = percentiles
    if not 0 <= low_percentile < high_percentile <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}.")
    normalised = np.empty(image.shape, dtype=np.float32)
    for channel in range(image.shape[0]):
        values = image[channel].astype(np.float32)
        low, high = np.percentile(values, percentiles)
        span = high - low
        normalised[channel] = (values - low) / span if span > 0 else 0.0
    return normalised


def convert_channels(
    image: npt.NDArray[np.float32],
    in_channels: int,
    channel_order: Sequence[int] | None = None,
    source: str = "image",
) -> npt.NDArray[np.float32]:
    """Bring an image to the network's ``in_channels``, choosing or reordering channels first.

    ``channel_order`` picks channels by index (e.g. ``[1, 0]`` to put nuclei first in a two-colour stain). Then:
    gray to ``n`` channels repeats the gray channel; RGB to gray uses luma weights; other mismatches keep the first
    ``in_channels`` channels or pad with zeros. A conversion that drops information warns once per ``source`` kind.

    Args:
        image: normalised ``(C, *S)``.
        in_channels: channels the network takes.
        channel_order: indices of the channels to use, in order; ``None`` keeps them as they are.
        source: how to name the image in a warning or error (usually its path).

    Returns:
        float32 ``(in_channels, *S)``.

    Raises:
        ValueError: ``channel_order`` names a channel the image does not have.
    """
    if channel_order is not None:
        if any(not 0 <= index < image.shape[0] for index in channel_order):
            raise ValueError(
                f"{source}: channel_order {list(channel_order)} asks for a channel it does not have "
                f"(it has {image.shape[0]}); fix channel_order in the config."
            )
        image = image[list(channel_order)]
    channels = image.shape[0]
    if channels == in_channels:
        return image
    if channels == 1:
        return np.repeat(image, in_channels, axis=0)
    if channels == 3 and in_channels == 1:
        _warn_once("RGB images are converted to gray (luma); set in_channels: 3 to keep colour.")
        return np.tensordot(LUMA_WEIGHTS, image, axes=1)[None].astype(np.float32)
    if channels > in_channels:
        _warn_once(
            f"images with {channels} channels keep their first {in_channels}; set channel_order to choose which."
        )
        return image[:in_channels]
    padding = np.zeros((in_channels - channels, *image.shape[1:]), dtype=np.float32)
    return np.concatenate([image, padding])


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)
