"""Building blocks of the residual + attention U-Net: residual blocks, attention gates, upsampling, heads.

Shapes use ``N`` for the batch, ``C`` for channels and ``*S`` for the 2 or 3 spatial axes.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

import torch
import torch.nn.functional as F
from torch import nn

from cellseg.models import layers
from cellseg.models.layers import ActivationSpec, NormSpec

UpsampleMode: TypeAlias = Literal["deconv", "interp"]
UPSAMPLE_MODES: tuple[str, ...] = get_args(UpsampleMode)


class ResidualBlock(nn.Module):
    """A pre-activation residual block: ``x + conv(act(norm(conv(act(norm(x))))))``.

    The branch is norm -> activation -> 3x3 conv (carrying the stride) -> norm -> activation -> dropout -> 3x3 conv.
    The shortcut is the identity where the block keeps channels and resolution, and otherwise a learned projection:
    average pooling by the stride (as in ResNet-D and nnU-Net's residual encoder, so no input pixel is skipped), a
    1x1 conv and a norm. Nothing follows the addition, so a stack of blocks keeps a clean identity path (He et al.
    2016, "Identity Mappings in Deep Residual Networks": 6.37% CIFAR-10 error for full pre-activation against 6.61%
    for the original post-activation block); the network closes the stack with a norm and activation in its head.

    With ``zero_init_last`` the second norm's scale starts at zero, so the branch outputs exactly zero and a block
    with an identity shortcut starts as the identity (the activation must map 0 to 0, as ReLU, LeakyReLU, GELU and
    SiLU do).

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels ``C_in`` of the input.
        out_channels: channels ``C_out`` of the output.
        stride: downsampling factor along every spatial axis (1 keeps the resolution).
        norm: normalisation, by name or class (see ``layers.norm``).
        activation: ``"relu"``, ``"leaky_relu"``, ``"gelu"``, ``"silu"`` or an activation class.
        dropout: dropout probability between the two convs.
        zero_init_last: start the second norm's scale at zero.
        convs: 3x3 convs on the branch: 2 (default), or 1 for ``shortcut(x) + conv(act(norm(x)))``, the light block
            of ``ResAttUNet(first_level="light")`` (its second norm, dropout and second conv are ``nn.Identity``).

    Shape:
        input ``(N, C_in, *S)`` -> output ``(N, C_out, *S / stride)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: NormSpec = "batch",
        activation: ActivationSpec = "relu",
        dropout: float = 0.0,
        zero_init_last: bool = False,
        convs: int = 2,
    ) -> None:
        super().__init__()
        if convs not in (1, 2):
            raise ValueError(f"A residual block has 1 or 2 convs on its branch, got {convs}.")
        self.convs = convs
        self.norm1 = layers.norm(norm, spatial_dims, in_channels)
        self.act1 = layers.activation(activation)
        self.conv1 = layers.conv(spatial_dims, in_channels, out_channels, kernel_size=3, stride=stride)
        self.norm2: nn.Module = nn.Identity()
        self.act2: nn.Module = nn.Identity()
        self.drop: nn.Module = nn.Identity()
        self.conv2: nn.Module = nn.Identity()
        if convs == 2:
            self.norm2 = layers.norm(norm, spatial_dims, out_channels)
            self.act2 = layers.activation(activation)
            self.drop = layers.dropout(dropout)
            self.conv2 = layers.conv(spatial_dims, out_channels, out_channels, kernel_size=3)
        self.shortcut: nn.Module
        if in_channels == out_channels and stride == 1:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                layers.avg_pool(spatial_dims, stride) if stride > 1 else nn.Identity(),
                layers.conv(spatial_dims, in_channels, out_channels, kernel_size=1),
                layers.norm(norm, spatial_dims, out_channels),
            )
        if zero_init_last:
            self.zero_init_last()

    def zero_init_last(self) -> None:
        """Set the second norm's scale to zero, so the residual branch outputs zero until it is trained.

        Raises:
            ValueError: the norm has no learned scale (e.g. an ``InstanceNorm`` class without ``affine=True``), or
                the block has one conv (no second norm).
        """
        if self.convs == 1:
            raise ValueError("zero_init_last needs a block with two convs (its second norm); this one has one.")
        scale = getattr(self.norm2, "weight", None)
        if not isinstance(scale, nn.Parameter):
            raise ValueError(
                f"zero_init_last needs a norm with a learned scale; {type(self.norm2).__name__} has none. "
                "Use norm='instance' (affine) or a norm class with a weight."
            )
        nn.init.zeros_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block: ``(N, C_in, *S)`` -> ``(N, C_out, *S / stride)``."""
        branch = self.conv1(self.act1(self.norm1(x)))
        if self.convs == 2:
            branch = self.conv2(self.drop(self.act2(self.norm2(branch))))
        # the sum lands in the branch's own fresh output: no new tensor (no backward needs a conv's output)
        output: torch.Tensor = branch.add_(self.shortcut(x))
        return output


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) that weights a skip connection by a map in [0, 1].

    ``alpha = sigmoid(psi(relu(W_x(skip) + up(W_g(gating)))))`` and the gate returns ``skip * alpha``.

    The gating signal ``g`` is the decoder's feature map one level coarser than the skip, *before* it is
    upsampled, as in Oktay et al. (MONAI's ``AttentionUnet`` takes the already upsampled map instead). Two reasons:
    the coarser map has twice the receptive field of the skip, so it brings the context (is this a cell, is this
    debris) that the gate is there to add; and its 1x1 projection ``W_g`` runs on 1/4 (2D) or 1/8 (3D) of the
    positions. The projected gating map is then upsampled (linear interpolation) to the skip's grid, so ``alpha`` is
    computed, and can be read back, at the skip's full resolution: cell borders are not blurred by a coarse gate.

    Args:
        spatial_dims: 2 or 3.
        skip_channels: channels ``C_x`` of the skip connection.
        gating_channels: channels ``C_g`` of the gating signal.
        inter_channels: channels of the joint space; defaults to ``max(skip_channels // 2, 1)``.
        norm: normalisation after each projection, by name or class.

    Shape:
        skip ``(N, C_x, *S)``, gating ``(N, C_g, *S_g)`` (any coarser or equal grid) ->
        gated skip ``(N, C_x, *S)`` and attention ``(N, 1, *S)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        skip_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        norm: NormSpec = "batch",
    ) -> None:
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(skip_channels // 2, 1)
        self.project_skip = nn.Sequential(
            layers.conv(spatial_dims, skip_channels, inter, kernel_size=1), layers.norm(norm, spatial_dims, inter)
        )
        self.project_gating = nn.Sequential(
            layers.conv(spatial_dims, gating_channels, inter, kernel_size=1), layers.norm(norm, spatial_dims, inter)
        )
        self.relu = nn.ReLU(inplace=True)
        self.psi = layers.conv(spatial_dims, inter, 1, kernel_size=1, bias=True)
        self._interp_mode = "bilinear" if spatial_dims == 2 else "trilinear"

    def forward(self, skip: torch.Tensor, gating: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate ``skip`` ``(N, C_x, *S)`` by ``gating`` ``(N, C_g, *S_g)``; return ``(skip * alpha, alpha)``.

        ``alpha`` has shape ``(N, 1, *S)`` and values in [0, 1].
        """
        gating_projected = self.project_gating(gating)
        if gating_projected.shape[2:] != skip.shape[2:]:
            gating_projected = F.interpolate(
                gating_projected, size=skip.shape[2:], mode=self._interp_mode, align_corners=False
            )
        alpha = torch.sigmoid(self.psi(self.relu(self.project_skip(skip).add_(gating_projected))))
        return skip * alpha, alpha


class Upsample(nn.Module):
    """Upsample by ``scale`` and change channels ``C_in -> C_out``.

    ``"deconv"``: a learned transposed convolution with kernel = stride = ``scale`` (nnU-Net's choice).
    ``"interp"``: a 1x1 conv then linear interpolation. Both are linear maps, so running the 1x1 conv first, on the
    coarse grid, gives the same result as after interpolation at 1/4 (2D) or 1/8 (3D) of the cost.

    Shape:
        ``(N, C_in, *S)`` -> ``(N, C_out, *S * scale)``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, scale: int, mode: UpsampleMode) -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"Unknown upsample mode {mode!r}: use one of {', '.join(UPSAMPLE_MODES)}.")
        self.mode = mode
        self.scale = scale
        self._interp_mode = "bilinear" if spatial_dims == 2 else "trilinear"
        if mode == "deconv":
            self.layer = layers.transposed_conv(spatial_dims, in_channels, out_channels, scale)
        else:
            self.layer = layers.conv(spatial_dims, in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``(N, C_in, *S)`` to ``(N, C_out, *S * scale)``."""
        projected: torch.Tensor = self.layer(x)
        if self.mode == "deconv":
            return projected
        return F.interpolate(projected, scale_factor=self.scale, mode=self._interp_mode, align_corners=False)


class SegmentationHead(nn.Module):
    """Closes a pre-activation stack and maps features to class logits: norm -> activation -> 1x1 conv.

    Shape:
        ``(N, C_in, *S)`` -> ``(N, C_out, *S)`` (logits, no softmax).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        norm: NormSpec = "batch",
        activation: ActivationSpec = "relu",
    ) -> None:
        super().__init__()
        self.norm = layers.norm(norm, spatial_dims, in_channels)
        self.act = layers.activation(activation)
        self.conv = layers.conv(spatial_dims, in_channels, out_channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, *S)`` features to ``(N, C_out, *S)`` logits."""
        logits: torch.Tensor = self.conv(self.act(self.norm(x)))
        return logits
