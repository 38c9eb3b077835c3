"""RepVGG trunk (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021) with the
SimpleBaseline upsampling head.

Training form: every block is ``act(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))`` (the identity branch only
when shape is kept). All three branches are linear in eval mode, so :meth:`RepVGGPose.reparameterize`
folds each block into one 3x3 conv with bias, and each deconv's BN into the transposed conv: the deploy
model is a plain stack of convolutions and activations with no BatchNorm at all, and equals the
training-form model in eval mode up to float rounding.

Five stages, each starting with a stride-2 block: stride 32, then three deconvs to stride 4.
RepVGG-A0 widths are (min(64, 64a), 64a, 128a, 256a, 512b) with a = 0.75, b = 2.5 and depths (1, 2, 4, 14, 1).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..base import EncoderDecoderModel
from ..heads import DeconvBlock, DeconvUpsampler, HeatmapHead
from ..layers import ConvBNAct, fuse_bn, init_weights, make_act
from ..registry import register_model

__all__ = ["RepVGGBlock", "RepVGGPose"]


class RepVGGBlock(nn.Module):
    """(N, C_in, h, w) -> (N, C_out, h / stride, w / stride).

    Training form: ``branch_3x3``, ``branch_1x1`` (conv + BN each) and ``branch_identity`` (BN, only when
    C_in == C_out and stride == 1), summed, then ``act``. Deploy form (``deploy=True``): ``fused``, one 3x3
    conv with bias, then ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: str = "relu", deploy: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.deploy = bool(deploy)
        if deploy:
            self.fused = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=True)
        else:
            self.branch_3x3 = ConvBNAct(in_channels, out_channels, 3, stride, act=None)
            self.branch_1x1 = ConvBNAct(in_channels, out_channels, 1, stride, act=None)
            self.branch_identity = (nn.BatchNorm2d(in_channels) if in_channels == out_channels and stride == 1
                                    else None)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.act(self.fused(x))
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.branch_identity is not None:
            out = out + self.branch_identity(x)
        return self.act(out)

    @torch.no_grad()
    def fused_state(self) -> dict[str, torch.Tensor]:
        """State dict of the deploy-form block: ``{'fused.weight': (C_out, C_in, 3, 3), 'fused.bias': (C_out,)}``.

        Uses the BN running statistics, i.e. equals this block in eval mode.
        """
        if self.deploy:
            return {"fused.weight": self.fused.weight.clone(), "fused.bias": self.fused.bias.clone()}
        weight, bias = fuse_bn(self.branch_3x3[0].weight, self.branch_3x3[1])
        weight_1x1, bias_1x1 = fuse_bn(self.branch_1x1[0].weight, self.branch_1x1[1])
        weight = weight + F.pad(weight_1x1, [1, 1, 1, 1])  # a 1x1 kernel is a 3x3 kernel with zeros around
        bias = bias + bias_1x1
        if self.branch_identity is not None:
            # identity = 3x3 conv whose kernel is 1 at the centre of its own channel
            identity = torch.zeros_like(weight)
            channels = torch.arange(self.in_channels)
            identity[channels, channels, 1, 1] = 1.0
            weight_id, bias_id = fuse_bn(identity, self.branch_identity)
            weight, bias = weight + weight_id, bias + bias_id
        return {"fused.weight": weight, "fused.bias": bias}


def _as_five(values: Sequence[int], name: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) != 5 or min(values) < 1:
        raise ValueError(f"{name} must be five positive ints (stem + 4 stages), got {values}")
    return values


class RepVGGPose(EncoderDecoderModel):
    """RepVGG trunk (stride 32) + deconv upsampler + 1x1 heatmap head. H and W must be multiples of 32."""

    input_multiple = 32
    #: backward of the train form in channels_last corrupts the heap on torch 2.13's CPU kernels
    channels_last_training = False
    min_input_size = 32

    def __init__(self, num_keypoints: int = 17, widths: Sequence[int] = (48, 48, 96, 192, 1280),
                 depths: Sequence[int] = (1, 2, 4, 14, 1), deconv_channels: int = 256, act: str = "relu",
                 deploy: bool = False):
        super().__init__(num_keypoints, feature_channels=deconv_channels)
        widths, depths = _as_five(widths, "widths"), _as_five(depths, "depths")
        self.arch = dict(num_keypoints=num_keypoints, widths=list(widths), depths=list(depths),
                         deconv_channels=deconv_channels, act=act)
        self.deploy = bool(deploy)
        stages, in_channels = [], 3
        for width, depth in zip(widths, depths):
            stages.append(nn.Sequential(*[RepVGGBlock(in_channels if i == 0 else width, width, 2 if i == 0 else 1,
                                                      act, deploy) for i in range(depth)]))
            in_channels = width
        self.trunk = nn.Sequential(*stages)
        self.upsample = DeconvUpsampler(in_channels, deconv_channels, num_layers=3, act=act, deploy=deploy)
        self.head = HeatmapHead(deconv_channels, num_keypoints)
        init_weights(self)

    @torch.no_grad()
    def reparameterize(self) -> "RepVGGPose":
        """A NEW deploy-form model (plain 3x3 convs with bias, no BatchNorm) equal to ``self`` in eval mode.

        ``self`` is left untouched. The result carries ``pk_config`` with ``deploy=True`` so a checkpoint
        of it rebuilds with ``build_model(name, deploy=True)``.
        """
        with torch.device("meta"):  # no init work: every tensor is replaced below
            deployed = RepVGGPose(**self.arch, deploy=True)
        state = {}
        for name, module in self.named_modules():
            if isinstance(module, (RepVGGBlock, DeconvBlock)):
                state.update({f"{name}.{k}": v for k, v in module.fused_state().items()})
        target_keys = deployed.state_dict().keys()
        # clone: the deploy model must not share storage with this one
        state.update({k: v.clone() for k, v in self.state_dict().items() if k in target_keys and k not in state})
        deployed.load_state_dict(state, assign=True)  # strict: every deploy tensor must come from somewhere
        deployed.train(self.training)
        if hasattr(self, "pk_config"):
            config = self.pk_config
            deployed.pk_config = {"name": config["name"], "kwargs": {**config["kwargs"], "deploy": True}}
        return deployed


def _build(defaults: dict, kwargs: dict) -> RepVGGPose:
    return RepVGGPose(**{**defaults, **kwargs})


@register_model
def repvgg_a0(**kwargs) -> RepVGGPose:
    """RepVGG-A0 trunk (widths 48-48-96-192-1280, depths 1-2-4-14-1) + 256-channel deconv head."""
    return _build({}, kwargs)


@register_model
def repvgg_lite(**kwargs) -> RepVGGPose:
    """A small RepVGG (widths 32-32-64-128-256, depths 1-2-3-4-1) + 128-channel deconv head."""
    return _build(dict(widths=(32, 32, 64, 128, 256), depths=(1, 2, 3, 4, 1), deconv_channels=128), kwargs)
