"""``ResAttUNet``: a U-Net of pre-activation residual blocks with additive attention gates on its skips.

Shapes use ``N`` for the batch, ``C`` for channels and ``*S`` for the 2 or 3 spatial axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, TypeAlias, get_args

import torch
from torch import nn

from cellseg.models import layers
from cellseg.models.blocks import AttentionGate, ResidualBlock, SegmentationHead, Upsample, UpsampleMode
from cellseg.models.layers import ActivationSpec, NormSpec

DownsampleMode: TypeAlias = Literal["conv", "maxpool"]
AttentionMode: TypeAlias = Literal["additive", "none"]
FirstLevel: TypeAlias = Literal["full", "light"]
SkipMerge: TypeAlias = Literal["concat", "add"]
DOWNSAMPLE_MODES: tuple[str, ...] = get_args(DownsampleMode)
ATTENTION_MODES: tuple[str, ...] = get_args(AttentionMode)
FIRST_LEVELS: tuple[str, ...] = get_args(FirstLevel)
SKIP_MERGES: tuple[str, ...] = get_args(SkipMerge)
LEVEL_SCALE = 2


class ResAttUNetOutput(NamedTuple):
    """Everything one forward pass of ``ResAttUNet`` can return.

    Attributes:
        logits: class logits at the input's resolution, ``(N, out_channels, *S)``.
        deep_logits: logits of the deep supervision heads, finest first, the ``k``-th at ``S / 2**(k + 1)``; empty
            unless the network was built with ``deep_supervision=True``.
        attention: the attention coefficients of every gate, finest skip first, the ``k``-th
            ``(N, 1, *S / (fold * 2**k))`` with values in [0, 1]; empty when the gates are off.
    """

    logits: torch.Tensor
    deep_logits: list[torch.Tensor]
    attention: list[torch.Tensor]


class Encoder(nn.Module):
    """The contracting path: a 3x3 stem conv, then one stage of residual blocks per level.

    Level 0 keeps the input's resolution; every later level halves it, either with a stride-2 first block
    (``"conv"``) or a max-pool in front of the stage (``"maxpool"``). With ``light_first_level`` level 0 has no
    blocks: its features are the stem's.

    Shape:
        ``(N, C_in, *S)`` -> a list of features, finest first, the ``k``-th ``(N, channels[k], *S / 2**k)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: Sequence[int],
        blocks_per_level: Sequence[int],
        downsample: DownsampleMode,
        norm: NormSpec,
        activation: ActivationSpec,
        dropout: float,
        zero_init_residual: bool,
        light_first_level: bool = False,
    ) -> None:
        super().__init__()
        self.stem = layers.conv(spatial_dims, in_channels, channels[0], kernel_size=3)
        self.stages = nn.ModuleList()
        for level, (level_channels, num_blocks) in enumerate(zip(channels, blocks_per_level, strict=True)):
            previous_channels = channels[max(level - 1, 0)]
            stride = LEVEL_SCALE if level > 0 and downsample == "conv" else 1
            stage: list[nn.Module] = []
            if level > 0 and downsample == "maxpool":
                stage.append(layers.max_pool(spatial_dims, LEVEL_SCALE))
            for block in range(0 if level == 0 and light_first_level else num_blocks):
                stage.append(
                    ResidualBlock(
                        spatial_dims,
                        previous_channels if block == 0 else level_channels,
                        level_channels,
                        stride=stride if block == 0 else 1,
                        norm=norm,
                        activation=activation,
                        dropout=dropout,
                        zero_init_last=zero_init_residual,
                    )
                )
            self.stages.append(nn.Sequential(*stage))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode ``(N, C_in, *S)`` into per-level features, finest first."""
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class DecoderStage(nn.Module):
    """One level of the expanding path: gate the skip, upsample the coarser map, concatenate, residual blocks.

    ``convs`` is the number of 3x3 convs in each block (2, or 1 for the light first level).

    Shape:
        coarse ``(N, C_coarse, *S / 2)`` and skip ``(N, C_skip, *S)`` -> ``(N, C_out, *S)``, plus the attention
        map ``(N, 1, *S)`` (``None`` when the gate is off).
    """

    def __init__(
        self,
        spatial_dims: int,
        coarse_channels: int,
        skip_channels: int,
        out_channels: int,
        num_blocks: int,
        attention: AttentionMode,
        upsample: UpsampleMode,
        norm: NormSpec,
        activation: ActivationSpec,
        dropout: float,
        zero_init_residual: bool,
        convs: int = 2,
        merge: SkipMerge = "concat",
    ) -> None:
        super().__init__()
        if merge == "add" and skip_channels != out_channels:
            raise ValueError(
                f"merge 'add' needs as many skip channels as out channels, got {skip_channels}, {out_channels}."
            )
        self.merge = merge
        self.gate: AttentionGate | nn.Identity = (
            AttentionGate(spatial_dims, skip_channels, gating_channels=coarse_channels, norm=norm)
            if attention == "additive"
            else nn.Identity()
        )
        self.up = Upsample(spatial_dims, coarse_channels, out_channels, scale=LEVEL_SCALE, mode=upsample)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    spatial_dims,
                    out_channels + skip_channels if block == 0 and merge == "concat" else out_channels,
                    out_channels,
                    norm=norm,
                    activation=activation,
                    dropout=dropout,
                    zero_init_last=zero_init_residual and convs == 2,
                    convs=convs,
                )
                for block in range(num_blocks)
            )
        )

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Merge ``coarse`` ``(N, C_coarse, *S / 2)`` into ``skip`` ``(N, C_skip, *S)``; return features, attention."""
        alpha: torch.Tensor | None = None
        if isinstance(self.gate, AttentionGate):
            skip, alpha = self.gate(skip, coarse)
        upsampled = self.up(coarse)
        # added in place into the upsampled map, a fresh output whose backward does not need it
        merged = torch.cat([upsampled, skip], dim=1) if self.merge == "concat" else upsampled.add_(skip)
        return self.blocks(merged), alpha


class Decoder(nn.Module):
    """The expanding path: one ``DecoderStage`` per level below the bottleneck, coarsest first.

    Shape:
        encoder features (finest first) -> decoder features, finest first, the ``k``-th
        ``(N, channels[k], *S / 2**k)`` for ``k < len(channels) - 1``, and the attention maps, finest first.

    With ``light_first_level`` the finest stage has no attention gate and one block of one 3x3 conv.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: Sequence[int],
        blocks_per_level: int,
        attention: AttentionMode,
        upsample: UpsampleMode,
        norm: NormSpec,
        activation: ActivationSpec,
        dropout: float,
        zero_init_residual: bool,
        light_first_level: bool = False,
        merge: SkipMerge = "concat",
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            DecoderStage(
                spatial_dims,
                coarse_channels=channels[level + 1],
                skip_channels=channels[level],
                out_channels=channels[level],
                num_blocks=1 if light else blocks_per_level,
                attention="none" if light else attention,
                upsample=upsample,
                norm=norm,
                activation=activation,
                dropout=dropout,
                zero_init_residual=zero_init_residual,
                convs=1 if light else 2,
                merge=merge,
            )
            for level in reversed(range(len(channels) - 1))
            for light in [level == 0 and light_first_level]
        )

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Decode encoder ``features`` (finest first); return decoder features and attention maps, finest first."""
        x = features[-1]
        decoded, attention = [], []
        for stage, skip in zip(self.stages, reversed(features[:-1]), strict=True):
            x, alpha = stage(x, skip)
            decoded.append(x)
            if alpha is not None:
                attention.append(alpha)
        return decoded[::-1], attention[::-1]


class ResAttUNet(nn.Module):
    """A U-Net of pre-activation residual blocks with additive attention gates on every skip connection.

    The network for cellseg's segmentation: ``Encoder`` -> ``Decoder`` -> ``SegmentationHead``. Level ``k`` has
    ``channels[k]`` feature channels at ``1 / 2**k`` of the input's resolution, so the input's spatial size must be a
    multiple of ``2 ** (len(channels) - 1)`` (the total stride); the predictor pads, the network raises a
    ``ValueError`` that says what to pad to.

    Design choices, measured with ``benchmarks/network_design.py`` (2026-11-22, this project's 2-core CPU):
        * Speed, as a ratio to MONAI's ``AttentionUnet`` at the same widths (32, 64, 128, 256), measured in one
          run (training step: batch 8 x 1 x 128 x 128; inference: one 512 x 512 image; higher inference = faster):
          strided-conv down, deconv up, gates 1.36x the step time, 0.67x the inference speed; max-pool down (the
          default) 1.37x / 0.65x; interpolation up 1.40x / 0.70x; no gates 1.26x / 0.69x; two blocks per level
          1.89x / 0.50x. The down/up choices move speed by 5% at most; the gap to MONAI comes from the
          second 3x3 conv of every residual block (MONAI's decoder has one conv per level).
        * Accuracy: each variant trained 400 steps at widths (16, 32, 64, 128) on DSB2018 fluorescence nuclei and
          scored on 81 held-out images (foreground Dice, mean per image / pooled over pixels; seeds 0 and 1):
          strided-conv down 0.903, 0.903 / 0.843, 0.848; max-pool down 0.906, 0.908 / 0.849, 0.855;
          interpolation up 0.891, 0.885 / 0.847, 0.840; no gates 0.904, 0.905 / 0.848, 0.851; two blocks
          0.896, 0.903 / 0.840, 0.848. MONAI's ``AttentionUnet``: 0.884, 0.916 / 0.865, 0.870.
        * Downsampling: ``"maxpool"`` (default) pools in front of the stage; it beat the strided conv in both seeds
          and on both scores, by a little more than the two seeds differ, for 3% less inference speed.
          ``"conv"`` is a stride-2 first residual block whose shortcut is average pooling + 1x1 conv, as in
          nnU-Net's residual encoder.
        * Upsampling: ``"deconv"`` (default), a 2x2 transposed conv; ``"interp"``, a 1x1 conv then linear
          interpolation, was 0.012-0.018 lower in mean Dice in both seeds for 5% more inference speed.
        * Blocks per level: 1 (default): two blocks cost 1.4x the training step and 1.3x the inference time
          for no measured gain.
        * Norm: ``"batch"`` by default. Instance and group norm take their statistics from the tile being
          predicted, so a tiled prediction depends on where the tiles fall (seams); batch norm in eval mode uses
          running statistics, so tiled inference stays seam-free.
        * Attention: the gating signal is the coarser decoder map, before upsampling (see ``AttentionGate``).
          ``attention="none"`` replaces every gate by ``nn.Identity``: the same network as a plain residual U-Net.
          On this study the gates neither helped nor hurt Dice (within 0.002); they cost 3-8% of the speed and
          give the attention maps the review report shows.
        * First level (2026-12-03, the Zen 4 CPU, widths 8-128, DSB2018, 20-minute runs, two seeds): ``"light"``
          scored Dice 0.919 / F1@0.5 0.858 against ``"full"``'s 0.917 / 0.857 (within the seed spreads), trained 1.25x
          the steps in the budget, and predicts the probabilities of a 2048 px field 1.25-1.44x faster
          (``benchmarks/model_speed.py``); on Usiigaci (48 px cells) Dice 0.872 / F1@0.5 0.870 against 0.871 / 0.851.
          ``configs/usiigaci_unfolded.yaml`` and ``configs/dsb2018_unfolded.yaml`` use it.
        * Skip merge (2026-12-03, the same machine and runs): ``"add"`` on top of the light first level scored Dice
          0.916 / F1@0.5 0.866 against ``"concat"``'s 0.919 / 0.858, trained 1.3x the steps in the budget, and
          predicts the probabilities 1.16-1.39x faster (2.00-2.75x ``AttentionUnet``'s megapixels/s against
          1.60-2.07x, five runs); on Usiigaci Dice 0.873 / F1@0.5 0.875 against 0.872 / 0.870.
          ``configs/dsb2018.yaml`` and ``configs/usiigaci.yaml`` use it (folded since 2026-12-04).
        * Fold (2026-12-04, an Intel Xeon CPU, DSB2018, 20-minute runs, two seeds): ``fold=2`` with widths 16-128
          and a full first level at half resolution trained 1.37x the steps of the unfolded light 8-128 network and
          scored Dice 0.920 / F1@0.5 0.879 against its 0.918 / 0.872 (fluorescence Dice 0.930 against 0.930), its
          probabilities 1.19-1.20x faster; with a light first level it trains faster still but loses 0.002 Dice
          (the Zen 4 EPYC, two seeds). ``configs/dsb2018.yaml`` uses the full one, and so does
          ``configs/usiigaci.yaml`` since 2026-12-04 (2) (the Xeon, two seeds: 1.42x the steps, Dice 0.875 / F1@0.5
          0.889 against the unfolded 0.874 / 0.879).

    Args:
        spatial_dims: 2 for images, 3 for volumes.
        in_channels: input channels (1 for a single fluorescence or phase channel, 3 for RGB).
        out_channels: output logit channels (classes, or classes + extra maps).
        channels: feature channels per level, finest first; ``len(channels) - 1`` downsamplings.
        blocks_per_level: residual blocks per encoder level, one number for all or one per level.
        decoder_blocks_per_level: residual blocks per decoder level.
        norm: ``"batch"``, ``"instance"``, ``"group"``, or a norm class called with the channel count.
        activation: ``"relu"``, ``"leaky_relu"``, ``"gelu"``, ``"silu"`` or a class (must map 0 to 0 for the identity
            start of ``zero_init_residual``).
        dropout: dropout probability inside every residual block.
        attention: ``"additive"`` gates on the skips, or ``"none"``.
        deep_supervision: add a logit head to every decoder level below the finest (read by
            ``forward_with_aux``).
        downsample: ``"maxpool"`` or ``"conv"``.
        upsample: ``"deconv"`` or ``"interp"``.
        first_level: ``"full"`` (default): level 0 as every other level; ``"light"``: at the input's resolution, the
            encoder keeps only the stem conv (no residual block) and the decoder one residual block of one 3x3 conv
            (with its 1x1 projection shortcut) and no attention gate. Level 0 costs about half the network's
            inference time at widths 8-128 on a CPU (thin convolutions and per-pixel passes over full-size maps).
        skip_merge: how a decoder stage joins the upsampled coarser map and the (gated) skip: ``"concat"`` (default,
            as in the U-Net paper: the stage's first block reads twice its level's channels, through a 1x1 projection
            shortcut) or ``"add"`` (as LinkNet and feature pyramids: the upsampling maps to the skip's channels and
            the two are summed, so every decoder block keeps its level's width and an identity shortcut). ``"add"``
            runs the light 8-128 network 1.36x faster on a CPU (8 tiles of 128 px: 26.5 against 36.1 ms).
        fold: fold every ``fold``-sided block of input pixels into channels before the first level and unfold the
            head's logits back (space to depth and a sub-pixel head, as ESPCN and mobile segmentation networks do),
            so level 0 runs at ``1 / fold`` of the input's resolution and nothing but the fold and unfold at the
            input's. 1 (default): no folding. ``channels[0]`` is then the width at ``1 / fold`` resolution.
        zero_init_residual: start every residual block with its last norm's scale at zero. Off by default: a zero
            scale also stops the gradient to both convs of the branch until the scale has grown (AdamW moves it by
            about the learning rate per step), so the blocks barely learn in a short schedule. On DSB2018, 300 steps
            of ``configs/dsb2018_wide.yaml`` (2026-12-01): validation Dice 0.743 and F1@0.5 0.448 with it, 0.917 and
            0.682 without.

    Shape:
        ``(N, in_channels, *S)`` -> ``(N, out_channels, *S)``, every entry of ``S`` a multiple of ``total_stride``
        (``fold * 2 ** (len(channels) - 1)``).

    Example:
        >>> net = ResAttUNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(8, 16, 32))
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: layers.SpatialDims = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256),
        blocks_per_level: int | Sequence[int] = 1,
        decoder_blocks_per_level: int = 1,
        norm: NormSpec = "batch",
        activation: ActivationSpec = "relu",
        dropout: float = 0.0,
        attention: AttentionMode = "additive",
        deep_supervision: bool = False,
        downsample: DownsampleMode = "maxpool",
        upsample: UpsampleMode = "deconv",
        zero_init_residual: bool = False,
        first_level: FirstLevel = "full",
        skip_merge: SkipMerge = "concat",
        fold: int = 1,
    ) -> None:
        super().__init__()
        layers.check_spatial_dims(spatial_dims)
        if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1:
            raise ValueError(f"fold must be a positive int (1: no folding), got {fold!r}.")
        channels = tuple(channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels needs at least two positive entries (one per level), got {channels!r}.")
        if min(in_channels, out_channels) < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        encoder_blocks = (
            (blocks_per_level,) * len(channels) if isinstance(blocks_per_level, int) else tuple(blocks_per_level)
        )
        if len(encoder_blocks) != len(channels) or min(encoder_blocks) < 1 or decoder_blocks_per_level < 1:
            raise ValueError(
                f"blocks_per_level must be a positive int or one positive int per level ({len(channels)}), "
                f"and decoder_blocks_per_level positive; got {blocks_per_level!r}, {decoder_blocks_per_level!r}."
            )
        if attention not in ATTENTION_MODES:
            raise ValueError(f"Unknown attention {attention!r}: use one of {', '.join(ATTENTION_MODES)}.")
        if downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"Unknown downsample {downsample!r}: use one of {', '.join(DOWNSAMPLE_MODES)}.")
        if first_level not in FIRST_LEVELS:
            raise ValueError(f"Unknown first_level {first_level!r}: use one of {', '.join(FIRST_LEVELS)}.")
        if skip_merge not in SKIP_MERGES:
            raise ValueError(f"Unknown skip_merge {skip_merge!r}: use one of {', '.join(SKIP_MERGES)}.")
        light = first_level == "light"

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels
        self.deep_supervision = deep_supervision
        self.first_level = first_level
        self.fold = fold
        phases = fold**spatial_dims  # channels a folded pixel block holds per input channel
        self.fold_input = layers.FoldSpace(spatial_dims, fold)
        self.encoder = Encoder(
            spatial_dims, in_channels * phases, channels, encoder_blocks, downsample, norm, activation, dropout,
            zero_init_residual, light,
        )  # fmt: skip
        self.decoder = Decoder(
            spatial_dims, channels, decoder_blocks_per_level, attention, upsample, norm, activation, dropout,
            zero_init_residual, light, skip_merge,
        )  # fmt: skip
        self.head = SegmentationHead(spatial_dims, channels[0], out_channels * phases, norm, activation)
        self.deep_heads = nn.ModuleList(
            SegmentationHead(spatial_dims, level_channels, out_channels * phases, norm, activation)
            for level_channels in (channels[1:-1] if deep_supervision else ())
        )
        self.unfold_output = layers.UnfoldSpace(spatial_dims, fold)
        self._init_conv_weights()

    @property
    def total_stride(self) -> int:
        """The factor every spatial size of the input must be a multiple of: ``fold * 2 ** (levels - 1)``."""
        return int(self.fold * LEVEL_SCALE ** (len(self.channels) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x`` ``(N, in_channels, *S)`` into logits ``(N, out_channels, *S)``."""
        return self._run(x, with_deep_heads=False).logits

    def forward_with_aux(self, x: torch.Tensor) -> ResAttUNetOutput:
        """Segment ``x`` ``(N, in_channels, *S)``; also return deep supervision logits and attention maps."""
        return self._run(x, with_deep_heads=True)

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The gates' attention coefficients for ``x``, finest first, the ``k``-th ``(N, 1, *S / (fold * 2**k))``.

        Empty when the network was built with ``attention="none"``. Call under ``torch.no_grad()`` to only look.
        """
        return self._run(x, with_deep_heads=False).attention

    def check_input_shape(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` saying what is wrong with ``x``'s shape, and what to pad to.

        Raises:
            ValueError: ``x`` is not ``(N, in_channels, *S)`` with every entry of ``S`` a multiple of
                ``total_stride``.
        """
        expected_ndim = self.spatial_dims + 2
        if x.ndim != expected_ndim:
            raise ValueError(
                f"ResAttUNet(spatial_dims={self.spatial_dims}) expects a {expected_ndim}D tensor "
                f"(N, C, {', '.join('DHW'[-self.spatial_dims :])}), got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"ResAttUNet expects {self.in_channels} input channel(s), got {x.shape[1]} (shape {tuple(x.shape)})."
            )
        spatial = tuple(x.shape[2:])
        stride = self.total_stride
        if any(size % stride for size in spatial):
            padded = tuple(math.ceil(size / stride) * stride for size in spatial)
            raise ValueError(
                f"Input spatial shape {spatial} is not a multiple of {stride}, the network's total stride "
                f"({len(self.channels) - 1} downsamplings, fold {self.fold}); pad it to {padded} "
                f"(e.g. monai.transforms.DivisiblePad(k={stride}))."
            )

    def _run(self, x: torch.Tensor, with_deep_heads: bool) -> ResAttUNetOutput:
        self.check_input_shape(x)
        features = self.encoder(self.fold_input(x))
        decoded, attention = self.decoder(features)
        logits = self.unfold_output(self.head(decoded[0]))
        deep_logits = []
        if with_deep_heads and self.deep_supervision:
            deep_logits = [
                self.unfold_output(head(level)) for head, level in zip(self.deep_heads, decoded[1:], strict=True)
            ]
        return ResAttUNetOutput(logits, deep_logits, attention)

    def _init_conv_weights(self) -> None:
        """He-normal init (fan-out, as torchvision's ResNet) for every conv.

        PyTorch's default init is too small for ReLU stacks. Norm scales keep their init, including the zeros of
        ``zero_init_residual``.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


def unfolded_channels(channels: Sequence[int], fold: int) -> list[int]:
    """The widths of an unfolded U-Net with the same total stride and the same width at every resolution they share.

    A ``ResAttUNet`` with ``fold`` = 2**k runs ``channels[0]`` at ``1 / fold`` of the input's resolution; its unfolded
    counterpart has k more levels in front, each finer one half as wide: ``[16, 32, 64, 128]`` with fold 2 gives
    ``[8, 16, 32, 64, 128]``. The benchmarks give this to networks that cannot fold (MONAI's U-Nets), so a folded
    config is compared with them at the widths an unfolded one would have.

    Args:
        channels: a ``ResAttUNet``'s widths, finest level first.
        fold: its ``fold``, a power of 2 (1: no folding, ``channels`` unchanged).

    Raises:
        ValueError: when ``fold`` is not a power of 2.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1 or fold & (fold - 1):
        raise ValueError(f"fold must be a power of 2 to unfold into levels of stride 2, got {fold!r}.")
    added_levels = fold.bit_length() - 1
    return [max(1, channels[0] >> level) for level in range(added_levels, 0, -1)] + list(channels)
