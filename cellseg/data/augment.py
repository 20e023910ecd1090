"""Data augmentation that runs on the device the batch is on (GPU after transfer, CPU otherwise).

MONAI's dictionary transforms are applied sample by sample to a collated batch, so every sample draws its own
random parameters, and the image and its label map share one spatial transform (labels resampled by nearest
neighbour, so label values survive). In training, the LightningModule calls ``BatchAugmenter`` from
``on_after_batch_transfer``: the batch is already on the GPU and the resampling runs there.

Shapes: a batch holds ``image`` ``(N, C, *S)`` float and ``label`` ``(N, 1, *S)`` integer (instance labels or
target classes); ``S`` is ``(H, W)`` or ``(D, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.transforms.compose import Compose
from monai.transforms.intensity.dictionary import (
    RandAdjustContrastd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.transforms.spatial.dictionary import (
    Rand2DElasticd,
    Rand3DElasticd,
    RandAffined,
    RandFlipd,
    RandRotate90d,
)
from monai.transforms.transform import MapTransform
from monai.utils.type_conversion import convert_to_tensor

IMAGE_KEY = "image"
LABEL_KEY = "label"
ANISOTROPY_TOLERANCE = 1.5


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities and ranges of every augmentation; a probability of 0 switches that one off.

    Attributes:
        flip_prob: probability of a flip, drawn per spatial axis.
        rotate90_prob: probability of a multiple of 90 degrees rotation in the (H, W) plane.
        affine_prob: probability of a random affine (rotation, scale, shear).
        rotate_degrees: largest rotation, in degrees, in the (H, W) plane; volumes with isotropic ``spacing`` also
            rotate about the other axes.
        scale_range: largest relative zoom in or out (0.2 means 0.8x to 1.2x).
        shear_range: largest shear factor.
        elastic_prob: probability of an elastic deformation (off by default: costly, seldom needed for nuclei).
        elastic_control_spacing: 2D: pixels between the control points of the elastic field (its smoothness).
        elastic_sigma: 3D: Gaussian smoothing of the elastic field, in voxels (its smoothness).
        elastic_magnitude: range of the elastic displacement (2D: control-point offsets, in pixels; 3D: the
            magnitude MONAI's ``Rand3DElastic`` multiplies the smoothed field by).
        noise_prob: probability of additive Gaussian noise.
        noise_std: largest standard deviation of the noise (images are normalised to about [0, 1]).
        contrast_prob: probability of a gamma change.
        gamma_range: range of the gamma.
        scale_intensity_prob: probability of multiplying intensities by ``1 + U(-f, f)``.
        scale_intensity_factor: ``f`` above.
        shift_intensity_prob: probability of adding ``U(-o, o)``.
        shift_intensity_offset: ``o`` above.
        blur_prob: probability of a Gaussian blur.
        blur_sigma: range of the blur's sigma, in pixels.
        spacing: physical pixel size per spatial axis (``(z, y, x)`` for volumes); where z is coarser than
            ``ANISOTROPY_TOLERANCE`` times the in-plane size, rotations and flips stay in the (H, W) plane, so a
            flattened z axis is never turned into the image plane.
    """

    flip_prob: float = 0.5
    rotate90_prob: float = 0.5
    affine_prob: float = 0.5
    rotate_degrees: float = 180.0
    scale_range: float = 0.2
    shear_range: float = 0.1
    elastic_prob: float = 0.0
    elastic_control_spacing: float = 32.0
    elastic_sigma: tuple[float, float] = (9.0, 13.0)
    elastic_magnitude: tuple[float, float] = (0.0, 3.0)
    noise_prob: float = 0.3
    noise_std: float = 0.05
    contrast_prob: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    scale_intensity_prob: float = 0.3
    scale_intensity_factor: float = 0.2
    shift_intensity_prob: float = 0.3
    shift_intensity_offset: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    spacing: tuple[float, ...] | None = None


def is_anisotropic(spacing: Sequence[float] | None) -> bool:
    """Whether the first (z) axis is coarser than the others by more than ``ANISOTROPY_TOLERANCE``."""
    if spacing is None or len(spacing) < 3:
        return False
    return spacing[0] > ANISOTROPY_TOLERANCE * min(spacing[1:])


def build_transforms(config: AugmentationConfig, spatial_dims: int, device: torch.device) -> Compose:
    """The MONAI transform chain for one sample: spatial first (image and label), then intensity (image only).

    Args:
        config: what to apply, and how strongly.
        spatial_dims: 2 or 3.
        device: where the affine and elastic resampling runs (the batch's device).

    Returns:
        A ``Compose`` over dictionaries with ``image`` ``(C, *S)`` and ``label`` ``(1, *S)``.
    """
    keys = [IMAGE_KEY, LABEL_KEY]
    modes = ["bilinear", "nearest"]
    in_plane_only = spatial_dims == 3 and is_anisotropic(config.spacing)
    flip_axes = range(1, 3) if in_plane_only else range(spatial_dims)
    plane = (0, 1) if spatial_dims == 2 else (1, 2)
    angle = math.radians(config.rotate_degrees)
    # MONAI rotates about the first spatial axis first: for (D, H, W) volumes that is the in-plane rotation.
    rotate_range = [angle] if spatial_dims == 2 else [angle, 0.0, 0.0] if in_plane_only else [angle] * 3
    scale_range = [config.scale_range] * spatial_dims
    # MONAI's 3D shear factors are (xy, xz, yx, yz, zx, zy) over the spatial axes: yz and zy shear the (H, W) plane.
    shear_range = [config.shear_range] * (2 if spatial_dims == 2 else 6)
    if in_plane_only:
        scale_range[0] = 0.0
        shear_range = [0.0, 0.0, 0.0, config.shear_range, 0.0, config.shear_range]
    spatial: list[MapTransform] = [RandFlipd(keys, prob=config.flip_prob, spatial_axis=axis) for axis in flip_axes]
    spatial.append(RandRotate90d(keys, prob=config.rotate90_prob, max_k=3, spatial_axes=plane))
    spatial.append(
        RandAffined(
            keys,
            prob=config.affine_prob,
            rotate_range=rotate_range,
            scale_range=scale_range,
            shear_range=shear_range,
            mode=modes,
            padding_mode=["reflection", "zeros"],
            device=device,
        )
    )
    if config.elastic_prob > 0:
        elastic_options: dict[str, Any] = {
            "magnitude_range": config.elastic_magnitude,
            "prob": config.elastic_prob,
            "mode": modes,
            "padding_mode": ["reflection", "zeros"],
            "device": device,
        }
        spatial.append(
            Rand2DElasticd(keys, spacing=config.elastic_control_spacing, **elastic_options)
            if spatial_dims == 2
            else Rand3DElasticd(keys, sigma_range=config.elastic_sigma, **elastic_options)
        )
    intensity: list[MapTransform] = [
        RandAdjustContrastd(IMAGE_KEY, prob=config.contrast_prob, gamma=config.gamma_range),
        RandScaleIntensityd(IMAGE_KEY, factors=config.scale_intensity_factor, prob=config.scale_intensity_prob),
        RandShiftIntensityd(IMAGE_KEY, offsets=config.shift_intensity_offset, prob=config.shift_intensity_prob),
        RandGaussianSmoothd(
            IMAGE_KEY,
            sigma_x=config.blur_sigma,
            sigma_y=config.blur_sigma,
            sigma_z=config.blur_sigma,
            prob=config.blur_prob,
        ),
        RandGaussianNoised(IMAGE_KEY, prob=config.noise_prob, std=config.noise_std, sample_std=True),
    ]
    return Compose([*spatial, *intensity])


class BatchAugmenter:
    """Augments a collated batch on its own device, each sample with its own random draw.

    Args:
        config: what to apply, and how strongly.
        spatial_dims: 2 or 3.
        seed: seed of the random draws, so a run can be repeated.
    """

    def __init__(self, config: AugmentationConfig, spatial_dims: int, seed: int = 0) -> None:
        self.config = config
        self.spatial_dims = spatial_dims
        self.seed = seed
        self._transforms: dict[torch.device, Compose] = {}

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment ``image`` ``(N, C, *S)`` and ``label`` ``(N, 1, *S)``; same shapes, dtypes and device out.

        Raises:
            ValueError: image and label differ in batch size, spatial shape or device.
        """
        if image.shape[0] != label.shape[0] or image.shape[2:] != label.shape[2:] or image.device != label.device:
            raise ValueError(
                f"image {tuple(image.shape)} on {image.device} and label {tuple(label.shape)} on {label.device} "
                "must share batch size, spatial shape and device."
            )
        transforms = self._transforms_for(image.device)
        images, labels = [], []
        for sample_image, sample_label in zip(image, label, strict=True):
            # Labels travel as float through the resampler (nearest keeps their values exact).
            augmented = transforms({IMAGE_KEY: sample_image, LABEL_KEY: sample_label.float()})
            images.append(convert_to_tensor(augmented[IMAGE_KEY], track_meta=False))
            labels.append(convert_to_tensor(augmented[LABEL_KEY], track_meta=False))
        return (
            torch.stack(images).to(device=image.device, dtype=image.dtype),
            torch.stack(labels).round().to(device=label.device, dtype=label.dtype),
        )

    def _transforms_for(self, device: torch.device) -> Compose:
        if device not in self._transforms:
            transforms = build_transforms(self.config, self.spatial_dims, device)
            transforms.set_random_state(seed=self.seed)
            self._transforms[device] = transforms
        return self._transforms[device]
