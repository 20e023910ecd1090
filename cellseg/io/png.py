"""Read PNG, JPEG and BMP files (through imageio's Pillow plugin) into channels-first ``ImageData``.

Gray -> ``(1, H, W)``, RGB -> ``(3, H, W)``; alpha is dropped (RGBA -> 3 channels, gray+alpha -> 1). 16-bit gray
PNGs stay ``uint16``. Palette images give their palette indices, not the palette's colours: in microscopy the
palette is a display lookup table and the indices are the data (as ImageJ and tifffile treat them), and a label
mask saved with a colour palette keeps its labels. CMYK and other colour spaces are converted to RGB. Only the
first frame of an animated PNG is read. These formats carry no physical pixel size, so spacing is 1.0.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from cellseg.io.errors import ImageReadError, library_errors_as_read_error
from cellseg.io.image import ImageData, check_pixels, spatial_dims_error

PNG_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES_WITH_RGB = (2, 6)  # truecolour, truecolour with alpha
_PALETTE_MODE = "P"
_MODES_SHOWN_AS_RGB = ("CMYK", "YCbCr", "LAB", "HSV")
_ALPHA_MODES = ("LA", "La", "RGBA", "RGBa")


def read_png(path: str | Path) -> ImageData:
    """Read a PNG, JPEG or BMP file as a channels-first 2D image.

    Args:
        path: a ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp`` file, gray or colour, 8-bit (or 16-bit gray PNG).

    Returns:
        ``ImageData`` with ``array`` of shape ``(1, H, W)`` for gray or ``(3, H, W)`` for colour, in the file's
        dtype, and spacing ``(1.0, 1.0)``.

    Raises:
        ImageReadError: the file is missing or corrupt, or is a 16-bit colour PNG (which Pillow would silently cut
            to 8 bits).
    """
    path = Path(path)
    with library_errors_as_read_error(path, "PNG/JPEG/BMP"):
        _refuse_16_bit_colour_png(path)
        mode = str(iio.immeta(path, index=0, plugin="pillow")["mode"])
        if mode == _PALETTE_MODE:
            data = iio.imread(path, index=0, plugin="pillow", mode="P")
        elif mode in _MODES_SHOWN_AS_RGB:
            data = iio.imread(path, index=0, plugin="pillow", mode="RGB")
        else:
            data = iio.imread(path, index=0, plugin="pillow")
        data = np.asarray(data)
    check_pixels(data, path)
    if data.ndim == 2:
        return ImageData(array=data[np.newaxis], spatial_dims=2, spacing=(1.0, 1.0), affine=None, path=path)
    if data.ndim != 3:
        raise spatial_dims_error(path, data.shape)
    if mode in _ALPHA_MODES:
        data = data[..., :-1]
    array = np.ascontiguousarray(data.transpose(2, 0, 1))
    return ImageData(array=array, spatial_dims=2, spacing=(1.0, 1.0), affine=None, path=path)


def _refuse_16_bit_colour_png(path: Path) -> None:
    """Raise an ``ImageReadError`` for a 16-bit RGB(A) PNG: Pillow keeps only its high bytes, without a warning."""
    with path.open("rb") as file:
        header = file.read(26)
    # The IHDR chunk comes first: 8-byte signature, 4-byte length, b"IHDR", width, height, bit depth, colour type.
    if len(header) < 26 or not header.startswith(_PNG_SIGNATURE) or header[12:16] != b"IHDR":
        return
    bit_depth, colour_type = header[24], header[25]
    if bit_depth == 16 and colour_type in _PNG_COLOUR_TYPES_WITH_RGB:
        raise ImageReadError(
            f"{path}: is a 16-bit colour PNG, which cellseg's PNG reader would cut to 8 bits; "
            "save it as a TIFF instead (e.g. with tifffile or Fiji)"
        )
