"""Whatever lies on disk, the readers raise ``ImageReadError`` and nothing else."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from cellseg.io import SUPPORTED_EXTENSIONS, ImageReadError, read_image, read_mask

# The first bytes of each format, so that random tails reach the parsers instead of failing at the signature.
MAGIC_PREFIXES = (
    b"",
    b"II*\x00",
    b"MM\x00*",
    b"II*\x00\x08\x00\x00\x00",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff\xe0",
    b"BM",
    b"\x5c\x01\x00\x00",  # NIfTI-1 sizeof_hdr = 348
    b"\x1f\x8b\x08\x00",  # gzip
)
WRITERS: dict[str, Callable[[Path, npt.NDArray[Any]], Path]] = {
    "tiff": lambda d, a: _written(d / "x.tif", lambda p: tifffile.imwrite(p, a)),
    "imagej": lambda d, a: _written(d / "x.tif", lambda p: tifffile.imwrite(p, a, imagej=True)),
    "ome": lambda d, a: _written(d / "x.ome.tif", lambda p: tifffile.imwrite(p, a, ome=True)),
    "png": lambda d, a: _written(d / "x.png", lambda p: iio.imwrite(p, a)),
    "nifti": lambda d, a: _written(d / "x.nii", lambda p: nib.save(nib.Nifti1Image(a, np.eye(4)), p)),
    "nifti-gz": lambda d, a: _written(d / "x.nii.gz", lambda p: nib.save(nib.Nifti1Image(a, np.eye(4)), p)),
}


def _written(path: Path, write: Callable[[Path], object]) -> Path:
    write(path)
    return path


@contextmanager
def _folder() -> Iterator[Path]:
    # Not tmp_path: hypothesis runs many examples per test call, and each needs a clean file.
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _read_both(path: Path) -> None:
    """Read ``path`` as image and as mask; let only ``ImageReadError`` pass, with a one-line message naming it."""
    for read in (read_image, read_mask):
        message = _read_error_message(read, path)
        if message is not None:
            assert str(path) in message
            assert "\n" not in message


def _read_error_message(read: Callable[[Path], object], path: Path) -> str | None:
    try:
        read(path)
    except ImageReadError as error:
        return str(error)
    return None


@cache
def _valid_files() -> dict[str, bytes]:
    """One small valid file per extension, as bytes."""
    stack = (np.arange(3 * 16 * 12) % 7).reshape(3, 16, 12).astype(np.uint16)
    files: dict[str, bytes] = {}
    with _folder() as folder:
        for extension in SUPPORTED_EXTENSIONS:
            path = folder / f"x{extension}"
            if extension in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
                ome, imagej = extension.startswith(".ome"), extension == ".tiff"
                tifffile.imwrite(path, stack, photometric="minisblack", imagej=imagej, ome=ome)
            elif extension in (".nii", ".nii.gz"):
                nib.save(nib.Nifti1Image(stack.astype(np.float32), np.eye(4)), path)
            else:
                iio.imwrite(path, np.stack([stack[0].astype(np.uint8)] * 3, axis=-1))
            files[extension] = path.read_bytes()
    return files


@settings(max_examples=80, deadline=None)
@given(
    extension=st.sampled_from(SUPPORTED_EXTENSIONS),
    prefix=st.sampled_from(MAGIC_PREFIXES),
    tail=st.binary(max_size=600),
)
def test_random_bytes_raise_only_read_errors(extension: str, prefix: bytes, tail: bytes) -> None:
    with _folder() as folder:
        path = folder / f"x{extension}"
        path.write_bytes(prefix + tail)
        _read_both(path)


@settings(max_examples=80, deadline=None)
@given(
    extension=st.sampled_from(SUPPORTED_EXTENSIONS),
    keep=st.floats(min_value=0.0, max_value=1.0),
    flips=st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0), st.integers(0, 255)), max_size=3),
)
def test_truncated_or_damaged_files_raise_only_read_errors(
    extension: str, keep: float, flips: list[tuple[float, int]]
) -> None:
    content = bytearray(_valid_files()[extension])
    for where, value in flips:
        content[min(int(where * len(content)), len(content) - 1)] = value
    with _folder() as folder:
        path = folder / f"x{extension}"
        path.write_bytes(bytes(content[: int(keep * len(content))]))
        _read_both(path)


@settings(max_examples=100, deadline=None)
@given(
    writer=st.sampled_from(sorted(WRITERS)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=5),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf]),
)
def test_odd_arrays_on_disk_raise_only_read_errors(
    writer: str, shape: list[int], dtype: type[np.generic], special: float | None
) -> None:
    array = (np.arange(int(np.prod(shape))) % 5).reshape(shape).astype(dtype)
    has_special = special is not None and array.dtype.kind == "f" and array.size > 0
    if has_special:
        array.flat[array.size // 2] = special
    with _folder() as folder:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. tifffile's "writing zero-size array to nonconformant TIFF"
                path = WRITERS[writer](folder, array)
        except Exception:  # the writer refuses this array: there is no file to read
            return
        _read_both(path)
        if has_special or array.size == 0:  # never a usable image, whether or not the library can parse it
            with pytest.raises(ImageReadError):
                read_image(path)
