from __future__ import annotations

import dataclasses

import pytest
import torch
from skimage.draw import ellipse

from cellseg.data.augment import AugmentationConfig, BatchAugmenter

SPATIAL_ONLY = AugmentationConfig(
    affine_prob=1.0, noise_prob=0, contrast_prob=0, scale_intensity_prob=0, shift_intensity_prob=0, blur_prob=0
)
INTENSITY_ONLY = AugmentationConfig(
    flip_prob=0, rotate90_prob=0, affine_prob=0, noise_prob=1, contrast_prob=1, scale_intensity_prob=1,
    shift_intensity_prob=1, blur_prob=1,
)  # fmt: skip


def blob_labels(batch: int = 4, size: int = 64) -> torch.Tensor:
    """``(batch, 1, size, size)`` int64 labels: three ellipses of different shapes (no symmetry to hide a flip)."""
    labels = torch.zeros(batch, 1, size, size, dtype=torch.int64)
    for label, (row, col, r_radius, c_radius) in enumerate([(20, 16, 8, 5), (40, 44, 6, 12), (14, 46, 4, 4)], 1):
        rows, cols = ellipse(row, col, r_radius, c_radius, shape=(size, size))
        labels[:, 0, torch.as_tensor(rows), torch.as_tensor(cols)] = label
    return labels


def test_every_sample_draws_its_own_transform() -> None:
    labels = blob_labels(batch=6)
    images, _ = BatchAugmenter(SPATIAL_ONLY, spatial_dims=2)(labels.float(), labels)
    distinct = {tuple(image.flatten().tolist()) for image in images}
    assert len(distinct) == 6


def test_image_and_label_get_the_same_spatial_transform() -> None:
    labels = blob_labels(batch=8)
    config = dataclasses.replace(SPATIAL_ONLY, elastic_prob=1.0)
    images, augmented = BatchAugmenter(config, spatial_dims=2, seed=3)(labels.float(), labels)
    assert not torch.equal(augmented, labels)
    agreement = ((images[:, None] > 0.5) == (augmented[None] > 0)).float().mean(dim=(2, 3, 4))
    # Image i matches label i but no other sample's label (each sample drew its own transform).
    matched = agreement.diagonal()
    mismatched = agreement[~torch.eye(8, dtype=torch.bool)]
    assert matched.min() > 0.95
    assert mismatched.max() < matched.min()


def test_labels_keep_their_values_and_dtype() -> None:
    labels = blob_labels(batch=8)
    _, augmented = BatchAugmenter(SPATIAL_ONLY, spatial_dims=2)(labels.float(), labels)
    assert augmented.dtype == torch.int64
    assert set(augmented.unique().tolist()) <= {0, 1, 2, 3}


def test_intensity_transforms_leave_the_label_alone() -> None:
    labels = blob_labels()
    images = labels.float() / 3
    augmented_images, augmented_labels = BatchAugmenter(INTENSITY_ONLY, spatial_dims=2)(images, labels)
    assert torch.equal(augmented_labels, labels)
    assert not torch.allclose(augmented_images, images)
    assert augmented_images.dtype == images.dtype


def test_same_seed_same_result_and_different_seed_different() -> None:
    labels = blob_labels()
    first = BatchAugmenter(SPATIAL_ONLY, 2, seed=1)(labels.float(), labels)[0]
    again = BatchAugmenter(SPATIAL_ONLY, 2, seed=1)(labels.float(), labels)[0]
    other = BatchAugmenter(SPATIAL_ONLY, 2, seed=2)(labels.float(), labels)[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def z_index_labels() -> torch.Tensor:
    """``(2, 1, 8, 24, 24)`` labels whose value is the z index + 1 on every voxel of a slice."""
    return (torch.arange(8) + 1).view(1, 1, 8, 1, 1).expand(2, 1, 8, 24, 24).clone()


@pytest.mark.parametrize(("spacing", "slices_stay_apart"), [((4.0, 1.0, 1.0), True), ((1.0, 1.0, 1.0), False)])
def test_anisotropic_volumes_are_only_transformed_in_plane(
    spacing: tuple[float, float, float], slices_stay_apart: bool
) -> None:
    labels = z_index_labels()
    config = dataclasses.replace(SPATIAL_ONLY, spacing=spacing, rotate90_prob=1.0, flip_prob=1.0)
    _, augmented = BatchAugmenter(config, spatial_dims=3, seed=0)(labels.float(), labels)
    kept = all(set(augmented[sample, 0, z].unique().tolist()) <= {0, z + 1} for sample in range(2) for z in range(8))
    assert kept is slices_stay_apart


def test_runs_on_the_tensors_device() -> None:
    labels = blob_labels()
    augmenter = BatchAugmenter(SPATIAL_ONLY, 2)
    images, augmented = augmenter(labels.float(), labels)
    assert images.device == augmented.device == labels.device
    assert list(augmenter._transforms) == [labels.device]


@pytest.mark.gpu
def test_runs_on_the_gpu() -> None:
    labels = blob_labels().cuda()
    augmenter = BatchAugmenter(dataclasses.replace(SPATIAL_ONLY, elastic_prob=1.0), 2)
    images, augmented = augmenter(labels.float(), labels)
    assert images.is_cuda
    assert augmented.is_cuda
    assert list(augmenter._transforms) == [labels.device]


def test_mismatched_image_and_label_are_refused() -> None:
    with pytest.raises(ValueError, match="must share batch size, spatial shape and device"):
        BatchAugmenter(SPATIAL_ONLY, 2)(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9))
