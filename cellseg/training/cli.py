"""``cellseg fit``: LightningCLI over ``SegmentationModule`` and ``CellDataModule``, configured by YAML.

The configs in ``configs/`` hold only what differs from the defaults set here; the resolved config is saved next
to the checkpoints (``config.yaml`` in the run's log folder). Arguments that the model must remember for
``predict`` (patch size, normalisation, channel order) are linked from the data section, and the data section
learns the network's dimensionality and input channels from the model section, so each is stated once.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from cellseg.data.datamodule import CellDataModule
from cellseg.models import ResAttUNet
from cellseg.training.curves import LearningCurves
from cellseg.training.module import SegmentationModule

DEFAULT_CHANNELS: tuple[int, ...] = tuple(inspect.signature(ResAttUNet).parameters["channels"].default)


def network_spatial_dims(network: dict[str, Any] | None) -> int:
    """The network's ``spatial_dims`` (2 unless the config says otherwise)."""
    return int((network or {}).get("spatial_dims", 2))


def network_in_channels(network: dict[str, Any] | None) -> int:
    """The network's ``in_channels`` (1 unless the config says otherwise)."""
    return int((network or {}).get("in_channels", 1))


def network_total_stride(network: dict[str, Any] | None) -> int:
    """The network's total stride, ``fold * 2 ** (levels - 1)``: validation images are cropped to a multiple of it."""
    channels = (network or {}).get("channels", DEFAULT_CHANNELS)
    return int((network or {}).get("fold", 1)) * int(2 ** (len(channels) - 1))


class CellsegCLI(LightningCLI):
    """LightningCLI with cellseg's checkpointing defaults and the links between model and data arguments."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the checkpoint callback's arguments and link what model and data share."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/dice",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(LearningCurves, "learning_curves")
        parser.set_defaults(
            {
                "trainer.logger": [
                    {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
                    {
                        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                        "init_args": {"save_dir": "runs", "name": "tensorboard"},
                    },
                ]
            }
        )
        parser.link_arguments("trainer.default_root_dir", "trainer.logger.init_args.save_dir")
        parser.link_arguments("data.patch_size", "model.patch_size")
        parser.link_arguments("data.percentiles", "model.percentiles")
        parser.link_arguments("data.channel_order", "model.channel_order")
        parser.link_arguments("model.network", "data.spatial_dims", compute_fn=network_spatial_dims)
        parser.link_arguments("model.network", "data.in_channels", compute_fn=network_in_channels)
        parser.link_arguments("model.network", "data.size_divisor", compute_fn=network_total_stride)


def run_fit(arguments: Sequence[str]) -> CellsegCLI:
    """Run ``cellseg fit ARGUMENTS`` (``--config FILE``, ``--trainer.max_epochs N``, ``--ckpt_path last``, ...).

    Returns:
        The CLI, whose ``trainer.checkpoint_callback`` knows where the best and last checkpoints went.
    """
    with warnings.catch_warnings():
        # We do pass both: cellseg's own argv reaches LightningCLI through ``args``, on purpose.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        # Known, harmless notices of Lightning 2.6 on torch 2.13 / jsonargparse 4.5x, and our on-device augmentation.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="lightning")
        return CellsegCLI(
            SegmentationModule,
            CellDataModule,
            args=["fit", *arguments],
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"fit": {"description": "Train a cellseg model on a folder of images and masks."}},
        )
