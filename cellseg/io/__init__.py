"""Reading images and masks (TIFF, PNG/JPEG/BMP, NIfTI) channels-first, and finding image/mask pairs in folders."""

from cellseg.io.discovery import DiscoveryResult, ImagePair, discover_pairs
from cellseg.io.errors import DatasetError, ImageReadError
from cellseg.io.image import ImageData
from cellseg.io.readers import SUPPORTED_EXTENSIONS, read_image, read_mask, split_extension

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "DatasetError",
    "DiscoveryResult",
    "ImageData",
    "ImagePair",
    "ImageReadError",
    "discover_pairs",
    "read_image",
    "read_mask",
    "split_extension",
]
