"""Write what ``cellseg predict`` produces: label masks (TIFF, PNG, NIfTI), probability maps and outline previews.

Every writer goes through ``atomic_output``, so a crash or a full disk never leaves half a file at the target path.
Label masks read back with ``cellseg.io.read_mask`` as the same labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import numpy.typing as npt
import tifffile
from matplotlib.colors import hsv_to_rgb
from skimage.segmentation import find_boundaries

from cellseg.io.atomic import atomic_output
from cellseg.io.image import ImageData
from cellseg.io.nifti import NIFTI_EXTENSIONS, to_nibabel_order
from cellseg.io.readers import split_extension

LabelFormat = Literal["tif", "png", "nii"]
MASK_EXTENSIONS: dict[str, str] = {"tif": ".tif", "png": ".png", "nii": ".nii.gz"}

_UINT16_MAX = int(np.iinfo(np.uint16).max)
_UINT32_MAX = int(np.iinfo(np.uint32).max)
_COMPRESSION = "zlib"
_NIFTI_LABEL_INTENT = "label"
_MICROSCOPY_UNIT = "micron"  # ImageJ's and nibabel's name for micrometres
_OME_UNITS = {"micron": "\u00b5m", "mm": "mm", "meter": "m"}  # nibabel's unit names -> OME's
_STRETCH_PERCENTILES = (1.0, 99.8)
_PALETTE_SIZE = 24
_PALETTE_SEED = 7


def label_dtype(max_label: int) -> np.dtype[Any]:
    """The dtype to store labels up to ``max_label`` in: ``uint16`` up to 65,535 objects, else ``uint32``.

    ``uint16`` is what every viewer reads as labels (ImageJ has no 32-bit integer images) and half the size.

    >>> label_dtype(65_535), label_dtype(65_536)
    (dtype('uint16'), dtype('uint32'))

    Raises:
        ValueError: ``max_label`` is negative or more than ``uint32`` holds.
    """
    if not 0 <= max_label <= _UINT32_MAX:
        raise ValueError(f"label {max_label} does not fit a label image (0 to {_UINT32_MAX}); renumber the labels")
    return np.dtype(np.uint16) if max_label <= _UINT16_MAX else np.dtype(np.uint32)


def write_labels(
    path: str | Path, labels: npt.NDArray[np.integer[Any]], fmt: LabelFormat, reference: ImageData | None = None
) -> Path:
    """Write an instance label mask as TIFF, PNG or NIfTI, in ``uint16`` or ``uint32`` (see ``label_dtype``).

    - ``"tif"``: zlib-compressed ImageJ TIFF that Fiji opens as an image (``YX``) or a Z stack (``ZYX``), with the
      reference's pixel size as its calibration. Above 65,535 objects ImageJ TIFFs cannot hold the labels (ImageJ
      has no 32-bit integer type), so the file is a ``uint32`` OME-TIFF instead, which Fiji opens too (as 32-bit).
    - ``"png"``: 16-bit gray PNG, 2D only and at most 65,535 objects.
    - ``"nii"``: NIfTI. With a NIfTI reference the file keeps its affine and header (qform, sform, pixel sizes,
      units), so that medical viewers overlay the mask on the image; otherwise the affine scales by the
      reference's spacing (identity without a reference). The labels are stored in nibabel's ``(x, y, z)`` order.

    Args:
        path: the file to write (the caller chooses the extension, e.g. from ``MASK_EXTENSIONS``).
        labels: shape ``(H, W)`` or ``(D, H, W)``, non-negative integer labels, 0 = background.
        fmt: ``"tif"``, ``"png"`` or ``"nii"``.
        reference: the image the labels were predicted from (its spatial shape must be the labels' shape), for
            the pixel size and, for NIfTI, the affine and header.

    Returns:
        ``path``.

    Raises:
        ValueError: the labels are not a 2D/3D non-negative integer array, do not match the reference's shape, or
            do not fit the format (PNG: 3D or more than 65,535 objects); ``fmt`` is unknown.
    """
    path = Path(path)
    labels = _checked_labels(path, labels)
    if reference is not None and reference.array.shape[1:] != labels.shape:
        raise ValueError(
            f"{path}: labels of shape {labels.shape} do not match the reference image {reference.path} "
            f"(spatial shape {reference.array.shape[1:]}); pass the image the labels were predicted from"
        )
    stored: npt.NDArray[np.unsignedinteger[Any]] = labels.astype(label_dtype(int(labels.max(initial=0))), copy=False)
    if fmt == "tif":
        _write_label_tiff(path, stored, reference)
    elif fmt == "png":
        _write_label_png(path, stored)
    elif fmt == "nii":
        _write_label_nifti(path, stored, reference)
    else:
        raise ValueError(f"{path}: unknown label format {fmt!r}; use one of {', '.join(MASK_EXTENSIONS)}")
    return path


def write_probability(path: str | Path, probability: npt.NDArray[np.floating[Any]]) -> Path:
    """Write a foreground probability map as a zlib-compressed ``float16`` TIFF (half the size of ``float32``).

    ``float16`` keeps about three decimal digits, plenty for a probability. Python (tifffile), napari and
    Bio-Formats read it; ImageJ's own TIFF opener does not read 16-bit floats, so open it in Fiji through
    Bio-Formats.

    Args:
        path: the ``.tif`` file to write.
        probability: shape ``(H, W)`` or ``(D, H, W)``, values in ``[0, 1]``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``probability`` is not a 2D or 3D array.
    """
    path = Path(path)
    if probability.ndim not in (2, 3):
        raise ValueError(
            f"{path}: probability map of shape {probability.shape} is neither (H, W) nor (D, H, W); "
            "pass one map per image, without the channel axis"
        )
    with atomic_output(path) as temporary:
        tifffile.imwrite(
            temporary,
            np.asarray(probability, dtype=np.float16),
            compression=_COMPRESSION,
            photometric="minisblack",  # not RGB, even when D is 3
            metadata={"axes": "YX" if probability.ndim == 2 else "ZYX"},
        )
    return path


def write_outlines(path: str | Path, image: npt.NDArray[Any], labels: npt.NDArray[np.integer[Any]]) -> Path:
    """Write a preview PNG: the image with each object's outline in its own colour, to check a segmentation by eye.

    The image is shown in gray from its first channel, or as an RGB composite when it has exactly 3 channels, each
    channel stretched between its 1st and 99.8th percentiles. Outlines are the objects' own boundary pixels
    (4-connected), coloured from a fixed palette of bright colours by label, so colours repeat every
    ``_PALETTE_SIZE`` labels. For 3D labels only the middle z-slice (``D // 2``) is drawn.

    Args:
        path: the ``.png`` file to write.
        image: shape ``(C, H, W)`` or ``(C, D, H, W)``, any numeric dtype.
        labels: shape ``(H, W)`` or ``(D, H, W)``, the image's spatial shape; 0 = background.

    Returns:
        ``path``; the PNG is 8-bit RGB of shape ``(H, W, 3)``.

    Raises:
        ValueError: the image and labels do not fit each other.
    """
    path = Path(path)
    labels = _checked_labels(path, labels)
    if image.ndim != labels.ndim + 1 or image.shape[1:] != labels.shape:
        raise ValueError(
            f"{path}: image of shape {image.shape} does not fit labels of shape {labels.shape}; pass the image "
            "channels-first, (C, H, W) or (C, D, H, W), with the labels' spatial shape"
        )
    if labels.ndim == 3:
        middle = labels.shape[0] // 2
        image, labels = image[:, middle], labels[middle]
    rgb = _display_rgb(image)
    boundary = find_boundaries(labels, connectivity=1, mode="inner")
    rgb[boundary] = outline_colours(labels[boundary])
    with atomic_output(path) as temporary:
        iio.imwrite(temporary, rgb, extension=".png")
    return path


def outline_colours(labels: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.uint8]:
    """The display colour of each label, shape ``(*labels.shape, 3)`` ``uint8``: a fixed palette, cycling."""
    colours: npt.NDArray[np.uint8] = _PALETTE[(labels.astype(np.int64) - 1) % _PALETTE_SIZE]
    return colours


def _bright_palette(size: int, seed: int) -> npt.NDArray[np.uint8]:
    """``size`` distinct bright colours, shape ``(size, 3)`` ``uint8``: evenly spaced hues in a seeded order.

    The shuffle keeps neighbouring labels (often neighbouring cells) from getting similar hues.
    """
    hues = np.random.default_rng(seed).permutation(size) / size
    saturation = np.where(np.arange(size) % 2 == 0, 1.0, 0.7)
    hsv = np.stack([hues, saturation, np.ones(size)], axis=1)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


_PALETTE = _bright_palette(_PALETTE_SIZE, _PALETTE_SEED)


def _checked_labels(path: Path, labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``labels`` as an array, after checking it is a 2D or 3D array of non-negative integers."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype.kind not in "biu" or labels.size == 0:
        raise ValueError(
            f"{path}: labels must be a non-empty (H, W) or (D, H, W) integer array, got shape {labels.shape} of "
            f"{labels.dtype}; pass the instance labels of one image"
        )
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise ValueError(f"{path}: labels must be 0 (background) or positive, got {labels.min()}; renumber them")
    return labels


def _write_label_tiff(path: Path, labels: npt.NDArray[np.unsignedinteger[Any]], reference: ImageData | None) -> None:
    """Write an ImageJ hyperstack TIFF (``uint16``) or an OME-TIFF (``uint32``), calibrated from ``reference``."""
    axes = "YX" if labels.ndim == 2 else "ZYX"
    options: dict[str, Any]
    if labels.dtype == np.uint16:
        metadata, resolution = _imagej_calibration(reference)
        options = {"imagej": True, "metadata": {"axes": axes, **metadata}, "resolution": resolution}
    else:
        options = {"ome": True, "metadata": {"axes": axes, **_ome_calibration(reference)}}
    with atomic_output(path) as temporary:
        tifffile.imwrite(temporary, labels, compression=_COMPRESSION, photometric="minisblack", **options)


def _imagej_calibration(reference: ImageData | None) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """ImageJ metadata (z spacing, unit) and TIFF resolution (pixels per unit in x, y) from the reference's spacing."""
    if reference is None:
        return {}, None
    spacing, unit = reference.spacing, _spacing_unit(reference)
    metadata: dict[str, Any] = {}
    if len(spacing) == 3:
        metadata["spacing"] = spacing[0]
    if unit is not None:
        metadata["unit"] = unit
    return metadata, (1.0 / spacing[-1], 1.0 / spacing[-2])


def _ome_calibration(reference: ImageData | None) -> dict[str, Any]:
    """OME ``Pixels`` attributes with the reference's pixel size (none without one)."""
    if reference is None:
        return {}
    unit = _OME_UNITS.get(_spacing_unit(reference) or "")
    calibration: dict[str, Any] = {}
    for axis, size in zip("ZYX"[-len(reference.spacing) :], reference.spacing, strict=True):
        calibration[f"PhysicalSize{axis}"] = size
        if unit is not None:
            calibration[f"PhysicalSize{axis}Unit"] = unit
    return calibration


def _write_label_png(path: Path, labels: npt.NDArray[np.unsignedinteger[Any]]) -> None:
    """Write a 16-bit gray PNG, refusing what PNG cannot hold."""
    if labels.ndim != 2:
        raise ValueError(f"{path}: PNG holds 2D images only, these labels are 3D {labels.shape}; use tif or nii")
    if labels.dtype != np.uint16:
        raise ValueError(
            f"{path}: 16-bit PNG holds labels up to {_UINT16_MAX}, these go to {labels.max()}; use tif or nii"
        )
    with atomic_output(path) as temporary:
        iio.imwrite(temporary, labels, extension=".png")


def _write_label_nifti(path: Path, labels: npt.NDArray[np.unsignedinteger[Any]], reference: ImageData | None) -> None:
    """Write a NIfTI label image, with the reference NIfTI's affine and header where there is one."""
    data = to_nibabel_order(labels[np.newaxis])[..., 0]  # (x, y, z), z = 1 for 2D
    header = _reference_nifti_header(reference)
    if reference is not None and reference.affine is not None:
        affine = reference.affine
    else:
        spacing = reference.spacing if reference is not None else (1.0,) * labels.ndim
        affine = np.diag([*reversed(spacing), *(1.0,) * (4 - len(spacing))])
    image = nib.Nifti1Image(data, affine, header=header)
    image.set_data_dtype(labels.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.header.set_intent(_NIFTI_LABEL_INTENT)
    image.header["cal_min"], image.header["cal_max"] = 0, int(labels.max(initial=0))
    if header is None and reference is not None:
        image.header.set_xyzt_units(xyz=_MICROSCOPY_UNIT)
    with atomic_output(path) as temporary:
        nib.save(image, temporary)


def _reference_nifti_header(reference: ImageData | None) -> Any:
    """The header of the reference's NIfTI file (a copy), or ``None`` for no reference or one of another format.

    ``ImageData`` carries the affine but not the rest of the header (units, qform/sform codes, description), so it
    is read again from the reference's file; a reference file gone since leaves only the affine.
    """
    if reference is None or reference.affine is None or split_extension(reference.path)[1] not in NIFTI_EXTENSIONS:
        return None
    try:
        return nib.load(reference.path).header.copy()
    except (OSError, nib.filebasedimages.ImageFileError):
        return None


def _spacing_unit(reference: ImageData | None) -> str | None:
    """The unit of the reference's spacing as ImageJ and nibabel name it (``"micron"``, ``"mm"``), if known.

    ``ImageData`` keeps no unit. Microscopy formats use micrometres almost always; a NIfTI file says in its header.
    """
    if reference is None:
        return None
    if reference.affine is None:
        return _MICROSCOPY_UNIT
    header = _reference_nifti_header(reference)
    unit = str(header.get_xyzt_units()[0]) if header is not None else "unknown"
    return None if unit == "unknown" else unit


def _display_rgb(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """An ``(H, W, 3)`` ``uint8`` view of a ``(C, H, W)`` image: gray from channel 0, or RGB for 3 channels."""
    channels = image if image.shape[0] == 3 else image[:1]
    stretched = np.stack([_stretch(channel) for channel in channels], axis=-1)
    return np.array(np.broadcast_to(stretched, (*stretched.shape[:2], 3)))


def _stretch(channel: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """One ``(H, W)`` channel scaled to ``0..255`` between its low and high percentiles (0 where it is flat)."""
    values = channel.astype(np.float32)
    low, high = np.percentile(values, _STRETCH_PERCENTILES)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    stretched: npt.NDArray[np.uint8] = np.round(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    return stretched
