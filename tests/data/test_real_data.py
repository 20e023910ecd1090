"""Checks on the real annotated microscopy in ../shared/data (skipped where it is absent; never copied here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellseg.data.dataset import load_pairs
from cellseg.io import discover_pairs

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real_data_set(name: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / "metadata.csv").exists():
        pytest.skip(f"real data {folder} is absent (it lives beside the repository, in shared/data)")
    return folder


@pytest.mark.parametrize(("name", "count"), [("dsb2018_train", 664), ("usiigaci_train", 45)])
def test_real_data_sets_are_discovered_whole(name: str, count: int) -> None:
    discovery = discover_pairs(real_data_set(name))
    assert discovery.layout == "stardist"
    assert len(discovery.pairs) == count
    assert not discovery.images_without_mask
    assert not discovery.masks_without_image


@pytest.mark.filterwarnings("ignore:RGB images are converted to gray")
def test_dsb_colour_and_gray_images_load_as_one_normalised_channel() -> None:
    pairs = discover_pairs(real_data_set("dsb2018_train")).pairs
    # The first pairs by name hold both 1-channel fluorescence and 3-channel stained images.
    samples, skipped = load_pairs(pairs[:6], spatial_dims=2, in_channels=1)
    assert not skipped
    for sample in samples:
        assert sample.image.shape[0] == 1
        assert sample.image.shape[1:] == sample.labels.shape
        assert 0.3 < float(np.percentile(sample.image, 99)) < 1.5
        assert sample.labels.max() > 0


def test_usiigaci_16_bit_phase_contrast_normalises_despite_saturation() -> None:
    pairs = discover_pairs(real_data_set("usiigaci_train")).pairs
    samples, skipped = load_pairs(pairs[:2], spatial_dims=2, in_channels=1)
    assert not skipped
    for sample in samples:
        assert sample.image.shape == (1, 1022, 1024)
        low, median, high = np.percentile(sample.image, (1, 50, 99.8))
        assert low == pytest.approx(0, abs=1e-3)
        assert high == pytest.approx(1, abs=1e-2)
        assert 0.05 < median < 0.95
