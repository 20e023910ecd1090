"""Read any supported image or mask file, choosing the reader by the file's extension."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cellseg.io.errors import ImageReadError
from cellseg.io.image import ImageData
from cellseg.io.masks import labels_from_image
from cellseg.io.nifti import NIFTI_EXTENSIONS, read_nifti
from cellseg.io.png import PNG_EXTENSIONS, read_png
from cellseg.io.tiff import TIFF_EXTENSIONS, read_tiff

_READERS: dict[str, Callable[[Path], ImageData]] = {
    **dict.fromkeys(TIFF_EXTENSIONS, read_tiff),
    **dict.fromkeys(PNG_EXTENSIONS, read_png),
    **dict.fromkeys(NIFTI_EXTENSIONS, read_nifti),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_READERS)
# Longest first, so that "a.nii.gz" is split as ("a", ".nii.gz") and not ("a.nii", ".gz").
_LONGEST_FIRST = tuple(sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True))


def split_extension(path: str | Path) -> tuple[str, str]:
    """Split a file name into its name and lower-cased extension, knowing the double ones (``.nii.gz``, ``.ome.tif``).

    >>> split_extension("/data/cell_01.nii.gz")
    ('cell_01', '.nii.gz')
    >>> split_extension("b.OME.TIF")
    ('b', '.ome.tif')
    >>> split_extension("notes.txt")
    ('notes', '.txt')
    """
    file_name = Path(path).name
    lowered = file_name.lower()
    for suffix in _LONGEST_FIRST:
        if lowered.endswith(suffix) and len(file_name) > len(suffix):
            return file_name[: -len(suffix)], suffix
    suffix = Path(file_name).suffix
    return file_name[: len(file_name) - len(suffix)], suffix.lower()


def is_supported(path: str | Path) -> bool:
    """Whether ``path`` has an extension that ``read_image`` reads (the file itself is not opened)."""
    return split_extension(path)[1] in _READERS


def read_image(path: str | Path) -> ImageData:
    """Read an image file of any supported format as channels-first ``ImageData``.

    Args:
        path: a file ending in one of ``SUPPORTED_EXTENSIONS`` (case does not matter).

    Returns:
        ``ImageData`` with ``array`` of shape ``(C, H, W)`` or ``(C, D, H, W)`` in the file's dtype.

    Raises:
        ImageReadError: for any problem: no such file, a directory, an unsupported extension, a corrupt or
            truncated file, no pixels, not 2D/3D, NaN/inf pixels or an unusable pixel type.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file; pass the files inside it")
    extension = split_extension(path)[1]
    reader = _READERS.get(extension)
    if reader is None:
        raise ImageReadError(
            f"{path}: unsupported extension {extension or '(none)'!r}; cellseg reads "
            f"{', '.join(SUPPORTED_EXTENSIONS)}: convert the file to one of these"
        )
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file; check the path")
    return reader(path)


def read_mask(path: str | Path) -> npt.NDArray[np.integer[Any]]:
    """Read a label mask file: shape ``(H, W)`` or ``(D, H, W)``, integer labels, 0 = background.

    Args:
        path: a single-channel file ending in one of ``SUPPORTED_EXTENSIONS`` (an RGB file whose channels are equal
            counts as single-channel).

    Returns:
        The labels, in the file's integer dtype (``uint8`` for bool, ``int32`` for whole-number floats).

    Raises:
        ImageReadError: as ``read_image``, and for several different channels, negative labels or fractions.
    """
    return labels_from_image(read_image(path))
