"""Turn a read image into a label mask: one channel, non-negative integer labels (0 = background)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cellseg.io.errors import ImageReadError
from cellseg.io.image import ImageData

# Labels from float files become int32: torch indexes with it, and float32 holds integers exactly only to 2**24.
FLOAT_MASK_DTYPE = np.int32


def labels_from_image(image: ImageData) -> npt.NDArray[np.integer[Any]]:
    """The label image held by a single-channel ``image``: shape ``(H, W)`` or ``(D, H, W)``, integer dtype.

    Integer pixels keep their dtype, bool becomes ``uint8`` and integral floats become ``int32``. A mask with
    several channels (e.g. RGB) is accepted when they are all equal, as when a gray mask was saved in colour.

    Raises:
        ImageReadError: the channels differ, a label is negative, or a float label is not a whole number.
    """
    path, array = image.path, image.array
    if image.num_channels > 1 and not (array == array[:1]).all():
        raise ImageReadError(
            f"{path}: mask has {image.num_channels} channels that differ; a mask must be one channel of labels "
            "(0 = background, 1..N = cells): save it as a single-channel image"
        )
    labels: npt.NDArray[Any] = array[0]
    if labels.dtype.kind == "b":
        return labels.astype(np.uint8)
    if labels.min() < 0:
        raise ImageReadError(
            f"{path}: mask has negative labels (down to {labels.min()}); labels must be 0 (background) or "
            "positive cell ids: fix the file"
        )
    if labels.dtype.kind == "f":
        return _float_labels_as_integers(labels, image)
    return labels


def _float_labels_as_integers(labels: npt.NDArray[np.floating[Any]], image: ImageData) -> npt.NDArray[np.int32]:
    """Non-negative float labels as ``int32``, refusing fractions and labels that do not fit."""
    if not (labels == np.round(labels)).all():
        raise ImageReadError(
            f"{image.path}: mask has non-integer values (e.g. {labels[labels != np.round(labels)].flat[0]}); "
            "a mask must hold whole-number labels: save it with an integer pixel type"
        )
    if labels.max() > np.iinfo(FLOAT_MASK_DTYPE).max:
        raise ImageReadError(
            f"{image.path}: mask has label {labels.max()}, more than {np.iinfo(FLOAT_MASK_DTYPE).max}; "
            "renumber the labels from 1"
        )
    return labels.astype(FLOAT_MASK_DTYPE)
