"""Export instance labels as an ImageJ/Fiji ROI set (a ``.zip`` that the ROI Manager opens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from roifile import ROI_TYPE, ImagejRoi, roiwrite

from cellseg.io.atomic import atomic_output
from cellseg.io.contours import object_polygons


def write_imagej_rois(path: str | Path, labels: npt.NDArray[np.integer[Any]]) -> Path:
    """Write one polygon ROI per object, the outline Fiji's wand or "Create Selection" would trace, as a ROI zip.

    A ROI is the outer ring of the object's largest part (holes and pixels touching only diagonally are left out:
    an ImageJ polygon has one ring), with integer vertices on pixel corners as in ImageJ's own traced selections.
    2D objects are named ``cell_00001`` after their label. For 3D labels each object gets one ROI per z-slice it
    appears in, named ``cell_00001_z0003`` (z 1-based, as ImageJ counts slices) and tied to that slice by its
    stack position and z position, so the ROI Manager shows it on that slice of the ``ZYX`` label TIFF.

    Args:
        path: the ``.zip`` file to write; an existing file is replaced.
        labels: shape ``(H, W)`` or ``(D, H, W)``, integer labels, 0 = background.

    Returns:
        ``path``.

    Raises:
        ValueError: ``labels`` is not a 2D or 3D integer array.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype.kind not in "biu":
        raise ValueError(
            f"{path}: labels must be an (H, W) or (D, H, W) integer array, got shape {labels.shape} of "
            f"{labels.dtype}; pass the instance labels of one image"
        )
    if labels.ndim == 2:
        rois = list(_slice_rois(labels, z=None))
    else:
        rois = [roi for z, plane in enumerate(labels) for roi in _slice_rois(plane, z=z)]
    with atomic_output(path) as temporary:
        roiwrite(temporary, rois, mode="w")
    return path


def _slice_rois(labels2d: npt.NDArray[np.integer[Any]], z: int | None) -> Iterator[ImagejRoi]:
    """One polygon ROI per object of an ``(H, W)`` label image; ``z`` (0-based) places them on a stack slice."""
    for label, parts in object_polygons(labels2d).items():
        outer = parts[0][0].astype(np.int32)
        name = f"cell_{label:05d}" if z is None else f"cell_{label:05d}_z{z + 1:04d}"
        roi = ImagejRoi.frompoints(outer, name=name, position=z, z=z)
        roi.roitype = ROI_TYPE.POLYGON
        yield roi
