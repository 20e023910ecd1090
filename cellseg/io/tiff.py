"""Read TIFF, ImageJ hyperstack and OME-TIFF files into channels-first ``ImageData``.

Axes come from ``series[0].axes`` when the file says what its axes are (ImageJ, OME, tifffile's ``axes``
metadata, or TIFF tags alone for a plain 2D or RGB image):

- ``Y`` and ``X`` become ``H`` and ``W``, ``Z`` becomes ``D``;
- ``C`` (channels) and ``S`` (samples per pixel, as in RGB) become ``C``, C-major where a file has both; alpha
  samples (TIFF ``ExtraSamples``) are dropped;
- a ``T`` of length 1 is ignored; more than one time point is an error (split the series into files);
- any other axis of length 1 is ignored; longer ones are an error.

Without axis metadata (tifffile reports unknown axes such as ``Q`` or ``I``), the array's shape decides, after
leading size-1 axes are dropped:

- ``(H, W)`` -> ``(1, H, W)``;
- ``(H, W, 3)`` or ``(H, W, 4)`` -> RGB(A) -> ``(3, H, W)``, alpha dropped;
- any other 3D ``(D, H, W)`` -> a Z stack ``(1, D, H, W)``. This is a guess: such a file may also be a time
  series or a channel stack. Save it with ImageJ or OME axes (e.g. ``tifffile.imwrite(..., imagej=True,
  metadata={"axes": "CYX"})``) to say which.

Spacing is read from ImageJ calibration (``XResolution``/``YResolution`` and the ``spacing`` entry for Z) and from
OME ``PhysicalSizeX/Y/Z``; it is 1.0 elsewhere, since a plain TIFF's resolution tags usually mean printer dpi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import numpy.typing as npt
import tifffile

from cellseg.io.errors import ImageReadError, library_errors_as_read_error
from cellseg.io.image import ImageData, check_pixels, spacing_or_default, spatial_dims_error

TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".ome.tif", ".ome.tiff")

_KNOWN_AXES = frozenset("TZCSYX")
_ALPHA_EXTRASAMPLES = frozenset({1, 2})  # EXTRASAMPLE.ASSOCALPHA, EXTRASAMPLE.UNASSALPHA
_RGB_SAMPLES = (3, 4)


def read_tiff(path: str | Path) -> ImageData:
    """Read a TIFF file's first series as a channels-first image (see the module docstring for axes).

    Args:
        path: a ``.tif``/``.tiff`` file: 8/16/32-bit integer or float, gray or RGB(A), one or many pages, plain,
            ImageJ or OME.

    Returns:
        ``ImageData`` with ``array`` of shape ``(C, H, W)`` or ``(C, D, H, W)`` in the file's dtype.

    Raises:
        ImageReadError: the file is missing, corrupt, or holds no usable 2D/3D image.
    """
    path = Path(path)
    with library_errors_as_read_error(path, "TIFF"), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = str(series.axes).upper()
        data = np.asarray(series.asarray())
        page = series.keyframe
        alpha_samples = sum(1 for sample in page.extrasamples if int(sample) in _ALPHA_EXTRASAMPLES)
        spacing_by_axis = _spacing_by_axis(tif)
        has_axes = bool(tif.is_imagej or tif.is_ome) or set(axes) <= _KNOWN_AXES
    check_pixels(data, path)
    if has_axes:
        array, spatial_axes = _channels_first_from_axes(data, axes, alpha_samples, path)
    else:
        array, spatial_axes = _channels_first_from_shape(data, path)
    spacing = spacing_or_default(tuple(spacing_by_axis.get(axis, 1.0) for axis in spatial_axes))
    return ImageData(array=array, spatial_dims=len(spatial_axes), spacing=spacing, affine=None, path=path)


def _channels_first_from_axes(
    data: npt.NDArray[Any], axes: str, alpha_samples: int, path: Path
) -> tuple[npt.NDArray[Any], str]:
    """Reorder ``data`` (axes named by ``axes``) to ``(C, [Z,] Y, X)``; also return the spatial axes kept."""
    if len(axes) != data.ndim:
        raise ImageReadError(f"{path}: axes {axes!r} do not match the data's shape {data.shape}; re-save the file")
    kept = [i for i, axis in enumerate(axes) if axis in "YX" or data.shape[i] > 1]
    data = data.reshape([data.shape[i] for i in kept])
    axes = "".join(axes[i] for i in kept)
    if "T" in axes:
        raise ImageReadError(
            f"{path}: holds {data.shape[axes.index('T')]} time points (axes {axes}); "
            "cellseg reads one time point per file: save each time point as its own file"
        )
    if not set(axes) <= _KNOWN_AXES or len(set(axes)) != len(axes):
        raise ImageReadError(
            f"{path}: has axes {axes} (shape {data.shape}); cellseg reads Z, C, Y, X and RGB samples: "
            "re-save the image with only those axes"
        )
    if "Y" not in axes or "X" not in axes:
        raise spatial_dims_error(path, data.shape, f" (axes {axes})")
    if "S" in axes and alpha_samples and data.shape[axes.index("S")] > alpha_samples:
        data = np.take(data, range(data.shape[axes.index("S")] - alpha_samples), axis=axes.index("S"))
    order = [axes.index(axis) for axis in "CSZYX" if axis in axes]
    data = data.transpose(order)
    spatial_axes = "".join(axis for axis in "ZYX" if axis in axes)
    data = data.reshape(-1, *data.shape[data.ndim - len(spatial_axes) :])
    return np.ascontiguousarray(data), spatial_axes


def _channels_first_from_shape(data: npt.NDArray[Any], path: Path) -> tuple[npt.NDArray[Any], str]:
    """Guess the axes of ``data`` from its shape alone (see the module docstring); return ``(C, ...)`` and axes."""
    original_shape = data.shape
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 2:
        return data[np.newaxis], "YX"
    if data.ndim == 3 and data.shape[-1] in _RGB_SAMPLES:
        return np.ascontiguousarray(data[..., :3].transpose(2, 0, 1)), "YX"
    if data.ndim == 3:
        return data[np.newaxis], "ZYX"
    raise spatial_dims_error(path, original_shape, " and no axis metadata")


def _spacing_by_axis(tif: tifffile.TiffFile) -> dict[str, float]:
    """Physical pixel size per axis letter from ImageJ or OME metadata; empty where the file has neither."""
    if tif.is_ome and tif.ome_metadata:
        pixels = ElementTree.fromstring(tif.ome_metadata).find(".//{*}Pixels")
        if pixels is None:
            return {}
        sizes = {axis: pixels.get(f"PhysicalSize{axis}") for axis in "XYZ"}
        return {axis: float(size) for axis, size in sizes.items() if size is not None}
    if tif.is_imagej:
        spacing: dict[str, float] = {}
        x_per_unit, y_per_unit = tif.pages.first.resolution
        if x_per_unit > 0 and y_per_unit > 0:
            spacing.update(X=1.0 / x_per_unit, Y=1.0 / y_per_unit)
        z_spacing = (tif.imagej_metadata or {}).get("spacing")
        if z_spacing is not None:
            spacing["Z"] = float(z_spacing)
        return spacing
    return {}
