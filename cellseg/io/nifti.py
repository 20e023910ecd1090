"""Read NIfTI files (``.nii``, ``.nii.gz``) through nibabel into channels-first ``ImageData``.

nifti_axes_note:
    nibabel indexes a NIfTI array as ``(x, y, z[, t][, c])``: ``x`` varies fastest on disk. cellseg's arrays are
    the transpose of nibabel's, so that ``W`` is ``x``, ``H`` is ``y`` and ``D`` is ``z``:

    - ``(x, y)`` or ``(x, y, 1)`` -> ``(1, H, W)`` = ``(1, y, x)`` (2D);
    - ``(x, y, z)`` -> ``(1, D, H, W)`` = ``(1, z, y, x)`` (3D);
    - ``(x, y, z, c)``, and ``(x, y, z, 1, c)`` as NIfTI stores vector images, -> ``(c, z, y, x)`` (MONAI also
      reads the last axis as channels); ``z`` of length 1 gives a 2D ``(c, y, x)``;
    - an RGB(A) NIfTI (structured pixels) gives 3 channels, alpha dropped.

    In short ``to_channels_first(theirs)`` is ``theirs.T`` once a missing ``c`` is added and a singleton ``t`` or
    ``z`` removed; a writer inverts it with ``to_nibabel_order(ours)``, which is ``ours.T`` with ``z`` = 1 put back
    for a 2D image: ``(C, [D,] H, W)`` -> ``(x, y, z, c)``; it may then drop ``c`` where it is 1 or store
    ``(x, y, z, 1, c)`` for a vector image, and the file reads back as the same array.

    ``spacing`` is the header's zooms in our order: ``(zy, zx)`` or ``(zz, zy, zx)``. ``affine`` is nibabel's,
    unchanged: it maps nibabel's voxel index ``(i, j, k)`` = ``(x, y, z)``, so the world position of our
    ``array[c, d, h, w]`` is ``affine @ (w, h, d, 1)``; a writer passes the same affine back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from cellseg.io.errors import ImageReadError, library_errors_as_read_error
from cellseg.io.image import ImageData, check_pixels, spacing_or_default, spatial_dims_error

NIFTI_EXTENSIONS: tuple[str, ...] = (".nii", ".nii.gz")

_COLOUR_FIELDS = ("R", "G", "B")
_VECTOR_AXIS = 3  # the t axis of (x, y, z, t, c), of length 1 in a vector image


def read_nifti(path: str | Path) -> ImageData:
    """Read a 2D or 3D NIfTI image, with channels first and its affine and spacing (see ``nifti_axes_note``).

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``ImageData`` with ``array`` of shape ``(C, H, W)`` or ``(C, D, H, W)`` in the file's dtype (or float
        where the header asks for intensity scaling), ``spacing`` from the header's zooms and ``affine`` 4x4.

    Raises:
        ImageReadError: the file is missing, corrupt or truncated, or is not a 2D/3D image.
    """
    path = Path(path)
    with library_errors_as_read_error(path, "NIfTI"):
        image: Any = nib.load(path, mmap=False)
        _refuse_truncated(image, path)
        data = np.asarray(image.dataobj)
        zooms = tuple(float(z) for z in image.header.get_zooms())
        affine = np.asarray(image.affine, dtype=np.float64)
    if data.dtype.names is not None:
        data = _colour_fields_as_channels(data, path)
    check_pixels(data, path)
    array = to_channels_first(data, path)
    spatial_dims = array.ndim - 1
    spacing = spacing_or_default(tuple(reversed((*zooms, 1.0, 1.0, 1.0)[:spatial_dims])))
    return ImageData(array=array, spatial_dims=spatial_dims, spacing=spacing, affine=affine, path=path)


def to_channels_first(data: npt.NDArray[Any], path: Path) -> npt.NDArray[Any]:
    """Turn nibabel's ``(x, y[, z][, t][, c])`` array into cellseg's ``(C, [D,] H, W)``: see ``nifti_axes_note``."""
    original_shape = data.shape
    if data.ndim == 5:
        if data.shape[_VECTOR_AXIS] != 1:
            raise ImageReadError(
                f"{path}: holds {data.shape[_VECTOR_AXIS]} time points (shape {original_shape}); "
                "cellseg reads one time point per file: save each time point as its own file"
            )
        data = data[:, :, :, 0, :]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim == 3:
        data = data[..., np.newaxis]
    if data.ndim != 4:
        raise spatial_dims_error(path, original_shape)
    if data.shape[2] == 1:
        data = data[:, :, 0, :]
    return np.ascontiguousarray(data.T)


def to_nibabel_order(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Turn cellseg's ``(C, H, W)`` or ``(C, D, H, W)`` into nibabel's ``(x, y, z, c)``, ``z`` = 1 for 2D.

    The inverse of ``to_channels_first``; a writer may drop ``c`` where it is 1, and read back the same image.
    """
    nibabel_order = array.T
    return nibabel_order[:, :, np.newaxis, :] if array.ndim == 3 else nibabel_order


def _colour_fields_as_channels(data: npt.NDArray[Any], path: Path) -> npt.NDArray[Any]:
    """RGB(A) pixels (NIfTI's RGB24/RGBA32 structured dtype) as a trailing channel axis, alpha dropped."""
    names = data.dtype.names or ()
    if tuple(names[:3]) != _COLOUR_FIELDS or data.ndim > 3:
        raise ImageReadError(
            f"{path}: pixel type {data.dtype} (shape {data.shape}) is not supported; save the image with integer "
            "or float pixels"
        )
    channels = np.stack([data[name] for name in _COLOUR_FIELDS], axis=-1)
    # An (x, y) RGB image must stay 2D: give it a z of length 1 before the channel axis.
    return channels[:, :, np.newaxis, :] if data.ndim == 2 else channels


def _refuse_truncated(image: Any, path: Path) -> None:
    """Raise an ``ImageReadError`` when an uncompressed file is shorter than its header says, before reading it."""
    if path.name.lower().endswith(".gz"):
        return
    header = image.header
    expected = int(header.get_data_offset()) + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    if path.stat().st_size < expected:
        raise ImageReadError(
            f"{path}: is truncated ({path.stat().st_size} bytes, the header describes {expected}); "
            "copy or export the file again"
        )
