from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from scipy import ndimage

from cellseg.data.synthetic import SyntheticConfig, generate_sample, write_dataset

SMALL_2D = SyntheticConfig(shape=(128, 128), n_nuclei=(10, 15))
SMALL_3D = SyntheticConfig(shape=(24, 48, 48), n_nuclei=(4, 6), radius=(5.0, 7.0))
DENSE_2D = SyntheticConfig(shape=(128, 128), n_nuclei=(25, 25), cluster_fraction=0.6)


def touching_pairs(labels: npt.NDArray[np.uint16]) -> set[tuple[int, int]]:
    """Pairs of labels (smaller first) that are face neighbours somewhere."""
    pairs: set[tuple[int, int]] = set()
    for axis in range(labels.ndim):
        moved = np.moveaxis(labels, axis, 0)
        a, b = moved[:-1].ravel(), moved[1:].ravel()
        border = (a != b) & (a > 0) & (b > 0)
        pairs |= set(zip(np.minimum(a, b)[border].tolist(), np.maximum(a, b)[border].tolist(), strict=True))
    return pairs


def extents(labels: npt.NDArray[np.uint16]) -> npt.NDArray[np.int_]:
    """Bounding-box size of every label along every axis, shape ``(N, ndim)``."""
    boxes = [box for box in ndimage.find_objects(labels) if box is not None]
    return np.array([[s.stop - s.start for s in box] for box in boxes])


@pytest.mark.parametrize("config", [SMALL_2D, SMALL_3D], ids=["2d", "3d"])
def test_same_seed_gives_identical_arrays(config: SyntheticConfig) -> None:
    first, second = generate_sample(config, seed=7), generate_sample(config, seed=7)
    assert first.image.tobytes() == second.image.tobytes()
    assert first.labels.tobytes() == second.labels.tobytes()


def test_different_seeds_give_different_samples() -> None:
    first, second = generate_sample(SMALL_2D, seed=1), generate_sample(SMALL_2D, seed=2)
    assert not np.array_equal(first.labels, second.labels)
    assert not np.array_equal(first.image, second.image)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("config", [SMALL_2D, SMALL_3D, DENSE_2D], ids=["2d", "3d", "dense"])
def test_labels_are_a_clean_instance_mask(config: SyntheticConfig, seed: int) -> None:
    labels = generate_sample(config, seed).labels
    assert labels.dtype == np.uint16
    assert labels.shape == config.shape
    count = int(labels.max())
    assert count >= 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(count + 1))
    sizes = np.bincount(labels.ravel())
    assert sizes[0] > 0, "no background"
    assert sizes[1:].min() >= config.min_size
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        assert box is not None
        _, components = ndimage.label(labels[box] == index)
        assert components == 1, f"label {index} has {components} connected components"


def test_nucleus_count_follows_the_config() -> None:
    counts = [int(generate_sample(SMALL_2D, seed).labels.max()) for seed in range(4)]
    # A nucleus cut to a sliver by the border is dropped, so a few may go missing, never more than asked.
    assert all(7 <= count <= 15 for count in counts)


def test_clustered_nuclei_touch_and_free_ones_do_not() -> None:
    dense = generate_sample(DENSE_2D, seed=3).labels
    assert len(touching_pairs(dense)) >= 3
    apart = SyntheticConfig(shape=(128, 128), n_nuclei=(25, 25), cluster_fraction=0.0)
    assert touching_pairs(generate_sample(apart, seed=3).labels) == set()


@pytest.mark.parametrize("seed", range(3))
def test_image_looks_like_nuclei_on_a_dark_noisy_background(seed: int) -> None:
    sample = generate_sample(SMALL_2D, seed)
    image = sample.image.astype(np.float64)
    assert sample.image.dtype == np.uint16
    assert image.max() <= SMALL_2D.max_value
    nuclei = ndimage.binary_erosion(sample.labels > 0, iterations=2)
    background = ndimage.binary_erosion(sample.labels == 0, iterations=4)
    assert image[nuclei].mean() > 3 * image[background].mean()
    assert image[background].mean() > 0, "background offset missing"
    # Noise: pixel-to-pixel variation that smoothing removes, even in the flat background.
    residual = image - ndimage.uniform_filter(image, size=3)
    assert residual[background].std() > 2.0


def test_image_brightness_differs_between_nuclei() -> None:
    sample = generate_sample(SMALL_2D, seed=0)
    means = ndimage.mean(sample.image, sample.labels, index=np.arange(1, int(sample.labels.max()) + 1))
    assert np.std(means) > 0.05 * np.mean(means)


def test_float32_output_lies_in_unit_range() -> None:
    sample = generate_sample(SyntheticConfig(shape=(96, 96), n_nuclei=(5, 5), dtype="float32"), seed=0)
    assert sample.image.dtype == np.float32
    assert 0.0 <= sample.image.min() < sample.image.max() <= 1.0


def test_3d_coarse_z_spacing_flattens_nuclei_in_voxels() -> None:
    isotropic = SyntheticConfig(shape=(48, 48, 48), n_nuclei=(6, 6), radius=(6.0, 8.0), elongation=(1.0, 1.0))
    anisotropic = SyntheticConfig(
        shape=(16, 48, 48), spacing=(3.0, 1.0, 1.0), n_nuclei=(6, 6), radius=(6.0, 8.0), elongation=(1.0, 1.0)
    )
    round_sample, flat_sample = generate_sample(isotropic, seed=0), generate_sample(anisotropic, seed=0)
    assert round_sample.image.shape == round_sample.labels.shape == (48, 48, 48)
    assert flat_sample.image.shape == flat_sample.labels.shape == (16, 48, 48)
    round_z, round_y, _ = np.median(extents(round_sample.labels), axis=0)
    flat_z, flat_y, _ = np.median(extents(flat_sample.labels), axis=0)
    assert round_z > 0.7 * round_y
    assert flat_z < 0.5 * flat_y


@pytest.mark.parametrize(
    ("layout", "image_path", "mask_path"),
    [("stardist", "images/{}.tif", "masks/{}.tif"), ("cellpose", "{}.tif", "{}_masks.tif")],
)
def test_write_dataset_writes_readable_tiffs(tmp_path: Path, layout: str, image_path: str, mask_path: str) -> None:
    config = SyntheticConfig(shape=(64, 80), n_nuclei=(3, 5))
    names = write_dataset(tmp_path, 3, config, seed=5, layout=layout)  # type: ignore[arg-type]
    assert names == ["synthetic_000", "synthetic_001", "synthetic_002"]
    for index, name in enumerate(names):
        expected = generate_sample(config, (5, index))
        image = tifffile.imread(tmp_path / image_path.format(name))
        mask = tifffile.imread(tmp_path / mask_path.format(name))
        assert image.shape == mask.shape == (64, 80)
        np.testing.assert_array_equal(image, expected.image)
        np.testing.assert_array_equal(mask, expected.labels)
        with tifffile.TiffFile(tmp_path / mask_path.format(name)) as tiff:
            assert tiff.pages[0].compression != tifffile.COMPRESSION.NONE
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted([image_path.format(n) for n in names] + [mask_path.format(n) for n in names])


def test_write_dataset_is_byte_identical_for_a_seed_and_writes_3d(tmp_path: Path) -> None:
    config = SyntheticConfig(shape=(8, 32, 32), n_nuclei=(2, 3), radius=(4.0, 6.0))
    first = write_dataset(tmp_path / "a", 2, config, seed=1)
    second = write_dataset(tmp_path / "b", 2, config, seed=1)
    assert first == second
    for name in first:
        for kind in ("images", "masks"):
            path_a, path_b = tmp_path / "a" / kind / f"{name}.tif", tmp_path / "b" / kind / f"{name}.tif"
            assert path_a.read_bytes() == path_b.read_bytes()
            assert tifffile.imread(path_a).shape == (8, 32, 32)
    other = write_dataset(tmp_path / "c", 1, config, seed=2)
    assert not np.array_equal(
        tifffile.imread(tmp_path / "a" / "images" / f"{first[0]}.tif"),
        tifffile.imread(tmp_path / "c" / "images" / f"{other[0]}.tif"),
    )


def test_write_dataset_rejects_an_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stardist, cellpose"):
        write_dataset(tmp_path, 1, SMALL_2D, layout="nnunet")  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shape": (64,)}, "shape"),
        ({"shape": (8, 64, 64), "spacing": (1.0, 1.0)}, "spacing"),
        ({"radius": (9.0, 3.0)}, "radius"),
        ({"cluster_fraction": 1.5}, "cluster_fraction"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**changes)  # type: ignore[arg-type]
