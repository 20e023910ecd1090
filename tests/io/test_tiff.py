from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile

from cellseg.io import ImageReadError, read_image
from cellseg.io.tiff import read_tiff


def _ramp(shape: tuple[int, ...], dtype: npt.DTypeLike = np.uint16) -> npt.NDArray[Any]:
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_plain_2d_keeps_dtype_and_values(tmp_path: Path, dtype: npt.DTypeLike) -> None:
    data = _ramp((5, 7), dtype)
    tifffile.imwrite(tmp_path / "a.tif", data)
    image = read_image(tmp_path / "a.tif")
    assert image.array.shape == (1, 5, 7)
    assert image.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.array[0], data)
    assert image.spatial_dims == 2
    assert image.spacing == (1.0, 1.0)
    assert image.affine is None
    assert image.path == tmp_path / "a.tif"


@pytest.mark.parametrize(("samples", "channels"), [(3, 3), (4, 3)])
def test_rgb_samples_go_first_and_alpha_is_dropped(tmp_path: Path, samples: int, channels: int) -> None:
    data = _ramp((5, 7, samples), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tiff", data, photometric="rgb")
    image = read_image(tmp_path / "rgb.tiff")
    assert image.array.shape == (channels, 5, 7)
    np.testing.assert_array_equal(image.array, data[..., :channels].transpose(2, 0, 1))


def test_multipage_without_axes_is_a_z_stack(tmp_path: Path) -> None:
    data = _ramp((6, 5, 7))
    tifffile.imwrite(tmp_path / "stack.tif", data)
    image = read_image(tmp_path / "stack.tif")
    assert image.array.shape == (1, 6, 5, 7)
    assert image.spatial_dims == 3
    assert image.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(image.array[0], data)


def test_last_axis_of_three_without_axes_is_rgb(tmp_path: Path) -> None:
    data = _ramp((5, 7, 3), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="minisblack")  # stored as 5 pages of 7 x 3
    image = read_image(tmp_path / "a.tif")
    assert image.array.shape == (3, 5, 7)
    np.testing.assert_array_equal(image.array, data.transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("axes", "shape", "expected_shape", "to_expected"),
    [
        ("YX", (5, 7), (1, 5, 7), lambda a: a[None]),
        ("CYX", (2, 5, 7), (2, 5, 7), lambda a: a),
        ("YXC", (5, 7, 2), (2, 5, 7), lambda a: a.transpose(2, 0, 1)),
        ("ZYX", (4, 5, 7), (1, 4, 5, 7), lambda a: a[None]),
        ("ZCYX", (4, 2, 5, 7), (2, 4, 5, 7), lambda a: a.transpose(1, 0, 2, 3)),
        ("CZYX", (2, 4, 5, 7), (2, 4, 5, 7), lambda a: a),
        ("TYX", (1, 5, 7), (1, 5, 7), lambda a: a),
        ("TZYX", (1, 4, 5, 7), (1, 4, 5, 7), lambda a: a[0][None]),
    ],
)
def test_axes_metadata_decides_the_layout(
    tmp_path: Path, axes: str, shape: tuple[int, ...], expected_shape: tuple[int, ...], to_expected: Any
) -> None:
    data = _ramp(shape)
    tifffile.imwrite(tmp_path / "a.tif", data, metadata={"axes": axes}, photometric="minisblack")
    image = read_image(tmp_path / "a.tif")
    assert image.array.shape == expected_shape
    np.testing.assert_array_equal(image.array, to_expected(data))


def test_imagej_hyperstack_with_calibration(tmp_path: Path) -> None:
    data = _ramp((4, 2, 5, 7))
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.25),
        metadata={"axes": "ZCYX", "spacing": 2.5, "unit": "um"},
    )
    image = read_image(tmp_path / "ij.tif")
    assert image.array.shape == (2, 4, 5, 7)
    np.testing.assert_array_equal(image.array, data.transpose(1, 0, 2, 3))
    assert image.spacing == pytest.approx((2.5, 0.25, 0.5))


def test_imagej_rgb(tmp_path: Path) -> None:
    data = _ramp((5, 7, 3), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "YXS"})
    image = read_image(tmp_path / "ij.tif")
    assert image.array.shape == (3, 5, 7)
    np.testing.assert_array_equal(image.array, data.transpose(2, 0, 1))


def test_imagej_single_time_point_is_ignored(tmp_path: Path) -> None:
    data = _ramp((1, 3, 5, 7))
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "TZYX"})
    image = read_image(tmp_path / "ij.tif")
    assert image.array.shape == (1, 3, 5, 7)


def test_ome_tiff_axes_and_physical_size(tmp_path: Path) -> None:
    data = _ramp((4, 2, 5, 7), np.float32)
    metadata = {"axes": "ZCYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 2.0}
    tifffile.imwrite(tmp_path / "a.ome.tif", data, ome=True, metadata=metadata)
    image = read_image(tmp_path / "a.ome.tif")
    assert image.array.shape == (2, 4, 5, 7)
    assert image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array, data.transpose(1, 0, 2, 3))
    assert image.spacing == pytest.approx((2.0, 0.25, 0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imagej": True, "metadata": {"axes": "TYX"}}, "3 time points"),
        ({"metadata": {"axes": "TYX"}}, "3 time points"),
    ],
)
def test_several_time_points_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    tifffile.imwrite(tmp_path / "t.tif", _ramp((3, 5, 7)), photometric="minisblack", **kwargs)
    with pytest.raises(ImageReadError, match=message):
        read_tiff(tmp_path / "t.tif")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5, 6), (7,)])
def test_neither_2d_nor_3d_is_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    tifffile.imwrite(tmp_path / "a.tif", _ramp(shape), photometric="minisblack" if len(shape) > 1 else None)
    with pytest.raises(ImageReadError, match="neither a 2D nor a 3D image"):
        read_tiff(tmp_path / "a.tif")


def test_nan_pixels_are_refused(tmp_path: Path) -> None:
    data = np.ones((5, 7), np.float32)
    data[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "a.tif", data)
    with pytest.raises(ImageReadError, match=r"a\.tif: contains NaN or infinite pixels; fix or remove the file"):
        read_tiff(tmp_path / "a.tif")


def test_complex_pixels_are_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.ones((5, 7), np.complex64))
    with pytest.raises(ImageReadError, match="pixel type complex64 is not supported"):
        read_tiff(tmp_path / "a.tif")


def test_not_a_tiff_names_the_file_and_keeps_the_cause(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_bytes(b"this is not a tiff file")
    with pytest.raises(ImageReadError, match=r"a\.tif: cannot be read as TIFF") as caught:
        read_tiff(tmp_path / "a.tif")
    assert caught.value.__cause__ is not None
    assert "\n" not in str(caught.value)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"missing\.tif"):
        read_tiff(tmp_path / "missing.tif")
