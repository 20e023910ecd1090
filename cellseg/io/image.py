"""The image record every reader returns, and the pixel checks every reader applies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cellseg.io.errors import ImageReadError

# bool, unsigned and signed integers, floats: the pixel types a network can take after a cast.
_PIXEL_KINDS = "buif"


@dataclass(frozen=True, eq=False)
class ImageData:
    """A microscopy image with channels first and its physical pixel size, as read from ``path``.

    Attributes:
        array: the pixels, shape ``(C, H, W)`` for 2D or ``(C, D, H, W)`` for 3D, in the file's own dtype
            (``uint8``, ``uint16``, ``float32``, ...).
        spatial_dims: 2 or 3, the number of axes after the channel axis.
        spacing: physical size of a pixel along each spatial axis, in array order (``(H, W)`` or ``(D, H, W)``) and
            in the file's unit (usually micrometres); 1.0 along an axis the file says nothing about.
        affine: NIfTI's 4x4 voxel-to-world matrix (see ``cellseg.io.nifti`` for its index order), else ``None``.
        path: the file the image was read from.
    """

    array: npt.NDArray[Any]
    spatial_dims: int
    spacing: tuple[float, ...]
    affine: npt.NDArray[np.float64] | None
    path: Path

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims!r}.")
        if self.array.ndim != self.spatial_dims + 1:
            raise ValueError(
                f"array of shape {self.array.shape} does not fit spatial_dims={self.spatial_dims}: "
                f"expected (C, {'D, ' if self.spatial_dims == 3 else ''}H, W)."
            )
        if len(self.spacing) != self.spatial_dims:
            raise ValueError(f"spacing {self.spacing} needs one entry per spatial axis ({self.spatial_dims}).")
        if self.affine is not None and self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}.")

    @property
    def num_channels(self) -> int:
        """The number of channels ``C``."""
        return int(self.array.shape[0])


def check_pixels(array: npt.NDArray[Any], path: Path) -> None:
    """Raise an ``ImageReadError`` unless ``array`` (any shape) holds usable pixels.

    Usable means: a bool, integer or float dtype; no axis of length 0; no NaN or infinite values.
    """
    if array.dtype.kind not in _PIXEL_KINDS:
        raise ImageReadError(
            f"{path}: pixel type {array.dtype} is not supported; save the image with integer or float pixels"
        )
    if array.size == 0:
        raise ImageReadError(f"{path}: holds no pixels (shape {array.shape}); fix or remove the file")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ImageReadError(f"{path}: contains NaN or infinite pixels; fix or remove the file")


def spatial_dims_error(path: Path, shape: tuple[int, ...], detail: str = "") -> ImageReadError:
    """The error for an image that is neither 2D nor 3D after its channel and size-1 axes are set aside."""
    return ImageReadError(
        f"{path}: has shape {shape}{detail}, which is neither a 2D nor a 3D image; "
        "cellseg reads one 2D or 3D image per file (optionally with channels)"
    )


def spacing_or_default(values: tuple[float, ...]) -> tuple[float, ...]:
    """``values`` as floats, with 1.0 in place of any that is not a positive finite number (unknown)."""
    return tuple(float(v) if np.isfinite(v) and v > 0 else 1.0 for v in values)
