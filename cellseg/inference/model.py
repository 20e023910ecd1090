"""Load a trained model for inference from its checkpoint alone, without executing pickled code.

A cellseg checkpoint carries the network's hyperparameters and how its images were prepared (normalisation
percentiles, channels, tile size) and what its outputs mean; ``load_model`` gathers those into ``LoadedModel``.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cellseg.models.fusion import fold_batch_norms
from cellseg.training.module import SegmentationModule


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: the message names the file and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A trained model in eval mode and everything needed to prepare its input.

    Attributes:
        module: the ``SegmentationModule``, in eval mode, its batch norms folded into the convolutions before them
            where there is one (``fold_batch_norms``: the same outputs, fewer passes); ``module.probabilities(
            module(x))`` maps a normalised ``(N, C, *S)`` batch to ``(N, K, *S)`` probabilities named by
            ``output_names``. For inference only: a folded module is not meant to be trained further.
        path: the checkpoint file.
        sha256: hex digest of the checkpoint file, for provenance.
        output_names: the meaning of the ``K`` output channels, e.g. background, interior, boundary(, distance).
        tile_size: the training patch size, the default sliding-window tile.
        percentiles: intensity normalisation percentiles.
        channel_order: input channels to select, or ``None``.
        in_channels: channels the network takes.
        spatial_dims: 2 or 3.
        stride: the network's total downsampling factor; tile sides must be multiples of it.
        object_diameter: the median object diameter (pixels) of the training masks, which the post-processing's
            size settings scale to; ``None`` for checkpoints that do not record it.
        foreground_threshold: the probability of a cell above which a pixel is foreground, as the model's config
            set it (``model.foreground_threshold``); ``None`` for checkpoints written before it was recorded.
    """

    module: SegmentationModule
    path: Path
    sha256: str
    output_names: list[str]
    tile_size: tuple[int, ...]
    percentiles: tuple[float, float]
    channel_order: list[int] | None
    in_channels: int
    spatial_dims: int
    stride: int
    object_diameter: float | None = None
    foreground_threshold: float | None = None

    @property
    def has_distance(self) -> bool:
        """Whether the model predicts the distance map (and so supports distance-seeded instances)."""
        return "distance" in self.output_names


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path, device: str | torch.device = "cpu", fold_norms: bool = True) -> LoadedModel:
    """Load a cellseg checkpoint safely (``weights_only=True``) and put it in eval mode on ``device``.

    Args:
        path: a ``.ckpt`` written by ``cellseg fit``.
        device: where the network runs.
        fold_norms: fold the batch norms that follow a convolution into it (same outputs to float rounding).

    Returns:
        The model and its preparation settings.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a cellseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; give the .ckpt that 'cellseg fit' wrote (best-*.ckpt).")
    try:
        checkpoint: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises many types for a bad file; each gets the same advice
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}); give a .ckpt from 'cellseg fit'."
        ) from error
    if "cellseg" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(f"{path}: not a cellseg checkpoint (no 'cellseg' entry); train one with 'cellseg fit'.")
    accepted = inspect.signature(SegmentationModule).parameters
    # LightningCLI adds entries of its own (``_instantiator``, ``_class_path``): keep the module's arguments.
    arguments = {key: value for key, value in checkpoint["hyper_parameters"].items() if key in accepted}
    module = SegmentationModule(**arguments)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval().to(device)
    if fold_norms:
        fold_batch_norms(module.network)
    hparams = checkpoint["hyper_parameters"]
    spatial_dims = module.network.spatial_dims
    default_tile = [256, 256] if spatial_dims == 2 else [64, 128, 128]
    lower, upper = hparams.get("percentiles", (1.0, 99.8))
    return LoadedModel(
        module=module,
        path=path,
        sha256=file_sha256(path),
        output_names=list(checkpoint["cellseg"].get("output_names", checkpoint["cellseg"]["class_names"])),
        tile_size=tuple(hparams.get("patch_size") or default_tile),
        percentiles=(float(lower), float(upper)),
        channel_order=hparams.get("channel_order"),
        in_channels=module.network.in_channels,
        spatial_dims=spatial_dims,
        stride=module.network.total_stride,
        object_diameter=module.hparams.get("object_diameter"),
        foreground_threshold=hparams.get("foreground_threshold"),
    )
