"""Activations, BN folding, heads and small helpers, against hand-computed values."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.models.heads import DeconvUpsampler, HeatmapHead, init_heatmap_conv
from posekit.models.layers import ConvBNAct, HardMish, fuse_bn, hard_mish, init_weights, make_act, make_divisible


def test_hard_mish_hand_values():
    # x/2 * clamp(x + 2, 0, 2):  -3 -> -1.5*0 ; -2 -> -1*0 ; -1 -> -0.5*1 ; -0.5 -> -0.25*1.5 ; 1 -> 0.5*2 ; 3 -> 1.5*2
    x = torch.tensor([-3.0, -2.0, -1.0, -0.5, 0.0, 1.0, 3.0])
    expected = torch.tensor([0.0, 0.0, -0.5, -0.375, 0.0, 1.0, 3.0])
    torch.testing.assert_close(hard_mish(x), expected)
    torch.testing.assert_close(make_act("hardmish")(x), expected)
    assert isinstance(make_act("hardmish"), HardMish)


def test_hard_mish_gradient():
    # d/dx = 0 for x < -2, x + 1 on (-2, 0) (zero at the minimum x = -1), 1 for x > 0
    x = torch.tensor([-3.0, -1.5, -1.0, -0.5, 2.0], requires_grad=True)
    hard_mish(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, -0.5, 0.0, 0.5, 1.0]))


def test_hard_mish_has_mish_shape():
    """Same limits as Mish (identity for large x, 0 for very negative x), one dip on (-2, 0)."""
    x = torch.linspace(-6, 6, 241)
    diff = hard_mish(x) - F.mish(x)
    assert diff[x >= 4].abs().max() < 0.01
    assert diff[x <= -4].abs().max() < 0.08  # Mish(-4) = -4 tanh(softplus(-4)) ~ -0.073, HardMish(-4) = 0
    assert hard_mish(x).min() == pytest.approx(-0.5)  # Mish's minimum is about -0.309
    assert diff.abs().max() < 0.26


def test_hardswish_and_mish_match_their_definitions():
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(make_act("hardswish")(x), x * torch.clamp(x + 3, 0, 6) / 6)
    torch.testing.assert_close(make_act("hardswish")(x), F.hardswish(x))
    torch.testing.assert_close(make_act("mish")(x), x * torch.tanh(F.softplus(x)))
    torch.testing.assert_close(make_act("relu")(x.clone()), x.clamp(min=0))
    assert make_act("hardswish")(torch.tensor([-3.0, 3.0, 1.0])).tolist() == pytest.approx([0.0, 3.0, 1 * 4 / 6])


def test_make_act_returns_fresh_modules_and_rejects_unknown():
    assert make_act("relu") is not make_act("relu")
    with pytest.raises(ValueError, match="unknown activation 'swish'.*hardmish"):
        make_act("swish")


@pytest.mark.parametrize("value,expected", [(64, 64), (32, 32), (48, 48), (20, 24), (12, 16), (3, 8), (100, 104)])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


def test_conv_bn_act_shapes_and_layers():
    block = ConvBNAct(4, 6, 3, stride=2, act=None)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d]
    assert block(torch.randn(1, 4, 9, 8)).shape == (1, 6, 5, 4)
    assert isinstance(ConvBNAct(4, 4, 1, act="mish")[-1], nn.Mish)


@torch.no_grad()
def test_fuse_bn_matches_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1, bias=True), nn.BatchNorm2d(5)
    bn.weight.uniform_(0.5, 1.5)
    bn.bias.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.eval()
    weight, bias = fuse_bn(conv.weight, bn, conv.bias)
    x = torch.randn(2, 3, 6, 7)
    torch.testing.assert_close(F.conv2d(x, weight, bias, padding=1), bn(conv(x)), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_fuse_bn_hand_values():
    bn = nn.BatchNorm2d(1, eps=0.0).eval()
    bn.weight.fill_(2.0)
    bn.bias.fill_(1.0)
    bn.running_mean.fill_(3.0)
    bn.running_var.fill_(4.0)  # scale = 2 / sqrt(4) = 1
    weight, bias = fuse_bn(torch.full((1, 1, 1, 1), 5.0), bn, torch.tensor([0.5]))
    assert weight.item() == 5.0 and bias.item() == pytest.approx(1.0 + (0.5 - 3.0) * 1.0)


def test_heatmap_head_init_survives_init_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3), HeatmapHead(64, 17))
    init_weights(model)
    head = model[1]
    assert head.bias.abs().max() == 0
    assert head.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert model[0].weight.std().item() > 0.05  # Kaiming on the other convs


def test_init_heatmap_conv_std():
    torch.manual_seed(0)
    conv = init_heatmap_conv(nn.Conv2d(256, 17, 1), std=0.01)
    assert conv.weight.std().item() == pytest.approx(0.01, rel=0.05) and conv.bias.abs().max() == 0


def test_deconv_upsampler_doubles_each_layer():
    up = DeconvUpsampler(8, channels=6, num_layers=3, act="hardmish")
    assert up(torch.randn(1, 8, 3, 2)).shape == (1, 6, 24, 16)
    with pytest.raises(ValueError):
        DeconvUpsampler(8, num_layers=0)
