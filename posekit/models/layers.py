"""Building blocks shared by the model zoo: activations, conv-BN-act, BN folding, weight init."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "HardMish", "hard_mish", "make_act", "ConvBNAct", "fuse_bn", "init_weights",
           "make_divisible", "resize_to"]


def hard_mish(x: torch.Tensor) -> torch.Tensor:
    """HardMish(x) = x / 2 * clamp(x + 2, 0, 2): 0 for x <= -2, x for x >= 0, x (x + 2) / 2 in between
    (the "H-Mish" of Mish's author D. Misra: (x/2) * min(2, max(0, x + 2))).

    A piecewise-quadratic Mish: same shape (smooth dip to -0.5 at x = -1, identity for x >= 0), no exp/log,
    so it is cheap on CPUs and exports to ONNX as plain arithmetic.
    """
    return 0.5 * x * torch.clamp(x + 2.0, 0.0, 2.0)


class HardMish(nn.Module):
    """Module form of :func:`hard_mish`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hard_mish(x)


#: activation name -> module factory; ``make_act`` is the only way models create activations.
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(),
    "hardmish": HardMish,
    "mish": lambda: nn.Mish(),
}


def make_act(name: str) -> nn.Module:
    """A fresh activation module: ``'relu' | 'hardswish' | 'hardmish' | 'mish'``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (never below it, never 10% below ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation; ``act=None`` leaves the activation out.

    Padding keeps the spatial size at stride 1 (``kernel_size // 2``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act: str | None = "relu"):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        layers = [conv, nn.BatchNorm2d(out_channels)]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


def fuse_bn(weight: torch.Tensor, bn: nn.BatchNorm2d, bias: torch.Tensor | None = None,
            out_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows a (transposed) convolution into its weight and bias.

    BN(conv(x)) = scale * (W * x + b - mean) + beta with scale = gamma / sqrt(var + eps), so
    W' = W * scale (along the output-channel axis ``out_dim``: 0 for Conv2d, 1 for ConvTranspose2d with
    groups=1) and b' = beta + (b - mean) * scale.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    fused_weight = weight * scale.reshape(shape)
    conv_bias = bias if bias is not None else torch.zeros_like(bn.running_mean)
    fused_bias = bn.bias + (conv_bias - bn.running_mean) * scale
    return fused_weight, fused_bias


def init_weights(module: nn.Module) -> None:
    """Default init for the whole zoo: Kaiming-normal (fan_out) convs, BN gamma 1 / beta 0,
    transposed convs normal(std=0.001) as in SimpleBaseline. Modules with ``keeps_own_init = True`` (the
    heatmap head) are skipped."""
    for m in module.modules():
        if getattr(m, "keeps_own_init", False):
            continue
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsample ``x`` (N, C, h, w) to the spatial size of ``like`` (N, C', H, W).

    Used instead of a fixed ``scale_factor=2`` so odd sizes (e.g. a 3-pixel row pooled to 1) round-trip.
    """
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")
