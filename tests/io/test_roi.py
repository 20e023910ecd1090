from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from roifile import ROI_TYPE, ImagejRoi, roiread
from skimage.draw import disk

import cellseg.io.roi as roi_module
from cellseg.io.roi import write_imagej_rois
from tests.io.test_contours import rasterise


def _labels() -> npt.NDArray[np.int32]:
    labels = np.zeros((20, 24), dtype=np.int32)
    labels[disk((6, 6), 4)] = 1
    labels[disk((12, 16), 5)] = 2
    labels[disk((12, 16), 2)] = 0  # a hole: the ROI is the outer outline
    labels[17:, 20:] = 3  # on the image corner
    labels[0, 23] = 4  # one pixel
    return labels


def _read_rois(path: Path) -> list[ImagejRoi]:
    rois = roiread(path)
    return rois if isinstance(rois, list) else [rois]


def _coordinates(roi: ImagejRoi) -> npt.NDArray[np.float64]:
    """The ROI's ``(x, y)`` vertices, shape ``(M, 2)``."""
    return np.asarray(roi.coordinates(), dtype=np.float64)


def _fill(roi: ImagejRoi, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    filled: npt.NDArray[np.bool_] = rasterise({1: [[_coordinates(roi)]]}, shape) == 1
    return filled


def test_one_polygon_roi_per_object_named_after_its_label(tmp_path: Path) -> None:
    labels = _labels()
    path = write_imagej_rois(tmp_path / "rois.zip", labels)
    rois = _read_rois(path)
    assert [roi.name for roi in rois] == ["cell_00001", "cell_00002", "cell_00003", "cell_00004"]
    for label, roi in enumerate(rois, start=1):
        assert roi.roitype == ROI_TYPE.POLYGON
        coordinates = _coordinates(roi)
        assert (coordinates >= 0).all()
        assert (coordinates <= [24, 20]).all()
        filled = _fill(roi, labels.shape)
        if label == 2:
            np.testing.assert_array_equal(filled, (labels == 2) | (filled & (labels == 0)))
            assert filled.sum() > (labels == 2).sum()  # the hole is inside the outline
        else:
            np.testing.assert_array_equal(filled, labels == label)


def test_object_in_parts_gets_the_outline_of_its_largest_part(tmp_path: Path) -> None:
    labels = np.zeros((8, 8), dtype=np.uint16)
    labels[0, 0] = 1
    labels[1:5, 1:4] = 1  # touches (0, 0) only diagonally
    (roi,) = _read_rois(write_imagej_rois(tmp_path / "rois.zip", labels))
    filled = _fill(roi, labels.shape)
    np.testing.assert_array_equal(filled, np.pad(np.ones((4, 3), bool), ((1, 3), (1, 4))))


def test_3d_labels_get_one_roi_per_object_and_slice_with_its_z_position(tmp_path: Path) -> None:
    labels = np.zeros((3, 20, 24), dtype=np.uint32)
    labels[0] = _labels()
    labels[2, 5:9, 5:9] = 7
    rois = _read_rois(write_imagej_rois(tmp_path / "rois.zip", labels))
    expected = [(f"cell_{label:05d}_z0001", 1) for label in (1, 2, 3, 4)] + [("cell_00007_z0003", 3)]
    assert [(roi.name, roi.z_position) for roi in rois] == expected
    assert [roi.position for roi in rois] == [z for _, z in expected]
    np.testing.assert_array_equal(_fill(rois[-1], (20, 24)), labels[2] == 7)


def test_empty_labels_give_an_empty_roi_set(tmp_path: Path) -> None:
    path = write_imagej_rois(tmp_path / "rois.zip", np.zeros((4, 4), np.int32))
    assert path.is_file()


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_write_then_fail(path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(roi_module, "roiwrite", half_write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_imagej_rois(tmp_path / "rois.zip", _labels())
    assert list(tmp_path.iterdir()) == []


def test_labels_that_are_not_2d_or_3d_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"rois\.zip: labels must be an \(H, W\) or \(D, H, W\) integer array"):
        write_imagej_rois(tmp_path / "rois.zip", np.zeros(5, np.int32))
