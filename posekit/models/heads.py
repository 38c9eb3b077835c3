"""Heads: the SimpleBaseline deconvolution upsampler and the final 1x1 heatmap convolution."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import fuse_bn, make_act

__all__ = ["HeatmapHead", "DeconvBlock", "DeconvUpsampler", "init_heatmap_conv"]


def init_heatmap_conv(conv: nn.Conv2d, std: float = 0.001) -> nn.Conv2d:
    """weights ~ normal(0, ``std``), bias 0: the network starts predicting near-zero heatmaps with
    small, non-zero gradients everywhere. With the default init the MSE loss sits on the all-zero
    plateau (the easy minimum of sparse Gaussian targets) and a deep hourglass may never leave it."""
    nn.init.normal_(conv.weight, std=std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class HeatmapHead(nn.Conv2d):
    """1x1 convolution: features (N, C, h, w) -> heatmaps (N, K, h, w), initialised by :func:`init_heatmap_conv`."""

    #: tells :func:`~posekit.models.layers.init_weights` to leave this layer's init alone
    keeps_own_init = True

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__(in_channels, num_keypoints, kernel_size=1)

    def reset_parameters(self) -> None:  # called by nn.Conv2d.__init__
        init_heatmap_conv(self)


class DeconvBlock(nn.Module):
    """ConvTranspose2d(k=4, stride 2, padding 1) -> BN -> act: exactly doubles h and w.

    ``deploy=True`` builds the folded form (transposed conv with bias, no BN) produced by :meth:`fused_state`.
    """

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu", deploy: bool = False):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1,
                                         bias=deploy)
        self.bn = nn.Identity() if deploy else nn.BatchNorm2d(out_channels)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.deconv(x)))

    @torch.no_grad()
    def fused_state(self) -> dict[str, torch.Tensor]:
        """State dict of the deploy-mode block: BN (eval statistics) folded into the transposed conv."""
        if isinstance(self.bn, nn.Identity):
            return {"deconv.weight": self.deconv.weight.clone(), "deconv.bias": self.deconv.bias.clone()}
        weight, bias = fuse_bn(self.deconv.weight, self.bn, self.deconv.bias, out_dim=1)
        return {"deconv.weight": weight, "deconv.bias": bias}


class DeconvUpsampler(nn.Sequential):
    """SimpleBaseline upsampling: ``num_layers`` (L) x :class:`DeconvBlock`,
    (N, C_in, h, w) -> (N, channels, h * 2^L, w * 2^L)."""

    def __init__(self, in_channels: int, channels: int = 256, num_layers: int = 3, act: str = "relu",
                 deploy: bool = False):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        blocks = [DeconvBlock(in_channels if i == 0 else channels, channels, act, deploy) for i in range(num_layers)]
        super().__init__(*blocks)
        self.out_channels = channels
