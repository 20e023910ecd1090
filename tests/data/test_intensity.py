from __future__ import annotations

import warnings

import numpy as np
import pytest

from cellseg.data import intensity
from cellseg.data.intensity import convert_channels, percentile_normalise


def test_percentiles_ignore_saturated_highlights() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(5000, 9000, size=(1, 64, 64)).astype(np.uint16)
    image[0, :2, :2] = 65535  # saturated pixels: 0.1% of the image
    normalised = percentile_normalise(image)
    assert normalised.dtype == np.float32
    assert np.percentile(normalised, 50) == pytest.approx(0.5, abs=0.05)
    assert normalised.max() > 10  # kept, not clipped


def test_each_channel_is_normalised_on_its_own_and_constant_gives_zero() -> None:
    image = np.stack([np.linspace(0, 10, 100), np.linspace(1000, 5000, 100), np.full(100, 7.0)]).reshape(3, 10, 10)
    normalised = percentile_normalise(image, (0.0, 100.0))
    assert normalised[0].min() == 0
    assert normalised[1].max() == pytest.approx(1)
    assert not normalised[2].any()


def test_bad_percentiles_are_refused() -> None:
    with pytest.raises(ValueError, match="low < high"):
        percentile_normalise(np.zeros((1, 4, 4)), (99.0, 1.0))


@pytest.fixture(autouse=True)
def _forget_warnings() -> None:
    intensity._warned.clear()


def test_gray_is_repeated_to_rgb() -> None:
    gray = np.random.default_rng(0).random((1, 4, 4), dtype=np.float32)
    rgb = convert_channels(gray, 3)
    assert rgb.shape == (3, 4, 4)
    assert all(np.array_equal(rgb[c], gray[0]) for c in range(3))


def test_rgb_to_gray_uses_luma_and_warns_once() -> None:
    rgb = np.zeros((3, 2, 2), dtype=np.float32)
    rgb[1] = 1.0  # pure green
    with pytest.warns(UserWarning, match="converted to gray"):
        gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 2, 2)
    assert np.allclose(gray, 0.587)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_channels(rgb, 1)  # a second conversion stays silent


def test_channel_order_picks_and_reorders() -> None:
    image = np.arange(3, dtype=np.float32).reshape(3, 1, 1) * np.ones((3, 2, 2), dtype=np.float32)
    picked = convert_channels(image, 2, channel_order=[2, 0])
    assert picked[:, 0, 0].tolist() == [2.0, 0.0]


def test_channel_order_out_of_range_names_the_file() -> None:
    with pytest.raises(ValueError, match=r"cells\.tif: channel_order \[0, 3\]"):
        convert_channels(np.zeros((2, 2, 2), dtype=np.float32), 2, channel_order=[0, 3], source="cells.tif")


def test_more_channels_keep_the_first_and_fewer_are_zero_padded() -> None:
    four = np.ones((4, 2, 2), dtype=np.float32)
    with pytest.warns(UserWarning, match="keep their first 2"):
        assert convert_channels(four, 2).shape == (2, 2, 2)
    two = np.ones((2, 2, 2), dtype=np.float32)
    padded = convert_channels(two, 3)
    assert padded.shape == (3, 2, 2)
    assert not padded[2].any()
