from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from skimage.draw import disk
from skimage.segmentation import find_boundaries

import cellseg.io.writers as writers
from cellseg.io import ImageData, read_image, read_mask
from cellseg.io.atomic import atomic_output
from cellseg.io.writers import MASK_EXTENSIONS, label_dtype, write_labels, write_outlines, write_probability

# A rotation (x and y swapped) with anisotropic scaling and a shift: what a scanner writes, not the identity.
AFFINE = np.array(
    [[0.0, 0.3, 0.0, 12.0], [0.5, 0.0, 0.0, -4.0], [0.0, 0.0, 2.0, 7.5], [0.0, 0.0, 0.0, 1.0]], dtype=np.float64
)


def _labels(shape: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """Three discs (the third cut by the border) on every z-slice of ``shape`` (``(H, W)`` or ``(D, H, W)``)."""
    plane = np.zeros(shape[-2:], dtype=np.int32)
    plane[disk((4, 4), 3, shape=plane.shape)] = 1
    plane[disk((9, 12), 4, shape=plane.shape)] = 2
    plane[disk((0, 15), 3, shape=plane.shape)] = 3
    if len(shape) == 2:
        return plane
    stack = np.stack([plane * (z % 2) + (plane > 0) * 10 * z for z in range(shape[0])])  # labels differ per slice
    return stack.astype(np.int32)


def _nifti_reference(tmp_path: Path, spatial_shape: tuple[int, ...]) -> ImageData:
    """Write a float NIfTI image of our shape ``(H, W)`` or ``(D, H, W)`` with qform, sform and units; read it."""
    data = np.zeros(tuple(reversed(spatial_shape)), dtype=np.float32)  # nibabel's (x, y[, z])
    image = nib.Nifti1Image(data, AFFINE)
    image.set_qform(AFFINE, code=1)
    image.set_sform(AFFINE, code=4)
    image.header.set_xyzt_units(xyz="mm", t="sec")
    image.header["descrip"] = b"reference scan"
    nib.save(image, tmp_path / "reference.nii.gz")
    return read_image(tmp_path / "reference.nii.gz")


def _tiff_reference(tmp_path: Path, spatial_shape: tuple[int, ...]) -> ImageData:
    """Write an ImageJ TIFF calibrated at 0.25 um (x), 0.5 um (y) and 2 um (z); read it."""
    metadata: dict[str, Any] = {"axes": "ZYX"[-len(spatial_shape) :], "unit": "micron"}
    if len(spatial_shape) == 3:
        metadata["spacing"] = 2.0
    tifffile.imwrite(
        tmp_path / "reference.tif",
        np.zeros(spatial_shape, np.uint8),
        imagej=True,
        resolution=(4.0, 2.0),
        metadata=metadata,
    )
    return read_image(tmp_path / "reference.tif")


def test_label_dtype_switches_to_uint32_above_65535() -> None:
    assert label_dtype(0) == np.uint16
    assert label_dtype(65_535) == np.uint16
    assert label_dtype(65_536) == np.uint32
    assert label_dtype(2**32 - 1) == np.uint32
    with pytest.raises(ValueError, match="renumber"):
        label_dtype(2**32)


@pytest.mark.parametrize("fmt", ["tif", "png", "nii"])
def test_2d_labels_read_back_equal(tmp_path: Path, fmt: writers.LabelFormat) -> None:
    labels = _labels((14, 18))
    path = write_labels(tmp_path / f"mask{MASK_EXTENSIONS[fmt]}", labels, fmt)
    assert path == tmp_path / f"mask{MASK_EXTENSIONS[fmt]}"
    mask = read_mask(path)
    assert mask.dtype == np.uint16
    np.testing.assert_array_equal(mask, labels)


@pytest.mark.parametrize("depth", [3, 4])  # 3: a stack that must not be taken for RGB
@pytest.mark.parametrize("fmt", ["tif", "nii"])
def test_3d_labels_read_back_equal(tmp_path: Path, fmt: writers.LabelFormat, depth: int) -> None:
    labels = _labels((depth, 14, 18))
    mask = read_mask(write_labels(tmp_path / f"mask{MASK_EXTENSIONS[fmt]}", labels, fmt))
    assert mask.shape == (depth, 14, 18)
    np.testing.assert_array_equal(mask, labels)


@pytest.mark.parametrize(("max_label", "dtype"), [(65_535, np.uint16), (65_536, np.uint32)])
@pytest.mark.parametrize("fmt", ["tif", "nii"])
@pytest.mark.parametrize("spatial_shape", [(5, 6), (3, 5, 6)])
def test_16_bit_up_to_65535_objects_else_32_bit(
    tmp_path: Path, fmt: writers.LabelFormat, max_label: int, dtype: Any, spatial_shape: tuple[int, ...]
) -> None:
    labels = np.arange(int(np.prod(spatial_shape)), dtype=np.uint32).reshape(spatial_shape)
    labels.flat[-1] = max_label
    mask = read_mask(write_labels(tmp_path / f"mask{MASK_EXTENSIONS[fmt]}", labels, fmt))
    assert mask.dtype == dtype
    np.testing.assert_array_equal(mask, labels)


def test_label_tiff_is_a_compressed_imagej_stack_calibrated_from_the_reference(tmp_path: Path) -> None:
    labels = _labels((4, 14, 18))
    reference = _tiff_reference(tmp_path, labels.shape)
    path = write_labels(tmp_path / "mask.tif", labels, "tif", reference=reference)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZYX"
        assert tif.imagej_metadata is not None
        assert tif.imagej_metadata["slices"] == 4
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.pages.first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert read_image(path).spacing == pytest.approx((2.0, 0.5, 0.25))


def test_uint32_label_tiff_keeps_the_spacing_too(tmp_path: Path) -> None:
    labels = _labels((2, 14, 18)).astype(np.uint32) * 40_000
    reference = _tiff_reference(tmp_path, labels.shape)
    path = write_labels(tmp_path / "mask.tif", labels, "tif", reference=reference)
    image = read_image(path)
    assert image.array.dtype == np.uint32
    assert image.spacing == pytest.approx((2.0, 0.5, 0.25))
    np.testing.assert_array_equal(read_mask(path), labels)


@pytest.mark.parametrize("spatial_shape", [(14, 18), (3, 14, 18)])
def test_nifti_keeps_the_reference_affine_and_header(tmp_path: Path, spatial_shape: tuple[int, ...]) -> None:
    reference = _nifti_reference(tmp_path, spatial_shape)
    labels = _labels(spatial_shape)
    path = write_labels(tmp_path / "mask.nii.gz", labels, "nii", reference=reference)

    written: Any = nib.load(path)
    original: Any = nib.load(tmp_path / "reference.nii.gz")
    np.testing.assert_allclose(written.affine, AFFINE)
    np.testing.assert_allclose(written.header.get_qform(), original.header.get_qform())
    np.testing.assert_allclose(written.header.get_sform(), original.header.get_sform())
    assert int(written.header["qform_code"]) == 1
    assert int(written.header["sform_code"]) == 4
    np.testing.assert_allclose(written.header["pixdim"][1:4], original.header["pixdim"][1:4])
    assert written.header.get_xyzt_units() == ("mm", "sec")
    assert written.header["descrip"] == b"reference scan"
    assert written.get_data_dtype() == np.uint16
    assert written.header.get_intent()[0] == "label"
    # nibabel's axis order: voxel (x, y, z) of the file is our labels[z, y, x], so both sit at the same world point
    data = np.asarray(written.dataobj)
    np.testing.assert_array_equal(data.reshape((*data.shape[:2], -1)).T.reshape(labels.shape), labels)
    image = read_image(path)
    assert image.affine is not None
    np.testing.assert_allclose(image.affine, reference.affine)  # type: ignore[arg-type]
    np.testing.assert_array_equal(read_mask(path), labels)


def test_nifti_without_nifti_reference_scales_by_the_spacing(tmp_path: Path) -> None:
    labels = _labels((4, 14, 18))
    reference = _tiff_reference(tmp_path, labels.shape)
    written: Any = nib.load(write_labels(tmp_path / "mask.nii.gz", labels, "nii", reference=reference))
    np.testing.assert_allclose(written.affine, np.diag([0.25, 0.5, 2.0, 1.0]))
    assert written.header.get_xyzt_units()[0] == "micron"
    plain: Any = nib.load(write_labels(tmp_path / "plain.nii.gz", labels, "nii"))
    np.testing.assert_allclose(plain.affine, np.eye(4))


def test_png_refuses_3d_and_more_than_65535_objects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mask\.png: PNG holds 2D images only.*use tif") as error:
        write_labels(tmp_path / "mask.png", _labels((2, 14, 18)), "png")
    assert "\n" not in str(error.value)
    many = np.zeros((3, 3), dtype=np.int32)
    many[1, 1] = 65_536
    with pytest.raises(ValueError, match=r"mask\.png: 16-bit PNG holds labels up to 65535.*use tif"):
        write_labels(tmp_path / "mask.png", many, "png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((4, 5), np.float32), "integer array"),
        (np.zeros(5, np.int32), "integer array"),
        (np.full((4, 5), -1, np.int32), "positive"),
    ],
)
def test_unusable_labels_are_refused(tmp_path: Path, labels: npt.NDArray[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_labels(tmp_path / "mask.tif", labels, "tif")


def test_reference_of_another_shape_and_unknown_format_are_refused(tmp_path: Path) -> None:
    reference = _tiff_reference(tmp_path, (14, 18))
    with pytest.raises(ValueError, match="do not match the reference image"):
        write_labels(tmp_path / "mask.tif", _labels((14, 17)), "tif", reference=reference)
    with pytest.raises(ValueError, match="unknown label format 'jpg'"):
        write_labels(tmp_path / "mask.jpg", _labels((14, 18)), "jpg")  # type: ignore[arg-type]


def _half_write_then_fail(path: Any, *args: Any, **kwargs: Any) -> None:
    Path(path).write_bytes(b"II*\x00 half a file")
    raise OSError("No space left on device")


@pytest.mark.parametrize("fmt", ["tif", "png", "nii"])
def test_failed_write_leaves_neither_target_nor_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: writers.LabelFormat
) -> None:
    monkeypatch.setattr(tifffile, "imwrite", _half_write_then_fail)
    monkeypatch.setattr(iio, "imwrite", _half_write_then_fail)
    monkeypatch.setattr(nib, "save", lambda image, path: _half_write_then_fail(path))
    with pytest.raises(OSError, match="No space left"):
        write_labels(tmp_path / f"mask{MASK_EXTENSIONS[fmt]}", _labels((14, 18)), fmt)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = _labels((14, 18))
    path = write_labels(tmp_path / "mask.tif", labels, "tif")
    monkeypatch.setattr(tifffile, "imwrite", _half_write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_labels(path, labels + 1, "tif")
    assert [p.name for p in tmp_path.iterdir()] == ["mask.tif"]
    np.testing.assert_array_equal(read_mask(path), labels)


def test_atomic_output_keeps_the_extension_and_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "cells.nii.gz"
    target.write_text("old")
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path
        assert temporary.name.startswith(".cells.tmp-")
        assert temporary.name.endswith(".nii.gz")
        assert target.read_text() == "old"
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["cells.nii.gz"]


def test_atomic_output_deletes_the_temporary_file_on_interrupt(tmp_path: Path) -> None:
    def interrupted_write() -> None:
        with atomic_output(tmp_path / "a.tif") as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_names_a_missing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match="missing does not exist; create it"),
        atomic_output(tmp_path / "missing" / "a.tif"),
    ):
        pass


@pytest.mark.parametrize("shape", [(14, 18), (3, 14, 18)])
def test_probability_is_a_float16_tiff(tmp_path: Path, shape: tuple[int, ...]) -> None:
    probability = np.random.default_rng(0).random(shape)
    path = write_probability(tmp_path / "probability.tif", probability)
    with tifffile.TiffFile(path) as tif:
        stored = tif.asarray()
        assert tif.pages.first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert stored.dtype == np.float16
    assert stored.shape == shape
    np.testing.assert_allclose(stored, probability, atol=1e-3)
    assert read_image(path).array.shape == (1, *shape)


def test_probability_with_a_channel_axis_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without the channel axis"):
        write_probability(tmp_path / "p.tif", np.zeros((1, 2, 3, 4), np.float32))


def test_outlines_are_an_rgb_png_with_coloured_contours(tmp_path: Path) -> None:
    labels = _labels((14, 18))
    image = np.random.default_rng(0).integers(0, 4000, (2, 14, 18)).astype(np.uint16)
    outlined = iio.imread(write_outlines(tmp_path / "outlines.png", image, labels))
    plain = iio.imread(write_outlines(tmp_path / "plain.png", image, np.zeros_like(labels)))
    assert outlined.shape == (14, 18, 3)
    assert outlined.dtype == np.uint8
    assert (plain == plain[..., :1]).all()  # gray from the first channel
    contours = find_boundaries(labels, connectivity=1, mode="inner")
    assert (outlined[contours] != plain[contours]).any(axis=-1).all()
    np.testing.assert_array_equal(outlined[~contours], plain[~contours])
    assert len({tuple(outlined[labels == label][0]) for label in (1, 2, 3)}) == 3


def test_outlines_of_3_channels_are_in_colour_and_3d_shows_the_middle_slice(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((3, 5, 14, 18)).astype(np.float32)
    labels = np.zeros((5, 14, 18), dtype=np.uint32)
    labels[2, 3:8, 3:8] = 1  # only on the middle slice
    outlined = iio.imread(write_outlines(tmp_path / "outlines.png", image, labels))
    assert outlined.shape == (14, 18, 3)
    assert not (outlined == outlined[..., :1]).all()
    contours = find_boundaries(labels[2], connectivity=1, mode="inner")
    (colour,) = writers.outline_colours(np.ones(1, np.int64))
    assert (outlined[contours] == colour).all()


def test_outlines_refuse_an_image_of_another_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not fit labels"):
        write_outlines(tmp_path / "o.png", np.zeros((14, 18)), _labels((14, 18)))
