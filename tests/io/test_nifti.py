from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest

from cellseg.io import ImageReadError, read_image
from cellseg.io.nifti import to_channels_first, to_nibabel_order

AFFINE = np.array(
    [[0.5, 0.0, 0.0, 10.0], [0.0, 0.25, 0.0, -5.0], [0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 0.0, 1.0]], np.float64
)


def _ramp(shape: tuple[int, ...], dtype: npt.DTypeLike = np.int16) -> npt.NDArray[Any]:
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


def _save(path: Path, data: npt.NDArray[Any], affine: npt.NDArray[Any] = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.mark.parametrize("extension", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_3d_is_transposed_to_z_y_x_with_spacing_and_affine(tmp_path: Path, extension: str, dtype: Any) -> None:
    data = _ramp((6, 5, 4), dtype)  # (x, y, z)
    image = read_image(_save(tmp_path / f"a{extension}", data))
    assert image.array.shape == (1, 4, 5, 6)
    assert image.array.dtype == np.dtype(dtype)
    assert image.spatial_dims == 3
    np.testing.assert_array_equal(image.array[0], data.transpose(2, 1, 0))
    assert image.spacing == pytest.approx((2.0, 0.25, 0.5))
    assert image.affine is not None
    np.testing.assert_allclose(image.affine, AFFINE)


def test_affine_maps_our_index_reversed(tmp_path: Path) -> None:
    data = _ramp((6, 5, 4))
    image = read_image(_save(tmp_path / "a.nii", data))
    d, h, w = 3, 1, 2
    world = AFFINE @ np.array([w, h, d, 1.0])
    assert image.affine is not None
    np.testing.assert_allclose(image.affine @ np.array([w, h, d, 1.0]), world)
    assert image.array[0, d, h, w] == data[w, h, d]


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1)])
def test_2d_and_singleton_z_are_2d(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = _ramp(shape)
    image = read_image(_save(tmp_path / "a.nii.gz", data))
    assert image.array.shape == (1, 5, 6)
    assert image.spatial_dims == 2
    np.testing.assert_array_equal(image.array[0], data.reshape(6, 5).T)
    assert image.spacing == pytest.approx((0.25, 0.5))


@pytest.mark.parametrize(
    ("shape", "expected"), [((6, 5, 4, 2), (2, 4, 5, 6)), ((6, 5, 4, 1, 3), (3, 4, 5, 6)), ((6, 5, 1, 2), (2, 5, 6))]
)
def test_last_axis_is_channels(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    image = read_image(_save(tmp_path / "a.nii", _ramp(shape)))
    assert image.array.shape == expected


def test_rgb_nifti_gives_three_channels(tmp_path: Path) -> None:
    rgb = np.zeros((6, 5), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"], rgb["G"], rgb["B"] = 1, 2, 3
    image = read_image(_save(tmp_path / "a.nii", rgb))
    assert image.array.shape == (3, 5, 6)
    np.testing.assert_array_equal(image.array[:, 0, 0], [1, 2, 3])


@pytest.mark.parametrize("shape", [(6,), (6, 5, 4, 2, 3), (2, 3, 4, 1, 2, 2)])
def test_not_2d_or_3d_is_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageReadError, match=r"a\.nii: (has shape|holds 2 time points)"):
        read_image(_save(tmp_path / "a.nii", _ramp(shape)))


def test_inf_pixels_are_refused(tmp_path: Path) -> None:
    data = np.zeros((6, 5, 4), np.float32)
    data[1, 2, 3] = np.inf
    with pytest.raises(ImageReadError, match="NaN or infinite"):
        read_image(_save(tmp_path / "a.nii.gz", data))


@pytest.mark.parametrize("extension", [".nii", ".nii.gz"])
def test_truncated_file_is_a_read_error(tmp_path: Path, extension: str) -> None:
    full = _save(tmp_path / f"full{extension}", _ramp((16, 16, 8))).read_bytes()
    (tmp_path / f"cut{extension}").write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(ImageReadError, match=f"cut{extension.replace('.', r'.')}"):
        read_image(tmp_path / f"cut{extension}")


def test_unknown_zooms_become_one(tmp_path: Path) -> None:
    image = nib.Nifti1Image(_ramp((6, 5, 4)), np.eye(4))
    image.header.set_zooms((0.0, 0.5, 0.0))
    nib.save(image, tmp_path / "a.nii")
    assert read_image(tmp_path / "a.nii").spacing == (1.0, 0.5, 1.0)


@pytest.mark.parametrize("shape", [(1, 5, 6), (2, 5, 6), (1, 4, 5, 6), (3, 4, 5, 6)])
def test_writer_order_round_trips(tmp_path: Path, shape: tuple[int, ...]) -> None:
    ours = _ramp(shape)
    theirs = to_nibabel_order(ours)
    assert theirs.ndim == 4
    np.testing.assert_array_equal(to_channels_first(theirs, tmp_path), ours)
    if shape[0] == 1:  # a writer may drop a single channel
        np.testing.assert_array_equal(to_channels_first(theirs[..., 0], tmp_path), ours)
    image = read_image(_save(tmp_path / "a.nii.gz", theirs))
    np.testing.assert_array_equal(image.array, ours)
