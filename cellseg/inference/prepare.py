"""Images prepared for a model as it was trained: percentile normalisation and channel selection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cellseg.data.intensity import convert_channels, percentile_normalise
from cellseg.inference.model import LoadedModel
from cellseg.io.image import ImageData


@dataclass(frozen=True)
class Preparation:
    """How images are prepared for the model, as plain data (it travels to the loader's worker processes)."""

    percentiles: tuple[float, float]
    in_channels: int
    channel_order: list[int] | None
    spatial_dims: int

    @classmethod
    def of(cls, model: LoadedModel) -> Preparation:
        """The preparation a model was trained with."""
        return cls(model.percentiles, model.in_channels, model.channel_order, model.spatial_dims)


def prepare(image: ImageData, preparation: Preparation) -> npt.NDArray[np.float32]:
    """Normalise and select channels as the model was trained: ``(C, *S)`` in, ``(in_channels, *S)`` out.

    Raises:
        ValueError: the image's dimensionality is not the model's.
    """
    if image.spatial_dims != preparation.spatial_dims:
        raise ValueError(
            f"{image.path}: a {image.spatial_dims}D image for a {preparation.spatial_dims}D model; "
            f"give {preparation.spatial_dims}D images or a model trained on {image.spatial_dims}D data."
        )
    normalised = percentile_normalise(image.array, preparation.percentiles)
    converted = convert_channels(normalised, preparation.in_channels, preparation.channel_order)
    return converted.astype(np.float32, copy=False)
