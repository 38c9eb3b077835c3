"""Base classes fixing the model contract (see docs/architecture.md).

Every model maps image crops ``x: (N, 3, H, W)`` to heatmaps ``(N, K, H/4, W/4)``:

* ``forward(x)`` -> heatmaps of the last stage;
* ``forward_all(x)`` -> list of every supervised stage, last one == ``forward(x)``;
* ``forward_features(x)`` -> ``(N, feature_channels, H/4, W/4)``, the input of the final 1x1 heatmap conv
  (a reusable trunk for other heads);
* attributes ``num_keypoints``, ``output_stride`` (4), ``feature_channels``, ``input_multiple``
  (H and W must be multiples of it) and ``output_activation`` (None: the heatmaps are the final conv's raw
  output; ``"sigmoid"``: they pass through one, as MoveNet's do);
* ``split_trunk_head()`` -> :class:`TrunkHead`: how the network divides into a trunk and a head, for methods
  that freeze, copy or share one of the parts (SFDA, OKDHP). A model that does not say raises.

:class:`CoordinateModel` puts a coordinate head (see :mod:`posekit.models.heads`) on any such model's
``forward_features``: the same contract, except that ``forward`` returns ``(N, K, D)`` coordinates.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

__all__ = ["PoseModel", "SingleStageModel", "EncoderDecoderModel", "CoordinateModel", "TrunkHead"]


@dataclass(frozen=True)
class TrunkHead:
    """A network divided into a trunk and a head over its own layers (no copies): ``head(trunk(x)) == model(x)``.

    * ``trunk``: images (N, 3, H, W) -> features (the input is checked);
    * ``head``: the layers after the trunk, applied in order, named as the model names them;
    * ``stages``: the trunk as a sequence of stages when it is one (an encoder to stride 32, run on checked
      input: ``trunk(x) == stages(x)``), else None.
    """
    trunk: Callable[[torch.Tensor], torch.Tensor]
    head: nn.Sequential
    stages: nn.Sequential | None = None


class PoseModel(nn.Module):
    output_stride: int = 4
    #: H and W must be multiples of this (the network's total downsampling before it upsamples again).
    input_multiple: int = 4
    #: smallest H and W the network accepts (e.g. an hourglass needs 4 * 2^depth).
    min_input_size: int = 4
    #: what ``forward`` applies to the final heatmap conv's output: None (nothing: the maps are logits-like raw
    #: values) or ``"sigmoid"`` (MoveNet); the ``dsnt`` head needs None (it reads the maps as logits)
    output_activation: str | None = None

    def __init__(self, num_keypoints: int, feature_channels: int):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        self.num_keypoints = num_keypoints
        self.feature_channels = feature_channels

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear ValueError for inputs the network can't map to (N, K, H/4, W/4)."""
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return  # the exporter traces with a valid dummy input; shape checks would only add warnings
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects images (N, 3, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.input_multiple
        if h % m or w % m or min(h, w) < self.min_input_size:
            raise ValueError(f"{type(self).__name__}: input {h}x{w} (HxW) must have sides that are multiples of {m} "
                             f"and at least {self.min_input_size}")

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[-1]

    def split_trunk_head(self, *, final_conv: bool = False) -> TrunkHead:
        """How the network divides into trunk and head: the architecture's own division, or with
        ``final_conv=True`` the final 1x1 heatmap convolution as the head and ``forward_features`` as the trunk."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it splits into trunk and head "
                                  "(PoseModel.split_trunk_head)")


class SingleStageModel(PoseModel):
    """trunk ``forward_features`` + 1x1 ``self.head``: one supervised stage."""

    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.forward(x)]

    def split_trunk_head(self, *, final_conv: bool = False) -> TrunkHead:
        """``forward_features`` | the 1x1 heatmap ``head`` (what a single-stage model is made of)."""
        return TrunkHead(self.forward_features, nn.Sequential(OrderedDict(head=self.head)))


class EncoderDecoderModel(SingleStageModel):
    """``trunk`` (an ``nn.Sequential`` encoder to stride 32) -> ``upsample`` (decoder to stride 4) -> 1x1
    ``head``: SimpleBaseline and RepVGG."""

    trunk: nn.Sequential
    upsample: nn.Module

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.trunk(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.forward_trunk(x))

    def split_trunk_head(self, *, final_conv: bool = False) -> TrunkHead:
        """The encoder | upsampler + heatmap conv (``final_conv=True``: features | heatmap conv)."""
        if final_conv:
            return super().split_trunk_head(final_conv=True)
        return TrunkHead(self.forward_trunk, nn.Sequential(OrderedDict(upsample=self.upsample, head=self.head)),
                         self.trunk)


class CoordinateModel(PoseModel):
    """A registered backbone's features + a coordinate head (global pool + linear, RLE, ...).

    * ``forward(x)`` -> the head's raw output ``(N, K, D)`` (``D = 2`` coordinates, ``4`` with RLE's raw
      sigmas), what the codec decodes and what ONNX exports;
    * ``forward_all(x)`` -> ``[forward(x)]`` (one supervised stage);
    * ``forward_features(x)`` -> the backbone's features (N, C, H/4, W/4).

    The backbone's own 1x1 heatmap convolution stays in the module (so its ``reparameterize`` and state
    dict keep working) but is not used: its parameters get no gradient.
    """

    def __init__(self, backbone: PoseModel, head: nn.Module):
        super().__init__(backbone.num_keypoints, backbone.feature_channels)
        self.backbone = backbone
        self.head = head
        self.output_stride = backbone.output_stride
        self.input_multiple = backbone.input_multiple
        self.min_input_size = backbone.min_input_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.forward(x)]

    @torch.no_grad()
    def reparameterize(self) -> "CoordinateModel":
        """A NEW deploy-form copy (the backbone's branches fused when it can; ``self`` is untouched)."""
        backbone = self.backbone.reparameterize() if hasattr(self.backbone, "reparameterize") \
            else copy.deepcopy(self.backbone)
        deployed = CoordinateModel(backbone, copy.deepcopy(self.head))
        deployed.train(self.training)
        return deployed
