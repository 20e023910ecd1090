"""Networks: ``ResAttUNet`` and the blocks it is built from (plain ``nn.Module``s, no training logic)."""

from cellseg.models.blocks import AttentionGate, ResidualBlock, SegmentationHead, Upsample
from cellseg.models.unet import ResAttUNet, ResAttUNetOutput

__all__ = ["AttentionGate", "ResAttUNet", "ResAttUNetOutput", "ResidualBlock", "SegmentationHead", "Upsample"]
