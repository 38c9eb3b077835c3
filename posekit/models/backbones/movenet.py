"""MoveNet (Google, 2021) as a native posekit model: MobileNetV2 + FPN to stride 4 + CenterNet heads.

The network of TensorFlow's CenterNet MobileNetV2-FPN feature extractor, as MoveNet ships it:

* **trunk** -- Keras MobileNetV2 at depth multiplier ``width`` (1.0 Lightning, 1.75 Thunder, 1.5 MultiPose):
  a 3x3 stride-2 stem, 17 inverted-residual blocks, a 1x1 conv to 1280 channels; ReLU6 everywhere;
* **FPN** -- 1x1 laterals on the stride-4/8/16 block outputs (blocks 2, 5, 9) and on the 1280-channel top
  map (24/32/64/64 channels), top-down x2 bilinear upsampling, and after each sum a separable conv
  (3x3 depthwise without bias + 1x1 with bias) + ReLU: 64 -> 32 -> 24 -> 24 channels at stride 4;
* **heads** -- per output a separable conv (24 -> 96) + ReLU + 1x1 conv: ``heatmap`` (K) and, with
  ``heads="all"``, MoveNet's other CenterNet heads ``center`` (1), ``regress`` (2K, centre -> joint
  ``(dy, dx)`` pairs), ``offset`` (2K, sub-pixel ``(dy, dx)``), and for MultiPose ``box_scale`` (2, box
  ``(h, w)``) and ``box_offset`` (2).

The registered models default to ``heads="heatmap"``: posekit trains heatmaps, and heads that no loss
reaches would break DDP and posekit's model contract (every parameter gets a gradient from ``forward_all``).
The imported pretrained checkpoints use ``heads="all"`` (what :mod:`posekit.codecs.movenet` decodes).
``act=None`` keeps MoveNet's activations (ReLU6 in the trunk, ReLU elsewhere; the pretrained weights need
them); a posekit activation name (``"hardmish"``, ...) replaces every one of them.

BatchNorm is folded into the convolutions (so every conv but the separable depthwise ones has a bias), as
in the released graphs; :mod:`posekit.models.movenet_import` loads those weights unchanged. Two TensorFlow
details are reproduced exactly: stride-2 convs use TF "SAME" padding, which on the even sizes this network
sees (sides are multiples of 32) is one zero row/column at the bottom/right only, and the upsampling is
bilinear with half-pixel centres (``align_corners=False``).

posekit contract: input ``(N, 3, H, W)`` normalised with ImageNet mean/std as every posekit pipeline feeds
it (``input_norm="imagenet"``); a fixed per-channel affine turns that back into MoveNet's own
``rgb / 127.5 - 1`` before the padded stem (folding it into the stem would be wrong at the padded border).
``forward(x)`` is the keypoint heatmaps after the sigmoid ``(N, K, H/4, W/4)`` (``output="logits"``: before it,
what posekit's ``dsnt`` head reads as logits); ``forward_heads(x)`` gives
the raw logits of every head the model has; ``forward_features(x)`` is the shared FPN feature ``(N, 24, H/4, W/4)`` that all
heads read (the trunk a new head would sit on). The pretrained keypoints are COCO-17 (``skeleton``).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..base import PoseModel, TrunkHead
from ..heads import HeatmapHead
from ..layers import make_act, make_divisible
from ..registry import register_model

__all__ = ["MoveNet", "MobileNetV2Trunk", "MoveNetFPN", "CenterNetHead", "InvertedResidual", "pad_same_stride2",
           "upsample2x", "MOVENET_VARIANTS", "MOVENET_NORM_SCALE", "head_channels"]

#: variant -> depth multiplier of the trunk, input side of the released model, MultiPose box heads or not
MOVENET_VARIANTS = {
    "lightning": {"width": 1.0, "input_size": 192, "multipose": False},
    "thunder": {"width": 1.75, "input_size": 256, "multipose": False},
    "multipose": {"width": 1.5, "input_size": 256, "multipose": True},
}
#: MoveNet's input scale 1 / 127.5 as the graphs store it (rounded to float16): x = rgb * scale - 1
MOVENET_NORM_SCALE = 0.007843017578125
#: MobileNetV2 stages: (expansion, channels at width 1.0, blocks, stride of the first block)
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))
#: indices of the blocks whose outputs feed the FPN (last block at stride 4, 8 and 16)
_FPN_TAPS = (2, 5, 9)
_TOP_CHANNELS = 1280
_FPN_CHANNELS = (24, 32, 64, 64)     # laterals at stride 4, 8, 16, 32
_HEAD_HIDDEN = 96
_PRIOR_LOGIT = -2.19                 # CenterNet's centre-heatmap bias init: sigmoid = 0.1 everywhere


def activation(act: str | None, movenet_default: type[nn.Module]) -> nn.Module:
    """``make_act(act)``, or MoveNet's own activation at this place (ReLU6 / ReLU) when ``act`` is None."""
    return movenet_default() if act is None else make_act(act)


def pad_same_stride2(x: torch.Tensor) -> torch.Tensor:
    """TF "SAME" padding of a 3x3 stride-2 conv on an even-sized map: (N, C, H, W) -> (N, C, H+1, W+1).

    TF puts the odd padding pixel after: here all of it, one zero row at the bottom and one zero column on
    the right (PyTorch's symmetric ``padding=1`` would shift every output by half an input pixel).
    """
    return F.pad(x, (0, 1, 0, 1))


class PadSameStride2(nn.Module):
    """Module form of :func:`pad_same_stride2` (so strided convs stay plain ``nn.Sequential``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_same_stride2(x)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Module:
    """3x3 conv keeping TF "SAME" geometry: symmetric padding at stride 1, bottom/right padding at stride 2."""
    if stride == 1:
        return nn.Conv2d(in_channels, out_channels, 3, padding=1, groups=groups, bias=bias)
    return nn.Sequential(PadSameStride2(), nn.Conv2d(in_channels, out_channels, 3, stride, groups=groups, bias=bias))


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6] -> 3x3 depthwise (stride) + ReLU6 -> 1x1 linear project.

    (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride); the input is added back when the
    shapes allow it (stride 1, same channels). Block 0 has no expansion (``expansion=1``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, act: str | None = None):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = (nn.Sequential(conv1x1(in_channels, hidden), activation(act, nn.ReLU6)) if expansion != 1
                       else nn.Identity())
        self.depthwise = nn.Sequential(conv3x3(hidden, hidden, stride, groups=hidden), activation(act, nn.ReLU6))
        self.project = conv1x1(hidden, out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def mobilenet_v2_channels(width: float) -> list[tuple[int, int, int, int]]:
    """Per block ``(in_channels, out_channels, stride, expansion)`` of Keras MobileNetV2 at depth multiplier
    ``width`` (output channels rounded to multiples of 8, as Keras does)."""
    blocks = []
    in_channels = make_divisible(32 * width)
    for expansion, channels, count, stride in _MOBILENET_V2_STAGES:
        out_channels = make_divisible(channels * width)
        for i in range(count):
            blocks.append((in_channels, out_channels, stride if i == 0 else 1, expansion))
            in_channels = out_channels
    return blocks


class MobileNetV2Trunk(nn.Module):
    """(N, 3, H, W) MoveNet-normalised -> the four FPN inputs at strides 4, 8, 16, 32.

    The stride-32 map is the 1x1 conv to 1280 channels (Keras ``out_relu``; 1280 at every width here).
    """

    def __init__(self, width: float = 1.0, act: str | None = None):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        specs = mobilenet_v2_channels(width)
        self.stem = nn.Sequential(conv3x3(3, specs[0][0], stride=2), activation(act, nn.ReLU6))
        self.blocks = nn.ModuleList(InvertedResidual(*spec, act=act) for spec in specs)
        self.last = nn.Sequential(conv1x1(specs[-1][1], _TOP_CHANNELS), activation(act, nn.ReLU6))
        self.tap_channels = tuple(specs[i][1] for i in _FPN_TAPS) + (_TOP_CHANNELS,)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _FPN_TAPS:
                taps.append(x)
        taps.append(self.last(x))
        return taps


class SeparableConvAct(nn.Sequential):
    """Keras SeparableConv2D + ReLU: 3x3 depthwise (no bias) -> 1x1 (bias) -> act. (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, act: str | None = None):
        super().__init__(conv3x3(in_channels, in_channels, groups=in_channels, bias=False),
                         conv1x1(in_channels, out_channels), activation(act, nn.ReLU))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 with half-pixel centres (TF ``resize_bilinear(half_pixel_centers=True)``): (N, C, H, W) -> (N, C, 2H, 2W)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class MoveNetFPN(nn.Module):
    """Top-down FPN: taps at strides 4, 8, 16, 32 -> (N, 24, H/4, W/4).

    ``lateral[i]`` is the 1x1 conv on the stride-``4 * 2^i`` tap; ``smooth[i]`` the separable conv after
    the sum at stride ``16 / 2^i`` (64 -> 32, 32 -> 24, 24 -> 24 channels).
    """

    def __init__(self, tap_channels: tuple[int, int, int, int], act: str | None = None):
        super().__init__()
        self.lateral = nn.ModuleList(conv1x1(c, f) for c, f in zip(tap_channels, _FPN_CHANNELS))
        self.smooth = nn.ModuleList(SeparableConvAct(_FPN_CHANNELS[i], _FPN_CHANNELS[i - 1], act) for i in (2, 1))
        self.smooth.append(SeparableConvAct(_FPN_CHANNELS[0], _FPN_CHANNELS[0], act))
        self.out_channels = _FPN_CHANNELS[0]

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[3](taps[3])
        for level, smooth in zip((2, 1, 0), self.smooth):
            x = smooth(upsample2x(x) + self.lateral[level](taps[level]))
        return x


class CenterNetHead(nn.Sequential):
    """Separable conv (C -> 96) + act -> 1x1 conv: (N, C, h, w) -> (N, out_channels, h, w) raw outputs.

    ``output`` replaces the final 1x1 conv (the heatmap head uses posekit's :class:`HeatmapHead`).
    """

    def __init__(self, in_channels: int, out_channels: int, act: str | None = None, bias_init: float = 0.0,
                 output: nn.Conv2d | None = None):
        if output is None:
            output = conv1x1(_HEAD_HIDDEN, out_channels)
            nn.init.constant_(output.bias, bias_init)
        super().__init__(SeparableConvAct(in_channels, _HEAD_HIDDEN, act), output)


def head_channels(num_keypoints: int, multipose: bool, heads: str = "all") -> dict[str, int]:
    """Raw output channels per head name (in the order the graphs list them); ``heads="heatmap"``: that one only."""
    if heads not in ("all", "heatmap"):
        raise ValueError(f"heads must be 'all' or 'heatmap', got {heads!r}")
    channels = {"center": 1, "regress": 2 * num_keypoints, "heatmap": num_keypoints, "offset": 2 * num_keypoints}
    if multipose:
        channels.update(box_scale=2, box_offset=2)
    return channels if heads == "all" else {"heatmap": num_keypoints}


def build_head(name: str, in_channels: int, channels: int, act: str | None) -> CenterNetHead:
    """The head ``name``: posekit's small-init heatmap conv; CenterNet's prior bias on the centre logits."""
    if name == "heatmap":
        return CenterNetHead(in_channels, channels, act, output=HeatmapHead(_HEAD_HIDDEN, channels))
    return CenterNetHead(in_channels, channels, act, bias_init=_PRIOR_LOGIT if name == "center" else 0.0)


def posekit_to_movenet_affine() -> tuple[np.ndarray, np.ndarray]:
    """(3,) scale and (3,) shift taking posekit's ImageNet-normalised input to MoveNet's ``rgb * s - 1``."""
    from posekit.data.transforms import IMAGE_MEAN, IMAGE_STD  # one source of truth for posekit's input
    mean, std = IMAGE_MEAN.astype(np.float64), IMAGE_STD.astype(np.float64)
    return std * MOVENET_NORM_SCALE, mean * MOVENET_NORM_SCALE - 1.0


class MoveNet(PoseModel):
    """MoveNet network; sides must be multiples of 32 (the pretrained models: 192 Lightning, 256 Thunder,
    256 on the long side MultiPose).

    Args:
        num_keypoints: K (17 for the pretrained COCO models).
        width: MobileNetV2 depth multiplier (1.0 Lightning, 1.75 Thunder, 1.5 MultiPose).
        multipose: MultiPose's ``box_scale`` and ``box_offset`` heads come with ``heads="all"``.
        heads: ``"heatmap"`` (what posekit trains) or ``"all"`` (MoveNet's CenterNet heads, for its decoders).
        act: None (MoveNet's ReLU6 / ReLU) or a posekit activation name for every activation layer.
        input_norm: ``"imagenet"`` (posekit's input) or ``"movenet"`` (already ``rgb / 127.5 - 1``).
        output: ``"heatmap"`` (sigmoid heatmaps, what posekit trains), ``"logits"`` (the heatmap head's raw
            logits, for the ``dsnt`` head's soft-argmax) or ``"packed"`` (all raw heads, for MoveNet's own
            decoding by ``MoveNetCodec``; inference only).
    """

    input_multiple = 32
    min_input_size = 32

    def __init__(self, num_keypoints: int = 17, width: float = 1.0, multipose: bool = False, heads: str = "heatmap",
                 act: str | None = None, input_norm: str = "imagenet", output: str = "heatmap"):
        super().__init__(num_keypoints, feature_channels=_FPN_CHANNELS[0])
        if output not in ("heatmap", "logits", "packed") or (output == "packed" and heads != "all"):
            raise ValueError(f"output must be 'heatmap', 'logits' or 'packed' (packed needs heads='all'), "
                             f"got {output!r}")
        self.output = output
        #: the heatmaps pass through a sigmoid (PoseModel.output_activation); the logits and packed outputs do not
        self.output_activation = "sigmoid" if output == "heatmap" else None
        if input_norm not in ("imagenet", "movenet"):
            raise ValueError(f"input_norm must be 'imagenet' or 'movenet', got {input_norm!r}")
        self.width = float(width)
        self.multipose = bool(multipose)
        self.input_norm = input_norm
        #: keypoint set of the pretrained weights (posekit.skeletons name); None for another K
        self.skeleton = "coco" if num_keypoints == 17 else None
        scale, shift = posekit_to_movenet_affine() if input_norm == "imagenet" else (np.ones(3), np.zeros(3))
        # not persistent: a fixed property of the input convention, not a weight of the checkpoint
        self.register_buffer("input_scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.trunk = MobileNetV2Trunk(width, act)
        self.fpn = MoveNetFPN(self.trunk.tap_channels, act)
        self.heads = nn.ModuleDict((name, build_head(name, self.fpn.out_channels, channels, act))
                                   for name, channels in head_channels(num_keypoints, multipose, heads).items())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> shared FPN feature (N, 24, H/4, W/4), the input of every head."""
        self.check_input(x)
        return self.fpn(self.trunk(x * self.input_scale + self.input_shift))

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {head name: raw logits (N, C, H/4, W/4)} of every head the model has, before any sigmoid."""
        features = self.forward_features(x)
        return {name: head(features) for name, head in self.heads.items()}

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [keypoint heatmaps after the sigmoid (N, K, H/4, W/4)] (only that head runs;
        ``output="logits"``: the same before the sigmoid).

        With ``output="packed"``: [every head's raw output concatenated along the channels in
        :func:`head_channels` order], the one tensor :class:`~posekit.codecs.movenet.MoveNetCodec` decodes
        (so MoveNet's own decoding runs through the predictor, flip test and ONNX export unchanged)."""
        if self.output == "packed":
            return [torch.cat(list(self.forward_heads(x).values()), dim=1)]
        logits = self.heads["heatmap"](self.forward_features(x))
        return [torch.sigmoid(logits) if self.output_activation == "sigmoid" else logits]

    def split_trunk_head(self, *, final_conv: bool = False) -> TrunkHead:
        """Backbone + FPN (``forward_features``) | the CenterNet heatmap head + sigmoid; with ``final_conv=True``
        the head's separable conv joins the trunk and the head is the 1x1 heatmap conv + sigmoid (no sigmoid with
        ``output="logits"``). Not for ``output="packed"`` (the packed output is not one head's)."""
        if self.output == "packed":
            raise NotImplementedError("a MoveNet with output='packed' has no single heatmap head to split off")
        heatmap = self.heads["heatmap"]
        sigmoid = {"sigmoid": nn.Sigmoid()} if self.output_activation == "sigmoid" else {}
        if not final_conv:
            return TrunkHead(self.forward_features, nn.Sequential(OrderedDict(heatmap=heatmap, **sigmoid)))
        hidden, output = heatmap[0], heatmap[1]
        return TrunkHead(lambda x: hidden(self.forward_features(x)),
                         nn.Sequential(OrderedDict(output=output, **sigmoid)))


def _build(variant: str, kwargs: dict) -> MoveNet:
    preset = MOVENET_VARIANTS[variant]
    return MoveNet(**{"width": preset["width"], "multipose": preset["multipose"], **kwargs})


@register_model
def movenet_lightning(num_keypoints: int = 17, **kwargs) -> MoveNet:
    """MoveNet SinglePose Lightning: MobileNetV2 x1.0, 192x192 input when pretrained."""
    return _build("lightning", {"num_keypoints": num_keypoints, **kwargs})


@register_model
def movenet_thunder(num_keypoints: int = 17, **kwargs) -> MoveNet:
    """MoveNet SinglePose Thunder: MobileNetV2 x1.75, 256x256 input when pretrained."""
    return _build("thunder", {"num_keypoints": num_keypoints, **kwargs})


@register_model
def movenet_multipose(num_keypoints: int = 17, **kwargs) -> MoveNet:
    """MoveNet MultiPose Lightning: MobileNetV2 x1.5 (as in the released graph) + box heads."""
    return _build("multipose", {"num_keypoints": num_keypoints, **kwargs})
