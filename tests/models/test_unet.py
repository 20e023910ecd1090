from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonargparse import ArgumentParser
from torch import nn

from cellseg.models import AttentionGate, ResAttUNet, ResidualBlock
from cellseg.models.layers import FoldSpace, SpatialDims, UnfoldSpace
from cellseg.models.unet import AttentionMode, DecoderStage, unfolded_channels

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "networks"

SHAPE_CASES = [
    # spatial_dims, in_channels, out_channels, channels, blocks_per_level, spatial size
    (2, 1, 2, (4, 8), 1, (16, 24)),
    (2, 3, 3, (4, 8, 16), 2, (32, 32)),
    (2, 2, 5, (4, 8, 16, 32, 64), (1, 1, 2, 2, 1), (32, 48)),
    (3, 1, 2, (4, 8), 1, (8, 8, 16)),
    (3, 2, 4, (4, 8, 16), 1, (16, 8, 16)),
    (3, 1, 3, (2, 4, 8, 16), 2, (16, 16, 16)),
]


@pytest.mark.parametrize(("spatial_dims", "in_ch", "out_ch", "channels", "blocks", "size"), SHAPE_CASES)
@pytest.mark.parametrize("attention", ["additive", "none"])
def test_output_shapes(
    spatial_dims: SpatialDims,
    in_ch: int,
    out_ch: int,
    channels: tuple[int, ...],
    blocks: Any,
    size: tuple[int, ...],
    attention: AttentionMode,
) -> None:
    net = ResAttUNet(
        spatial_dims, in_ch, out_ch, channels, blocks_per_level=blocks, attention=attention, deep_supervision=True
    )
    x = torch.randn(2, in_ch, *size)
    out = net.forward_with_aux(x)
    assert net(x).shape == (2, out_ch, *size)
    assert out.logits.shape == (2, out_ch, *size)
    assert [d.shape for d in out.deep_logits] == [
        (2, out_ch, *(s // 2**level for s in size)) for level in range(1, len(channels) - 1)
    ]
    expected_attention = [(2, 1, *(s // 2**level for s in size)) for level in range(len(channels) - 1)]
    assert [a.shape for a in out.attention] == (expected_attention if attention == "additive" else [])


@pytest.mark.parametrize("downsample", ["conv", "maxpool"])
@pytest.mark.parametrize("upsample", ["deconv", "interp"])
def test_down_and_upsampling_variants_keep_shapes(downsample: str, upsample: str) -> None:
    net = ResAttUNet(2, 1, 2, (4, 8, 16), downsample=downsample, upsample=upsample)  # type: ignore[arg-type]
    assert net(torch.randn(1, 1, 16, 32)).shape == (1, 2, 16, 32)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("zero_init_residual", [True, False])
def test_every_parameter_gets_a_finite_gradient(spatial_dims: SpatialDims, zero_init_residual: bool) -> None:
    net = ResAttUNet(
        spatial_dims, 2, 3, (4, 8, 16), norm="group", dropout=0.1, deep_supervision=True,
        zero_init_residual=zero_init_residual,
    )  # fmt: skip
    out = net.forward_with_aux(torch.randn(2, 2, *(16,) * spatial_dims))
    loss = torch.stack([logits.square().mean() for logits in [out.logits, *out.deep_logits]]).sum()
    loss.backward()
    assert torch.isfinite(out.logits).all()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
        if not zero_init_residual:  # with zero-init, the first conv of a branch gets exactly zero at step one
            assert parameter.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_zero_init_residual_zeroes_every_last_norm_scale() -> None:
    net = ResAttUNet(2, 1, 2, (4, 8, 16), blocks_per_level=2, zero_init_residual=True)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3 * 2 + 2 * 1  # 3 encoder levels x 2 blocks + 2 decoder levels x 1 block
    for block in blocks:
        scale = block.norm2.weight
        assert isinstance(scale, torch.Tensor)
        assert torch.count_nonzero(scale) == 0


def test_residual_branches_start_trainable_by_default() -> None:
    # zero-init by default stalled short trainings (val Dice 0.743 vs 0.917 after 300 DSB2018 steps): off by default
    net = ResAttUNet(2, 1, 2, (4, 8, 16))
    for block in (m for m in net.modules() if isinstance(m, ResidualBlock)):
        scale = block.norm2.weight
        assert isinstance(scale, torch.Tensor)
        assert torch.count_nonzero(scale) == scale.numel()


def test_attention_maps_lie_in_unit_interval_and_match_skip_shapes() -> None:
    net = ResAttUNet(2, 1, 2, (4, 8, 16, 32)).eval()
    x = torch.randn(1, 1, 32, 64)
    with torch.no_grad():
        maps = net.attention_maps(x)
        skips = net.encoder(x)[:-1]
    assert len(maps) == 3
    for alpha, skip in zip(maps, skips, strict=True):
        assert alpha.shape == (1, 1, *skip.shape[2:])
        assert alpha.min() >= 0
        assert alpha.max() <= 1


def test_switching_gates_off_gives_a_residual_unet() -> None:
    gated = ResAttUNet(2, 1, 2, (4, 8, 16), attention="additive")
    plain = ResAttUNet(2, 1, 2, (4, 8, 16), attention="none")
    gates = [m for m in gated.modules() if isinstance(m, AttentionGate)]
    assert len(gates) == 2
    assert not any(isinstance(m, AttentionGate) for m in plain.modules())
    assert all(isinstance(stage.gate, nn.Identity) for stage in plain.decoder.stages)
    gate_parameters = sum(p.numel() for g in gates for p in g.parameters())
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in gated.parameters()) - gate_parameters
    x = torch.randn(1, 1, 16, 16)
    assert plain(x).shape == gated(x).shape
    assert plain.attention_maps(x) == []


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_light_first_level_keeps_the_stem_as_skip_and_one_ungated_conv_block(spatial_dims: SpatialDims) -> None:
    light = ResAttUNet(spatial_dims, 2, 3, (4, 8, 16), first_level="light", deep_supervision=True)
    full = ResAttUNet(spatial_dims, 2, 3, (4, 8, 16), deep_supervision=True)
    x = torch.randn(2, 2, *(16,) * spatial_dims)
    out = light.forward_with_aux(x)
    assert out.logits.shape == (2, 3, *x.shape[2:])
    assert [a.shape[2:] for a in out.attention] == [(8,) * spatial_dims]  # the finest skip has no gate
    assert not any(True for _ in light.encoder.stages[0].children())  # level 0's features are the stem's
    torch.testing.assert_close(light.encoder(x)[0], light.encoder.stem(x))
    blocks_per_stage = [
        [block.convs for block in stage.modules() if isinstance(block, ResidualBlock)] for stage in light.decoder.stages
    ]
    assert blocks_per_stage == [[2], [1]]  # coarsest first: the finest stage has one block of one conv
    assert isinstance(light.decoder.stages[-1].gate, nn.Identity)
    assert sum(p.numel() for p in light.parameters()) < sum(p.numel() for p in full.parameters())
    torch.stack([logits.square().mean() for logits in [out.logits, *out.deep_logits]]).sum().backward()
    for name, parameter in light.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert parameter.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("first_level", ["full", "light"])
def test_added_skips_keep_every_decoder_block_at_its_levels_width(spatial_dims: SpatialDims, first_level: str) -> None:
    added = ResAttUNet(spatial_dims, 2, 3, (4, 8, 16), skip_merge="add", first_level=first_level)  # type: ignore[arg-type]
    concatenated = ResAttUNet(spatial_dims, 2, 3, (4, 8, 16), first_level=first_level)  # type: ignore[arg-type]
    decoder_blocks = [block for block in added.decoder.modules() if isinstance(block, ResidualBlock)]
    assert [block.conv1.in_channels for block in decoder_blocks] == [8, 4]  # not 16 and 8: no concatenation
    assert all(isinstance(block.shortcut, nn.Identity) for block in decoder_blocks)  # so no projection either
    assert sum(p.numel() for p in added.parameters()) < sum(p.numel() for p in concatenated.parameters())
    x = torch.randn(2, 2, *(16,) * spatial_dims)
    logits = added(x)
    assert logits.shape == (2, 3, *x.shape[2:])
    coarsest, finest = (
        added.decoder.stages
    )  # the finest's output: the upsampled coarse map plus the gated skip, blocked
    assert isinstance(coarsest, DecoderStage)
    assert isinstance(finest, DecoderStage)
    features = added.encoder(x)
    coarse = coarsest(features[2], features[1])[0]
    skip = finest.gate(features[0], coarse)[0] if isinstance(finest.gate, AttentionGate) else features[0]
    torch.testing.assert_close(finest(coarse, features[0])[0], finest.blocks(finest.up(coarse) + skip))
    logits.square().mean().backward()
    for name, parameter in added.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_fold_space_moves_each_block_of_pixels_into_channels_and_back(spatial_dims: SpatialDims) -> None:
    x = torch.randn(2, 3, *(4, 6, 8)[-spatial_dims:])
    folded = FoldSpace(spatial_dims, 2)(x)
    assert folded.shape == (2, 3 * 2**spatial_dims, *(2, 3, 4)[-spatial_dims:])
    for channel in range(3):  # channel-major, then the block's offsets in raster order (pixel_unshuffle's order)
        for rank, offsets in enumerate(itertools.product(range(2), repeat=spatial_dims)):
            phases: tuple[slice, ...] = tuple(slice(offset, None, 2) for offset in offsets)
            phase = x[:, channel][(slice(None), *phases)]
            assert torch.equal(folded[:, channel * 2**spatial_dims + rank], phase)
    assert torch.equal(UnfoldSpace(spatial_dims, 2)(folded), x)
    assert FoldSpace(spatial_dims, 1)(x) is x


def test_unfold_space_is_pixel_shuffle_in_2d_from_a_channels_last_head() -> None:
    logits = torch.randn(2, 12, 5, 7).contiguous(memory_format=torch.channels_last)
    unfolded = UnfoldSpace(2, 2)(logits)
    assert torch.equal(unfolded, torch.nn.functional.pixel_shuffle(logits, 2))
    assert unfolded.is_contiguous()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_a_folded_network_runs_from_a_coarser_first_level(spatial_dims: SpatialDims) -> None:
    options: dict[str, Any] = {"first_level": "light", "skip_merge": "add", "deep_supervision": True}
    net = ResAttUNet(spatial_dims, 2, 3, (4, 8, 16), fold=2, **options)
    assert net.total_stride == 8  # 2 (fold) x 2 ** 2 (levels)
    assert net.encoder.stem.in_channels == 2 * 2**spatial_dims
    assert net.head.conv.out_channels == 3 * 2**spatial_dims
    x = torch.randn(2, 2, *(16,) * spatial_dims)
    output = net.forward_with_aux(x)
    assert output.logits.shape == (2, 3, *(16,) * spatial_dims)
    assert [tuple(logits.shape[2:]) for logits in output.deep_logits] == [(8,) * spatial_dims]
    assert [tuple(alpha.shape[2:]) for alpha in output.attention] == [(4,) * spatial_dims]  # the gate at level 1
    expected = UnfoldSpace(spatial_dims, 2)(net.head(net.decoder(net.encoder(FoldSpace(spatial_dims, 2)(x)))[0][0]))
    torch.testing.assert_close(output.logits, expected)
    (output.logits.square().mean() + output.deep_logits[0].square().mean()).backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
    with pytest.raises(ValueError, match=r"not a multiple of 8.*fold 2.*pad it to"):
        net(torch.randn(1, 2, *(12,) * spatial_dims))


@pytest.mark.parametrize(
    ("channels", "fold", "expected"),
    [([16, 32, 64, 128], 1, [16, 32, 64, 128]), ([16, 32, 64, 128], 2, [8, 16, 32, 64, 128]),
     ([16, 32, 64], 4, [4, 8, 16, 32, 64]), ([1, 2], 4, [1, 1, 1, 2])],
)  # fmt: skip
def test_unfolded_channels_keep_the_stride_and_the_width_at_every_shared_resolution(
    channels: list[int], fold: int, expected: list[int]
) -> None:
    unfolded = unfolded_channels(channels, fold)
    assert unfolded == expected
    assert ResAttUNet(2, 1, 3, channels, fold=fold).total_stride == 2 ** (len(unfolded) - 1)


@pytest.mark.parametrize("fold", [0, 3, 6, True])
def test_unfolded_channels_refuse_a_fold_that_is_not_a_power_of_2(fold: int) -> None:
    with pytest.raises(ValueError, match="power of 2"):
        unfolded_channels([8, 16], fold)


def test_deep_heads_exist_only_with_deep_supervision() -> None:
    net = ResAttUNet(2, 1, 2, (4, 8, 16, 32))
    assert len(net.deep_heads) == 0
    assert net.forward_with_aux(torch.randn(1, 1, 16, 16)).deep_logits == []


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 1, 30, 32), r"\(30, 32\) is not a multiple of 8.*pad it to \(32, 32\)"),
        ((1, 1, 33, 17), r"pad it to \(40, 24\)"),
        ((1, 1, 32), r"expects a 4D tensor"),
        ((1, 3, 32, 32), r"expects 1 input channel\(s\), got 3"),
    ],
)
def test_bad_input_shape_says_what_to_do(shape: tuple[int, ...], message: str) -> None:
    net = ResAttUNet(2, 1, 2, (4, 8, 16, 32))
    with pytest.raises(ValueError, match=message):
        net(torch.randn(*shape))


def test_bad_input_shape_3d_names_the_pad_target() -> None:
    net = ResAttUNet(3, 1, 2, (4, 8, 16))
    with pytest.raises(ValueError, match=r"pad it to \(8, 12, 8\)"):
        net(torch.randn(1, 1, 7, 12, 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spatial_dims": 1}, "spatial_dims must be 2 or 3"),
        ({"channels": (8,)}, "at least two"),
        ({"blocks_per_level": (1, 2)}, "one positive int per level"),
        ({"attention": "dot"}, "additive, none"),
        ({"downsample": "stride"}, "conv, maxpool"),
        ({"upsample": "pixelshuffle"}, "deconv, interp"),
        ({"first_level": "none"}, "full, light"),
        ({"skip_merge": "sum"}, "concat, add"),
        ({"fold": 0}, "fold must be a positive int"),
        ({"fold": 1.5}, "fold must be a positive int"),
        ({"norm": "layer"}, "batch, instance, group"),
        ({"activation": "tanh"}, "relu, leaky_relu, gelu, silu"),
        ({"dropout": 1.0}, r"\[0, 1\)"),
    ],
)
def test_bad_arguments_raise_value_errors_that_list_the_options(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"channels": (4, 8, 16)} | kwargs
    with pytest.raises(ValueError, match=message):
        ResAttUNet(**arguments)


def test_eval_output_of_one_image_does_not_depend_on_the_batch() -> None:
    """Batch norm in eval mode: what the predictor relies on for tiles and batches to be seam-free."""
    net = ResAttUNet(2, 1, 2, (4, 8, 16)).eval()
    images = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(images)[:1], net(images[:1]), atol=1e-5)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_network_configs_build_through_jsonargparse(config: Path) -> None:
    """The configs parse with jsonargparse, the engine of LightningCLI, and build a working network."""
    parser = ArgumentParser()
    parser.add_class_arguments(ResAttUNet, "network")
    parsed = parser.parse_args(["--network", str(config)])
    net = parser.instantiate(parsed).network
    assert isinstance(net, ResAttUNet)
    size = (2 * net.total_stride,) * net.spatial_dims
    assert net(torch.randn(1, net.in_channels, *size)).shape == (1, net.out_channels, *size)


@pytest.mark.parametrize(("name", "expected"), [("leaky_relu", nn.LeakyReLU), ("gelu", nn.GELU), (nn.SiLU, nn.SiLU)])
def test_activation_by_name_or_class(name: str | type[nn.Module], expected: type[nn.Module]) -> None:
    net = ResAttUNet(2, 1, 2, (4, 8), activation=name)  # type: ignore[arg-type]
    assert any(isinstance(m, expected) for m in net.modules())


def test_network_configs_exist() -> None:
    assert {p.name for p in CONFIGS.glob("*.yaml")} >= {"resattunet2d.yaml", "resattunet3d.yaml"}


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40))
def test_any_size_runs_or_names_the_smallest_padded_size_that_does(height: int, width: int) -> None:
    net = ResAttUNet(2, 1, 1, (2, 2, 2, 2)).eval()
    with torch.no_grad():
        if height % 8 == 0 and width % 8 == 0:
            assert net(torch.zeros(1, 1, height, width)).shape == (1, 1, height, width)
            return
        with pytest.raises(ValueError, match=r"pad it to \((\d+), (\d+)\)") as error:
            net(torch.zeros(1, 1, height, width))
        match = re.search(r"pad it to \((\d+), (\d+)\)", str(error.value))
        assert match is not None
        padded = (int(match.group(1)), int(match.group(2)))
        assert padded == (-(-height // 8) * 8, -(-width // 8) * 8)
        assert net(torch.zeros(1, 1, *padded)).shape == (1, 1, *padded)
