"""Stacked hourglass networks (Newell, Yang & Deng, ECCV 2016) and a lightweight variant.

Layout (``num_stacks`` S, ``channels`` C, ``depth`` D):

* stem to 1/4 resolution: 7x7 stride-2 conv (64) -> residual (128) -> 2x2 max-pool -> residual (128)
  -> residual (C), as in the paper (the lite stem is 3x3 stride-2 conv -> depthwise-separable stride-2 conv);
* S hourglasses; each is recursive: ``out = skip(x) + up(inner(pool(x)))`` down to 1 / 2^D of the stem
  resolution, with one residual block per branch and level (``num_blocks``);
* after each hourglass: residual block(s) -> 1x1 conv-BN-act (the stage features) -> 1x1 heatmap conv;
* intermediate supervision: every stack's heatmaps are returned by ``forward_all``, and for the next
  stack the features and the heatmaps are mapped back to C channels by 1x1 convs and added to the
  stack's input.

Blocks (``block=``): ``'bottleneck'`` -- the paper's pre-activation residual (C -> C/2 -> C/2 -> C);
``'narrow'`` -- the same with a C/4 bottleneck (~1.6 C^2 MACs per pixel instead of ~3.25 C^2);
``'dwsep'`` -- two pre-activation depthwise-separable 3x3 convs (~2 (9C + C^2) MACs per pixel).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from ..base import PoseModel, TrunkHead
from ..heads import HeatmapHead
from ..layers import ConvBNAct, init_weights, make_act, resize_to
from ..registry import register_model

__all__ = ["StackedHourglass", "HourglassStacks", "run_stacks", "PreActBottleneck", "DepthwiseSeparableResidual", "make_block", "BLOCKS"]


def _skip(in_channels: int, out_channels: int) -> nn.Module:
    # 1x1 projection only when the channel count changes (the paper's residual module)
    return nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)


class PreActBottleneck(nn.Module):
    """BN-act-1x1 (C_in -> m) -> BN-act-3x3 (m) -> BN-act-1x1 (m -> C_out), plus skip; m = C_out // reduction."""

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu", reduction: int = 2):
        super().__init__()
        mid = max(out_channels // reduction, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), make_act(act), nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid), make_act(act), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), make_act(act), nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = _skip(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class DepthwiseSeparableResidual(nn.Module):
    """Two pre-activation depthwise-separable 3x3 convs (BN-act-dw3x3-1x1), plus skip."""

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu"):
        super().__init__()

        def dwsep(cin: int, cout: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(cin), make_act(act), nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                    nn.Conv2d(cin, cout, 1, bias=False)]

        self.body = nn.Sequential(*dwsep(in_channels, out_channels), *dwsep(out_channels, out_channels))
        self.skip = _skip(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


BLOCKS = {
    "bottleneck": lambda cin, cout, act: PreActBottleneck(cin, cout, act, reduction=2),
    "narrow": lambda cin, cout, act: PreActBottleneck(cin, cout, act, reduction=4),
    "dwsep": DepthwiseSeparableResidual,
}


def make_block(kind: str, in_channels: int, out_channels: int, act: str = "relu") -> nn.Module:
    if kind not in BLOCKS:
        raise ValueError(f"unknown hourglass block {kind!r}; choose one of {sorted(BLOCKS)}")
    return BLOCKS[kind](in_channels, out_channels, act)


def _blocks(kind: str, channels: int, count: int, act: str) -> nn.Sequential:
    return nn.Sequential(*[make_block(kind, channels, channels, act) for _ in range(count)])


class Hourglass(nn.Module):
    """One recursive hourglass of ``depth`` levels: (N, C, h, w) -> (N, C, h, w)."""

    def __init__(self, depth: int, channels: int, block: str, act: str, num_blocks: int = 1):
        super().__init__()
        self.skip = _blocks(block, channels, num_blocks, act)
        self.pool = nn.MaxPool2d(2, 2)
        self.down = _blocks(block, channels, num_blocks, act)
        self.inner = (Hourglass(depth - 1, channels, block, act, num_blocks) if depth > 1
                      else _blocks(block, channels, num_blocks, act))
        self.up = _blocks(block, channels, num_blocks, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(self.pool(x))))
        return self.skip(x) + resize_to(low, x)


class StackedHourglass(PoseModel):
    """Stacked hourglass: ``forward_all`` returns ``num_stacks`` heatmaps (N, K, H/4, W/4)."""

    def __init__(self, num_keypoints: int = 17, num_stacks: int = 2, channels: int = 256, depth: int = 4,
                 block: str = "bottleneck", stem: str = "newell", num_blocks: int = 1, act: str = "relu"):
        if num_stacks < 1 or depth < 1 or num_blocks < 1 or channels < 1:
            raise ValueError(f"num_stacks, depth, num_blocks and channels must be >= 1, got "
                             f"{num_stacks}, {depth}, {num_blocks}, {channels}")
        super().__init__(num_keypoints, feature_channels=channels)
        self.num_stacks = num_stacks
        self.min_input_size = 4 * 2 ** depth  # the innermost level must keep at least one pixel
        self.stem = self._make_stem(stem, channels, block, act)
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels, block, act, num_blocks) for _ in range(num_stacks))
        self.post = nn.ModuleList(
            nn.Sequential(_blocks(block, channels, num_blocks, act), ConvBNAct(channels, channels, 1, act=act))
            for _ in range(num_stacks))
        self.heads = nn.ModuleList(HeatmapHead(channels, num_keypoints) for _ in range(num_stacks))
        # re-injection of stage s's features and heatmaps into the input of stage s + 1
        self.merge_features = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(num_keypoints, channels, 1) for _ in range(num_stacks - 1))
        init_weights(self)

    @staticmethod
    def _make_stem(kind: str, channels: int, block: str, act: str) -> nn.Sequential:
        if kind == "newell":
            return nn.Sequential(ConvBNAct(3, 64, 7, stride=2, act=act), make_block(block, 64, 128, act),
                                 nn.MaxPool2d(2, 2), make_block(block, 128, 128, act),
                                 make_block(block, 128, channels, act))
        if kind == "lite":
            mid = max(channels // 2, 16)
            return nn.Sequential(ConvBNAct(3, mid, 3, stride=2, act=act),
                                 ConvBNAct(mid, mid, 3, stride=2, groups=mid, act=act),
                                 ConvBNAct(mid, channels, 1, act=act), make_block(block, channels, channels, act))
        raise ValueError(f"unknown hourglass stem {kind!r}; choose 'newell' or 'lite'")

    def _stages(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(features (N, C, H/4, W/4), heatmaps (N, K, H/4, W/4))] for every stack."""
        self.check_input(x)
        _, stages = run_stacks(self.stem(x), self.hourglasses, self.post, self.heads, self.merge_features,
                               self.merge_heatmaps)
        return stages

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [heatmaps for _, heatmaps in self._stages(x)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._stages(x)[-1][0]

    def stacks(self, start: int = 0, stop: int | None = None) -> "HourglassStacks":
        """Stacks ``start .. stop - 1`` as one module over this network's own layers (see :class:`HourglassStacks`);
        ``stem(x)`` is the input of stack 0."""
        stop = self.num_stacks if stop is None else stop
        if not 0 <= start <= stop <= self.num_stacks:
            raise ValueError(f"stacks {start}..{stop} are not a range of this network's {self.num_stacks} stacks")
        return HourglassStacks(self, start, stop)

    def split_trunk_head(self, *, final_conv: bool = False) -> TrunkHead:
        """Everything before the last stack's 1x1 heatmap conv | that conv (the intermediate heads stay in the
        trunk: their heatmaps are re-injected into the next stack). The same with ``final_conv``."""
        return TrunkHead(self.forward_features, nn.Sequential(OrderedDict(head=self.heads[-1])))


def run_stacks(x: torch.Tensor, hourglasses, post, heads, merge_features, merge_heatmaps
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Consecutive stacks from ``x``, the first one's input: features = post(hourglass(x)), heatmaps =
    head(features), then ``x + merge_features(features) + merge_heatmaps(heatmaps)`` is the next stack's input
    where a merge is given (one fewer than stacks at the network's end). Returns (the input after the last merge,
    [(features, heatmaps)] per stack)."""
    stages = []
    for s, (hourglass, refine, head) in enumerate(zip(hourglasses, post, heads)):
        features = refine(hourglass(x))
        heatmaps = head(features)
        stages.append((features, heatmaps))
        if s < len(merge_features):
            x = x + merge_features[s](features) + merge_heatmaps[s](heatmaps)
    return x, stages


class HourglassStacks(nn.Module):
    """Stacks ``start .. stop - 1`` of a :class:`StackedHourglass`, holding the network's own layers (no copies;
    ``copy.deepcopy`` gives an independent copy): ``forward(x) -> (x', stages)`` as :func:`run_stacks`, ``x``
    the input of stack ``start``, ``x'`` that of stack ``stop`` (``x`` itself when ``stop`` is the last)."""

    def __init__(self, model: StackedHourglass, start: int, stop: int):
        super().__init__()
        self.hourglasses = nn.ModuleList(model.hourglasses[start:stop])
        self.post = nn.ModuleList(model.post[start:stop])
        self.heads = nn.ModuleList(model.heads[start:stop])
        self.merge_features = nn.ModuleList(model.merge_features[start:stop])
        self.merge_heatmaps = nn.ModuleList(model.merge_heatmaps[start:stop])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        return run_stacks(x, self.hourglasses, self.post, self.heads, self.merge_features, self.merge_heatmaps)


def _build(defaults: dict, kwargs: dict) -> StackedHourglass:
    return StackedHourglass(**{**defaults, **kwargs})  # explicit kwargs override the preset


# -- Newell hourglass ----------------------------------------------------------------------------
@register_model
def hourglass(**kwargs) -> StackedHourglass:
    """Stacked hourglass, every size a keyword: ``num_stacks=2, channels=256, depth=4, block='bottleneck'``."""
    return _build({}, kwargs)


@register_model
def hourglass_8x256(**kwargs) -> StackedHourglass:
    """The paper's 8-stack, 256-channel network (the FPD teacher)."""
    return _build(dict(num_stacks=8, channels=256), kwargs)


@register_model
def hourglass_4x128(**kwargs) -> StackedHourglass:
    """FPD's student: 4 stacks, 128 channels."""
    return _build(dict(num_stacks=4, channels=128), kwargs)


@register_model
def hourglass_4x64(**kwargs) -> StackedHourglass:
    return _build(dict(num_stacks=4, channels=64), kwargs)


@register_model
def hourglass_2x128(**kwargs) -> StackedHourglass:
    return _build(dict(num_stacks=2, channels=128), kwargs)


@register_model
def hourglass_2x64(**kwargs) -> StackedHourglass:
    return _build(dict(num_stacks=2, channels=64), kwargs)


# -- lightweight hourglass -----------------------------------------------------------------------
_LITE = dict(block="dwsep", stem="lite")


@register_model
def lite_hourglass(**kwargs) -> StackedHourglass:
    """Lightweight hourglass: cheap stem, depthwise-separable residual blocks (``block='narrow'`` for
    C/4 bottlenecks); ``num_stacks=2, channels=64, depth=4`` unless given."""
    return _build(dict(_LITE, num_stacks=2, channels=64), kwargs)


@register_model
def lite_hourglass_2x64(**kwargs) -> StackedHourglass:
    return _build(dict(_LITE, num_stacks=2, channels=64), kwargs)


@register_model
def lite_hourglass_4x64(**kwargs) -> StackedHourglass:
    return _build(dict(_LITE, num_stacks=4, channels=64), kwargs)


@register_model
def lite_hourglass_2x128(**kwargs) -> StackedHourglass:
    return _build(dict(_LITE, num_stacks=2, channels=128), kwargs)


@register_model
def lite_hourglass_2x32(**kwargs) -> StackedHourglass:
    """The smallest preset: 2 stacks, 32 channels, depth 3."""
    return _build(dict(_LITE, num_stacks=2, channels=32, depth=3), kwargs)
