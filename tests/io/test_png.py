from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import numpy.typing as npt
import pytest

from cellseg.io import ImageReadError, read_image, read_mask


def _ramp(shape: tuple[int, ...], dtype: npt.DTypeLike = np.uint8) -> npt.NDArray[Any]:
    return (np.arange(int(np.prod(shape))) % 251).reshape(shape).astype(dtype)


def _write_png(path: Path, data: npt.NDArray[Any], colour_type: int, palette: bytes = b"") -> None:
    """A minimal PNG writer (no filtering), for the files Pillow cannot write: 16-bit colour, exact palettes.

    ``data`` is ``(H, W, samples)``; ``uint8`` or ``uint16`` sets the bit depth.
    """
    height, width = data.shape[:2]
    bit_depth = 8 * data.dtype.itemsize
    rows = b"".join(b"\x00" + data[y].astype(f">u{data.dtype.itemsize}").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + (chunk(b"PLTE", palette) if palette else b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("extension", [".png", ".bmp"])
def test_gray_is_one_channel(tmp_path: Path, extension: str) -> None:
    data = _ramp((5, 7))
    iio.imwrite(tmp_path / f"a{extension}", data)
    image = read_image(tmp_path / f"a{extension}")
    assert image.array.shape == (1, 5, 7)
    assert image.array.dtype == np.uint8
    np.testing.assert_array_equal(image.array[0], data)
    assert image.spatial_dims == 2
    assert image.spacing == (1.0, 1.0)
    assert image.affine is None


def test_16_bit_gray_png_stays_uint16(tmp_path: Path) -> None:
    data = (_ramp((5, 7), np.uint16) * 250).astype(np.uint16)
    assert data.max() > 255
    iio.imwrite(tmp_path / "a.png", data)
    image = read_image(tmp_path / "a.png")
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array[0], data)


@pytest.mark.parametrize("extension", [".png", ".bmp"])
def test_rgb_goes_channels_first(tmp_path: Path, extension: str) -> None:
    data = _ramp((5, 7, 3))
    iio.imwrite(tmp_path / f"a{extension}", data)
    image = read_image(tmp_path / f"a{extension}")
    assert image.array.shape == (3, 5, 7)
    np.testing.assert_array_equal(image.array, data.transpose(2, 0, 1))


@pytest.mark.parametrize(("samples", "channels"), [(4, 3), (2, 1)])
def test_alpha_is_dropped(tmp_path: Path, samples: int, channels: int) -> None:
    data = _ramp((5, 7, samples))
    iio.imwrite(tmp_path / "a.png", data)
    image = read_image(tmp_path / "a.png")
    assert image.array.shape == (channels, 5, 7)
    np.testing.assert_array_equal(image.array, data[..., :channels].transpose(2, 0, 1))


@pytest.mark.parametrize("extension", [".jpg", ".jpeg"])
def test_jpeg_gray_and_rgb(tmp_path: Path, extension: str) -> None:
    gray = np.full((8, 8), 100, np.uint8)
    rgb = np.full((8, 8, 3), (10, 120, 230), np.uint8)
    iio.imwrite(tmp_path / f"g{extension}", gray)
    iio.imwrite(tmp_path / f"c{extension}", rgb)
    gray_image, rgb_image = read_image(tmp_path / f"g{extension}"), read_image(tmp_path / f"c{extension}")
    assert gray_image.array.shape == (1, 8, 8)
    assert rgb_image.array.shape == (3, 8, 8)
    # JPEG is lossy: flat colours come back within a few grey levels.
    np.testing.assert_allclose(gray_image.array[0], gray, atol=3)
    np.testing.assert_allclose(rgb_image.array, rgb.transpose(2, 0, 1), atol=3)


def test_palette_png_gives_indices_so_masks_keep_labels(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 2], [3, 2, 1]], np.uint8)
    palette = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    _write_png(tmp_path / "m.png", labels[..., np.newaxis], colour_type=3, palette=palette)
    image = read_image(tmp_path / "m.png")
    assert image.array.shape == (1, 2, 3)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), labels)


def test_16_bit_gray_png_from_other_writers(tmp_path: Path) -> None:
    data = (_ramp((5, 7, 1), np.uint16) * 257).astype(np.uint16)
    _write_png(tmp_path / "a.png", data, colour_type=0)
    image = read_image(tmp_path / "a.png")
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array, data.transpose(2, 0, 1))


@pytest.mark.parametrize("samples", [3, 4])
def test_16_bit_colour_png_is_refused_rather_than_cut_to_8_bits(tmp_path: Path, samples: int) -> None:
    _write_png(tmp_path / "a.png", _ramp((5, 7, samples), np.uint16), colour_type={3: 2, 4: 6}[samples])
    with pytest.raises(ImageReadError, match=r"16-bit colour PNG.*save it as a TIFF"):
        read_image(tmp_path / "a.png")


def test_corrupt_png_is_a_read_error(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", _ramp((16, 16)))
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    with pytest.raises(ImageReadError, match=r"b\.png: cannot be read as PNG/JPEG/BMP"):
        read_image(tmp_path / "b.png")
