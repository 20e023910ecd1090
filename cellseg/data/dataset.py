"""Decoded, normalised training images in memory, and the datasets that sample patches or whole images from them.

Shapes: images ``(C, *S)`` float32 (normalised, ``in_channels`` channels), labels ``(*S)`` int32 (0 = background),
``S`` being ``(H, W)`` or ``(D, H, W)``. Datasets yield ``{"image": (C, *P), "label": (1, *P)}`` tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from cellseg.data.intensity import convert_channels, percentile_normalise
from cellseg.io import ImagePair, ImageReadError, read_image, read_mask

Sample = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LoadedSample:
    """One annotated image, decoded and normalised: ``image`` ``(C, *S)`` float32, ``labels`` ``(*S)`` int32."""

    name: str
    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int32]


def load_pair(
    pair: ImagePair,
    spatial_dims: int,
    in_channels: int,
    channel_order: Sequence[int] | None,
    percentiles: tuple[float, float],
) -> LoadedSample:
    """Read, check, normalise and convert one image/mask pair.

    Raises:
        ImageReadError: a file cannot be read, has the wrong dimensionality, the two sizes differ, or the mask
            has no object; the message names the file and what to do.
    """
    image = read_image(pair.image)
    labels = read_mask(pair.mask)
    if image.spatial_dims != spatial_dims:
        raise ImageReadError(
            f"{pair.image}: is {image.spatial_dims}D but the config trains a {spatial_dims}D network; "
            "set spatial_dims or remove the file"
        )
    if image.array.shape[1:] != labels.shape:
        raise ImageReadError(
            f"{pair.mask}: mask size {labels.shape} differs from its image's {image.array.shape[1:]} "
            f"({pair.image.name}); pair each image with its own mask"
        )
    if not labels.any():
        raise ImageReadError(f"{pair.mask}: has no object (all background); draw its cells or remove the pair")
    normalised = percentile_normalise(image.array, percentiles)
    converted = convert_channels(normalised, in_channels, channel_order, source=str(pair.image))
    return LoadedSample(pair.name, np.ascontiguousarray(converted), labels.astype(np.int32))


def load_pairs(
    pairs: Sequence[ImagePair],
    spatial_dims: int,
    in_channels: int,
    channel_order: Sequence[int] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.8),
) -> tuple[list[LoadedSample], list[str]]:
    """Load every pair that can be used; warn once per pair that cannot, and say which were skipped.

    Returns:
        The loaded samples, in the order of ``pairs``, and one line per skipped pair.
    """
    loaded, skipped = [], []
    for pair in pairs:
        try:
            loaded.append(load_pair(pair, spatial_dims, in_channels, channel_order, percentiles))
        except ImageReadError as error:
            warnings.warn(f"skipped: {error}", UserWarning, stacklevel=2)
            skipped.append(str(error))
    return loaded, skipped


def _pad_to(array: npt.NDArray[np.generic], size: Sequence[int], mode: str) -> npt.NDArray[np.generic]:
    """Pad the trailing ``len(size)`` axes of ``array`` at their end up to at least ``size``."""
    lead = array.ndim - len(size)
    growth = [max(target - have, 0) for have, target in zip(array.shape[lead:], size, strict=True)]
    widths = [(0, 0)] * lead + [(0, after) for after in growth]
    if all(after == 0 for _, after in widths):
        return array
    return np.pad(array, widths, mode=mode)  # type: ignore[call-overload,no-any-return]


class PatchDataset(Dataset[Sample]):
    """Random patches of ``patch_size`` from the samples, centred on a cell with probability ``foreground_ratio``.

    Favouring foreground keeps sparse images (a few nuclei in a large field) from training mostly on background.
    Images smaller than the patch are padded (image by reflection, labels with background). The random draws are
    seeded from torch's generator (which ``seed_everything`` and the DataLoader's worker seeding control) and the
    index, so each epoch, worker and DDP process draws new patches and a seeded run repeats.

    Args:
        samples: the decoded training images.
        patch_size: ``P``, one size per spatial axis.
        length: patches per epoch.
        foreground_ratio: probability that a patch is centred on a random foreground pixel.
    """

    def __init__(
        self, samples: Sequence[LoadedSample], patch_size: Sequence[int], length: int, foreground_ratio: float = 0.7
    ) -> None:
        if not samples:
            raise ValueError("PatchDataset needs at least one sample.")
        self.samples = list(samples)
        self.patch_size = tuple(patch_size)
        self.length = length
        self.foreground_ratio = foreground_ratio
        # Larger images hold more cells: draw them in proportion to their area.
        areas = np.array([s.labels.size for s in self.samples], dtype=np.float64)
        self.image_weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        # The draw mixes torch's generator (new every epoch and worker, repeatable under seed_everything) with the
        # index: under DDP every process starts from the same seed but the sampler hands each different indices,
        # so the processes cut different patches instead of the same ones.
        rng = np.random.default_rng([int(torch.randint(2**31, ())), index])
        sample = self.samples[int(rng.choice(len(self.samples), p=self.image_weights))]
        image = _pad_to(sample.image, self.patch_size, "reflect")
        labels = _pad_to(sample.labels, self.patch_size, "constant")
        spatial_shape = labels.shape
        if rng.random() < self.foreground_ratio and labels.any():
            foreground = np.flatnonzero(labels)
            centre = np.unravel_index(foreground[rng.integers(len(foreground))], spatial_shape)
            starts = [
                int(np.clip(c - p // 2, 0, s - p))
                for c, p, s in zip(centre, self.patch_size, spatial_shape, strict=True)
            ]
        else:
            starts = [int(rng.integers(s - p + 1)) for p, s in zip(self.patch_size, spatial_shape, strict=True)]
        window = tuple(slice(start, start + p) for start, p in zip(starts, self.patch_size, strict=True))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image[(slice(None), *window)])),
            "label": torch.from_numpy(np.ascontiguousarray(labels[window]))[None].long(),
        }


class WholeImageDataset(Dataset[Sample]):
    """Whole images for validation, cropped at their far edges to a multiple of ``size_divisor``.

    Cropping, not padding, so the network takes them as they are and no padded pixel counts in the metrics.

    Images smaller than ``size_divisor`` along an axis are padded up to it (labels with background).
    """

    def __init__(self, samples: Sequence[LoadedSample], size_divisor: int) -> None:
        self.samples = list(samples)
        self.size_divisor = size_divisor

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        sample = self.samples[index]
        minimum = [self.size_divisor] * sample.labels.ndim
        image = _pad_to(sample.image, minimum, "reflect")
        labels = _pad_to(sample.labels, minimum, "constant")
        window = tuple(slice(0, s - s % self.size_divisor) for s in labels.shape)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image[(slice(None), *window)])),
            "label": torch.from_numpy(np.ascontiguousarray(labels[window]))[None].long(),
        }
