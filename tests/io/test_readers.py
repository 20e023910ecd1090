from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import tifffile

from cellseg.io import SUPPORTED_EXTENSIONS, ImageData, ImageReadError, read_image, read_mask, split_extension


def test_supported_extensions_cover_the_three_families() -> None:
    for extension in (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".nii", ".nii.gz"):
        assert extension in SUPPORTED_EXTENSIONS


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("a.tif", ("a", ".tif")),
        ("A.TIFF", ("A", ".tiff")),
        ("cell.01.nii.gz", ("cell.01", ".nii.gz")),
        ("b.ome.tif", ("b", ".ome.tif")),
        ("c.gz", ("c", ".gz")),
        (".nii.gz", (".nii", ".gz")),
        ("noext", ("noext", "")),
    ],
)
def test_split_extension(file_name: str, expected: tuple[str, str]) -> None:
    assert split_extension(Path("/some/dir") / file_name) == expected


def test_extension_case_does_not_matter_and_str_paths_work(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "A.TIF", np.ones((4, 5), np.uint8))
    assert read_image(str(tmp_path / "A.TIF")).array.shape == (1, 4, 5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.png: no such file; check the path"):
        read_image(tmp_path / "nope.png")


def test_folder(tmp_path: Path) -> None:
    (tmp_path / "images.tif").mkdir()
    with pytest.raises(ImageReadError, match="is a folder, not an image file"):
        read_image(tmp_path / "images.tif")


@pytest.mark.parametrize("file_name", ["a.gif", "a.npy", "README"])
def test_unsupported_extension_lists_the_supported_ones(tmp_path: Path, file_name: str) -> None:
    (tmp_path / file_name).write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match=r"unsupported extension .*\.tif, .*\.nii\.gz") as caught:
        read_image(tmp_path / file_name)
    assert str(tmp_path / file_name) in str(caught.value)


def test_content_of_another_format_is_a_read_error(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 5), np.uint8))
    (tmp_path / "a.nii").write_bytes((tmp_path / "a.png").read_bytes())
    with pytest.raises(ImageReadError, match=r"a\.nii: cannot be read as NIfTI"):
        read_image(tmp_path / "a.nii")


def test_image_data_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="does not fit spatial_dims=3"):
        ImageData(np.zeros((1, 4, 5)), spatial_dims=3, spacing=(1.0, 1.0, 1.0), affine=None, path=Path("x"))
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        ImageData(np.zeros((1, 4, 5)), spatial_dims=2, spacing=(1.0,), affine=None, path=Path("x"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_integer_mask_keeps_shape_and_dtype(tmp_path: Path, dtype: type[np.integer[Any]]) -> None:
    labels = np.array([[0, 1, 1], [2, 0, 3]], dtype)
    tifffile.imwrite(tmp_path / "m.tif", labels)
    mask = read_mask(tmp_path / "m.tif")
    assert mask.shape == (2, 3)
    assert mask.dtype == dtype
    np.testing.assert_array_equal(mask, labels)


def test_3d_mask(tmp_path: Path) -> None:
    labels = np.zeros((6, 5, 4), np.uint16)  # (x, y, z)
    labels[1:3, 2:4, 1:2] = 7
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "m.nii.gz")
    mask = read_mask(tmp_path / "m.nii.gz")
    assert mask.shape == (4, 5, 6)
    np.testing.assert_array_equal(mask, labels.T)


def test_whole_float_labels_become_int32(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", np.array([[0.0, 1.0], [2.0, 70000.0]], np.float32))
    mask = read_mask(tmp_path / "m.tif")
    assert mask.dtype == np.int32
    np.testing.assert_array_equal(mask, [[0, 1], [2, 70000]])


def test_bool_mask_becomes_uint8(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", np.array([[True, False], [False, True]]))
    mask = read_mask(tmp_path / "m.tif")
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[1, 0], [0, 1]])


def test_rgb_mask_with_equal_channels_is_one_channel(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 2], [3, 3, 0]], np.uint8)
    iio.imwrite(tmp_path / "m.png", np.stack([labels] * 3, axis=-1))
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), labels)


def test_rgb_mask_with_different_channels_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    iio.imwrite(tmp_path / "m.png", rgb)
    with pytest.raises(ImageReadError, match=r"m\.png: mask has 3 channels that differ"):
        read_mask(tmp_path / "m.png")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([[0, -1], [2, 3]], np.int16), "negative labels"),
        (np.array([[0.0, -1.0], [2.0, 3.0]], np.float32), "negative labels"),
        (np.array([[0.0, 1.5], [2.0, 3.0]], np.float32), r"non-integer values \(e\.g\. 1\.5\)"),
        (np.array([[0.0, 1.0], [2.0, 2.0**40]], np.float64), "renumber the labels"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, labels: npt.NDArray[Any], message: str) -> None:
    tifffile.imwrite(tmp_path / "m.tif", labels)
    with pytest.raises(ImageReadError, match=message):
        read_mask(tmp_path / "m.tif")
