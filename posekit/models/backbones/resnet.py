"""SimpleBaseline (Xiao, Wu & Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018).

ResNet trunk to stride 32 (7x7 stride-2 conv, 3x3 stride-2 max-pool, four stages with strides 1, 2, 2, 2;
basic blocks for ResNet-18/34, bottlenecks (x4 expansion, stride on the 3x3 conv) for ResNet-50), then
three 4x4 stride-2 transposed convs + BN + act back to stride 4, then a 1x1 heatmap conv.

``width`` scales every trunk channel count (0.5 = the "half-width ResNet-18"); ``deconv_channels`` sets
the upsampler width (256 in the paper). No ImageNet weights: the trunk is written here, not imported.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..base import EncoderDecoderModel
from ..heads import DeconvUpsampler, HeatmapHead
from ..layers import ConvBNAct, init_weights, make_act, make_divisible
from ..registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNetTrunk", "SimpleBaseline", "RESNET_DEPTHS"]


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride=stride, act=None)


class BasicBlock(nn.Module):
    """3x3 (stride) -> BN -> act -> 3x3 -> BN, plus shortcut, then act. Output channels = ``channels``."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(in_channels, channels, 3, stride, act=act),
                                  ConvBNAct(channels, channels, 3, act=None))
        self.shortcut = _shortcut(in_channels, channels, stride)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4), BN and act between, plus shortcut, then act. Output = 4 * ``channels``."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        out_channels = channels * self.expansion
        self.body = nn.Sequential(ConvBNAct(in_channels, channels, 1, act=act),
                                  ConvBNAct(channels, channels, 3, stride, act=act),
                                  ConvBNAct(channels, out_channels, 1, act=None))
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


#: depth -> (block, blocks per stage)
RESNET_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNetTrunk(nn.Sequential):
    """(N, 3, H, W) -> (N, out_channels, H/32, W/32)."""

    def __init__(self, depth: int = 18, width: float = 1.0, act: str = "relu"):
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; choose one of {sorted(RESNET_DEPTHS)}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        block, counts = RESNET_DEPTHS[depth]
        stem_channels = make_divisible(64 * width)
        layers: list[nn.Module] = [ConvBNAct(3, stem_channels, 7, stride=2, act=act),
                                   nn.MaxPool2d(3, stride=2, padding=1)]
        in_channels = stem_channels
        for stage, count in enumerate(counts):
            channels = make_divisible(64 * 2 ** stage * width)
            for i in range(count):
                stride = 2 if (i == 0 and stage > 0) else 1
                layers.append(block(in_channels, channels, stride, act))
                in_channels = channels * block.expansion
        super().__init__(*layers)
        self.out_channels = in_channels


class SimpleBaseline(EncoderDecoderModel):
    """ResNet trunk + deconv upsampler + 1x1 heatmap head; H and W must be multiples of 32."""

    input_multiple = 32
    min_input_size = 32

    def __init__(self, num_keypoints: int = 17, depth: int = 18, width: float = 1.0, deconv_channels: int = 256,
                 act: str = "relu"):
        super().__init__(num_keypoints, feature_channels=deconv_channels)
        self.trunk = ResNetTrunk(depth, width, act)
        # three stride-2 deconvs: stride 32 -> 4
        self.upsample = DeconvUpsampler(self.trunk.out_channels, deconv_channels, num_layers=3, act=act)
        self.head = HeatmapHead(deconv_channels, num_keypoints)
        init_weights(self)


def _build(defaults: dict, kwargs: dict) -> SimpleBaseline:
    return SimpleBaseline(**{**defaults, **kwargs})


@register_model
def simplebaseline_r18(**kwargs) -> SimpleBaseline:
    return _build(dict(depth=18), kwargs)


@register_model
def simplebaseline_r34(**kwargs) -> SimpleBaseline:
    return _build(dict(depth=34), kwargs)


@register_model
def simplebaseline_r50(**kwargs) -> SimpleBaseline:
    return _build(dict(depth=50), kwargs)


@register_model
def simplebaseline_r18_half(**kwargs) -> SimpleBaseline:
    """Half-width ResNet-18 trunk (32-64-128-256 channels) with a 128-channel upsampler."""
    return _build(dict(depth=18, width=0.5, deconv_channels=128), kwargs)
