"""Inference-time folding of batch norms into the convolutions before them: the same outputs, fewer passes.

In eval mode a ``BatchNorm`` is a fixed per-channel affine map, so one that directly follows a convolution can be
folded into that convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and replaced by the
identity: the network computes the same function (to float rounding) with one pass over memory fewer per fold. On a
CPU at small widths those elementwise passes cost as much as a good share of the convolutions.

In the residual + attention U-Net the foldable pairs are: a residual block's first conv and its second norm, the
projection shortcut's 1x1 conv and norm, and both 1x1 projections of an attention gate. A block's first norm (it
normalises the sum of the shortcut and the branch, which the next block's identity shortcut also reads) and the
head's norm (before an activation) have no convolution directly before them and stay.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cellseg.models.blocks import ResidualBlock

_CONVOLUTIONS = (nn.Conv2d, nn.Conv3d)


def fold_batch_norms(network: nn.Module) -> int:
    """Fold, in place, every batch norm that directly follows a convolution into it; return how many were folded.

    Args:
        network: a network in eval mode (its norms use their running statistics, which get baked in).

    Returns:
        The number of norms folded; each is replaced by ``nn.Identity``.

    Raises:
        ValueError: ``network`` is in training mode (a training norm uses batch statistics; folding would change
            the function it computes).
    """
    if network.training:
        raise ValueError("fold_batch_norms needs a network in eval mode (call .eval() first); it is training.")
    folded = 0
    for module in list(network.modules()):
        if isinstance(module, ResidualBlock) and _foldable(module.conv1, module.norm2):
            module.conv1 = _fused(module.conv1, module.norm2)
            module.norm2 = nn.Identity()
            folded += 1
        elif isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                if _foldable(module[index], module[index + 1]):
                    module[index] = _fused(module[index], module[index + 1])
                    module[index + 1] = nn.Identity()
                    folded += 1
    return folded


def _foldable(convolution: nn.Module, norm: nn.Module) -> bool:
    """Whether ``norm`` is a batch norm with running statistics over ``convolution``'s output channels."""
    return (
        isinstance(convolution, _CONVOLUTIONS)
        and isinstance(norm, _BatchNorm)
        and norm.track_running_stats
        and norm.running_mean is not None
        and convolution.out_channels == norm.num_features
    )


def _fused(convolution: nn.Module, norm: nn.Module) -> nn.Module:
    """``convolution`` with ``norm`` folded in (a new module, with a bias), in the convolution's memory format."""
    assert isinstance(convolution, _CONVOLUTIONS)
    assert isinstance(norm, _BatchNorm)
    fused = fuse_conv_bn_eval(convolution, norm)
    if isinstance(convolution, nn.Conv2d) and convolution.weight.stride(1) == 1:  # NHWC weights (2D inference)
        fused = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return fused
