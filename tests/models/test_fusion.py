"""Folding batch norms into convolutions for inference: the same function, fewer norms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cellseg.models import AttentionGate, ResAttUNet, ResidualBlock
from cellseg.models.fusion import fold_batch_norms
from cellseg.models.layers import SpatialDims


def trained_like(network: nn.Module) -> nn.Module:
    """``network`` with random norm scales, shifts and running statistics (as after training), in eval mode."""
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d):
            size = module.num_features
            assert module.running_mean is not None
            assert module.running_var is not None
            with torch.no_grad():
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator))
                module.running_mean.copy_(torch.randn(size, generator=generator))
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.2)
    return network.eval()


def batch_norms(network: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d) for module in network.modules())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_folded_network_computes_the_same_logits_with_fewer_norms(spatial_dims: SpatialDims) -> None:
    # in float64, so that the comparison tests the algebra, not the CPU's float32 kernels (a Zen 4 host's
    # 3D convolutions once put one logit of ~1200 0.015 off in float32)
    network = trained_like(ResAttUNet(spatial_dims, 1, 3, (4, 8, 16), blocks_per_level=2)).double()
    image = torch.randn(2, 1, *(16,) * spatial_dims, dtype=torch.float64)
    with torch.no_grad():
        expected = network(image)
        before = batch_norms(network)
        folded = fold_batch_norms(network)
        actual = network(image)
    blocks = [module for module in network.modules() if isinstance(module, ResidualBlock)]
    projections = sum(isinstance(block.shortcut, nn.Sequential) for block in blocks)
    gates = sum(isinstance(module, AttentionGate) for module in network.modules())
    assert folded == len(blocks) + projections + 2 * gates  # each block's second norm, the projections', the gates'
    assert batch_norms(network) == before - folded
    # random statistics grow the logits to ~1000: float64 rounding, relative to that scale
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_folding_a_light_first_level_skips_its_one_conv_block() -> None:
    network = trained_like(ResAttUNet(2, 1, 3, (4, 8, 16), first_level="light")).double()
    image = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected = network(image)
        folded = fold_batch_norms(network)
        actual = network(image)
    blocks = [module for module in network.modules() if isinstance(module, ResidualBlock)]
    two_conv_blocks = sum(block.convs == 2 for block in blocks)
    projections = sum(isinstance(block.shortcut, nn.Sequential) for block in blocks)
    gates = sum(isinstance(module, AttentionGate) for module in network.modules())
    assert (two_conv_blocks, projections, gates) == (3, 4, 1)
    assert folded == two_conv_blocks + projections + 2 * gates
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_folding_a_network_with_added_skips_gives_the_same_outputs() -> None:
    network = trained_like(ResAttUNet(2, 1, 3, (4, 8, 16), first_level="light", skip_merge="add")).double()
    image = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected = network(image)
        folded = fold_batch_norms(network)
        actual = network(image)
    assert folded == 3 + 2 + 2 * 1  # two-conv blocks (encoder 1-2, decoder 1), the encoder's projections, one gate
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_folding_the_norms_of_a_space_folded_network_gives_the_same_outputs() -> None:
    network = trained_like(ResAttUNet(2, 1, 3, (4, 8, 16), first_level="light", skip_merge="add", fold=2)).double()
    image = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = network(image)
        assert fold_batch_norms(network) == 3 + 2 + 2 * 1
        actual = network(image)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_folding_keeps_the_channels_last_layout_of_2d_weights() -> None:
    network = trained_like(ResAttUNet(2, 1, 3, (4, 8, 16))).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fold_batch_norms(network)
    convolutions = [module for module in network.modules() if isinstance(module, nn.Conv2d)]
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convolutions)


def test_instance_norms_are_left_alone() -> None:
    network = ResAttUNet(2, 1, 3, (4, 8, 16), norm="instance").eval()
    assert fold_batch_norms(network) == 0


def test_a_training_network_is_refused() -> None:
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(ResAttUNet(2, 1, 3, (4, 8, 16)))
