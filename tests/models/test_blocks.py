from __future__ import annotations

import pytest
import torch
from torch import nn

from cellseg.models import AttentionGate, ResidualBlock, SegmentationHead, Upsample
from cellseg.models.layers import norm


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("norm_spec", ["batch", "instance", "group"])
@pytest.mark.parametrize("activation", [nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU])
def test_zero_init_block_is_identity(spatial_dims: int, norm_spec: str, activation: type[nn.Module]) -> None:
    block = ResidualBlock(spatial_dims, 6, 6, norm=norm_spec, activation=activation, zero_init_last=True)  # type: ignore[arg-type]
    x = torch.randn(2, 6, *(8,) * spatial_dims)
    for mode in (True, False):
        block.train(mode)
        assert torch.equal(block(x), x)


def test_block_without_zero_init_is_not_identity() -> None:
    block = ResidualBlock(2, 6, 6, zero_init_last=False)
    x = torch.randn(2, 6, 8, 8)
    assert not torch.allclose(block(x), x)


def test_zero_init_projection_block_is_its_shortcut() -> None:
    block = ResidualBlock(2, 4, 8, stride=2, zero_init_last=True)
    x = torch.randn(2, 4, 16, 16)
    assert isinstance(block.shortcut, nn.Sequential)
    assert torch.equal(block(x), block.shortcut(x))


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "stride", "projected"),
    [(8, 8, 1, False), (4, 8, 1, True), (8, 8, 2, True), (8, 16, 2, True)],
)
def test_shortcut_is_identity_only_where_shape_is_kept(
    in_channels: int, out_channels: int, stride: int, projected: bool
) -> None:
    block = ResidualBlock(2, in_channels, out_channels, stride=stride)
    assert isinstance(block.shortcut, nn.Identity) is not projected
    if projected:
        convs = [m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in block.shortcut.modules() if isinstance(m, nn.BatchNorm2d)]
        assert [c.kernel_size for c in convs] == [(1, 1)]
        assert len(norms) == 1
    y = block(torch.randn(2, in_channels, 16, 16))
    assert y.shape == (2, out_channels, 16 // stride, 16 // stride)


def test_zero_init_needs_a_learned_scale() -> None:
    with pytest.raises(ValueError, match="learned scale"):
        ResidualBlock(2, 4, 4, norm=nn.InstanceNorm2d, zero_init_last=True)


def test_dropout_is_applied_between_convs_only_in_training() -> None:
    block = ResidualBlock(2, 4, 4, dropout=0.5)
    x = torch.randn(1, 4, 8, 8)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    assert not torch.equal(block(x), block(x))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("gating_scale", [1, 2])
def test_attention_coefficients_lie_in_unit_interval_on_skip_grid(spatial_dims: int, gating_scale: int) -> None:
    gate = AttentionGate(spatial_dims, skip_channels=6, gating_channels=12)
    skip = torch.randn(2, 6, *(8,) * spatial_dims) * 10
    gating = torch.randn(2, 12, *(8 // gating_scale,) * spatial_dims) * 10
    gated, alpha = gate(skip, gating)
    assert alpha.shape == (2, 1, *skip.shape[2:])
    assert alpha.min() >= 0
    assert alpha.max() <= 1
    assert torch.allclose(gated, skip * alpha)


def test_attention_depends_on_the_gating_signal() -> None:
    gate = AttentionGate(2, skip_channels=4, gating_channels=8).eval()
    skip = torch.randn(1, 4, 8, 8)
    _, alpha_a = gate(skip, torch.randn(1, 8, 4, 4))
    _, alpha_b = gate(skip, torch.randn(1, 8, 4, 4))
    assert not torch.allclose(alpha_a, alpha_b)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["deconv", "interp"])
def test_upsample_doubles_resolution_and_maps_channels(spatial_dims: int, mode: str) -> None:
    up = Upsample(spatial_dims, 8, 4, scale=2, mode=mode)  # type: ignore[arg-type]
    assert up(torch.randn(1, 8, *(4,) * spatial_dims)).shape == (1, 4, *(8,) * spatial_dims)


def test_unknown_upsample_mode_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="deconv, interp"):
        Upsample(2, 8, 4, scale=2, mode="pixelshuffle")  # type: ignore[arg-type]


def test_segmentation_head_maps_to_logits() -> None:
    head = SegmentationHead(3, 8, 3)
    assert head(torch.randn(1, 8, 4, 4, 4)).shape == (1, 3, 4, 4, 4)


def test_named_norms_pick_the_dimension_and_group_count() -> None:
    assert isinstance(norm("batch", 3, 4), nn.BatchNorm3d)
    instance = norm("instance", 2, 4)
    assert isinstance(instance, nn.InstanceNorm2d)
    assert instance.affine
    group = norm("group", 2, 12)
    assert isinstance(group, nn.GroupNorm)
    assert group.num_groups == 6
    assert isinstance(norm(nn.GroupNorm, 2, 16), nn.GroupNorm)
    assert isinstance(norm(nn.BatchNorm2d, 2, 16), nn.BatchNorm2d)
    with pytest.raises(ValueError, match="batch, instance, group"):
        norm("layer", 2, 4)  # type: ignore[arg-type]


def test_one_conv_block_is_its_shortcut_plus_one_preactivated_conv() -> None:
    block = ResidualBlock(2, 6, 4, convs=1).eval()
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        expected = block.shortcut(x) + block.conv1(torch.relu(block.norm1(x)))
        actual = block(x)
    torch.testing.assert_close(actual, expected)
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in block.modules()) == 1


@pytest.mark.parametrize("convs", [0, 3])
def test_a_block_has_one_or_two_convs(convs: int) -> None:
    with pytest.raises(ValueError, match="1 or 2 convs"):
        ResidualBlock(2, 4, 4, convs=convs)


def test_zero_init_needs_a_second_conv() -> None:
    with pytest.raises(ValueError, match="two convs"):
        ResidualBlock(2, 4, 4, convs=1, zero_init_last=True)
