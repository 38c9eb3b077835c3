"""Heads: the SimpleBaseline deconvolution upsampler, the final 1x1 heatmap convolution, and the coordinate
heads that :func:`build_pose_model` puts on any registered backbone.

Head types (the ``head`` training option, registered in :data:`HEADS`: name -> head module class; the codec
and the loss that go with each are chosen by the trainer, see :func:`posekit.losses.build_head_loss`):

* ``heatmap`` -- the backbone as registered: its 1x1 conv gives Gaussian-heatmap predictions (MSE);
* ``dsnt``    -- the same network, its maps read as logits and decoded by expectation (IntegralCodec); a
  backbone whose maps pass through an activation (``output_activation``, e.g. MoveNet's sigmoid) must be
  built to give the logits instead (MoveNet: ``model_kwargs={"output": "logits"}``), else it is refused;
* ``regression`` -- :class:`RegressionHead`: global average pool + linear -> (N, K, 2) coordinates;
* ``rle``     -- :class:`RLEHead`: the same with two more outputs per joint, RLE's raw sigmas -> (N, K, 4).

A head class whose ``part_of_backbone`` is true (:class:`HeatmapHead`) is already inside every registered
backbone: its head types add no module. A checkpoint records the backbone and the head in its
:class:`~posekit.config.PoseConfig`, whose ``build_model()`` rebuilds the network.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from posekit.registry import Registry

from .base import CoordinateModel
from .layers import fuse_bn, make_act

__all__ = ["HeatmapHead", "DeconvBlock", "DeconvUpsampler", "init_heatmap_conv", "RegressionHead", "RLEHead",
           "HEADS", "HEAD_TYPES", "HEATMAP_OUTPUT_HEADS", "LOGIT_MAP_HEADS", "build_pose_model", "head_type"]

#: head type -> head module class
HEADS = Registry("head")


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
    #: every registered backbone ends in this head: its head types add no module
    part_of_backbone = True

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


class RegressionHead(nn.Module):
    """Global average pool + linear: features (N, C, h, w) -> (N, K, 2) coordinates (DeepPose / mmpose's
    RegressionHead). Weights start ~ normal(0, ``init_std``) with zero bias, so the untrained head predicts
    about 0 -- the crop centre in normalised coordinates."""

    #: tells :func:`~posekit.models.layers.init_weights` to leave this head's init alone
    keeps_own_init = True
    #: put on the backbone's features by :func:`build_pose_model`
    part_of_backbone = False
    #: numbers predicted per joint
    values_per_joint = 2

    def __init__(self, in_channels: int, num_keypoints: int, init_std: float = 0.01):
        super().__init__()
        if in_channels < 1 or num_keypoints < 1:
            raise ValueError(f"in_channels and num_keypoints must be >= 1, got {in_channels}, {num_keypoints}")
        self.num_keypoints = num_keypoints
        self.fc = nn.Linear(in_channels, num_keypoints * self.values_per_joint)
        nn.init.normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return self.fc(pooled).reshape(-1, self.num_keypoints, self.values_per_joint)


class RLEHead(RegressionHead):
    """Regression head for RLE: (N, K, 4) = ``(mu_x, mu_y, raw_sigma_x, raw_sigma_y)`` per joint. The raw
    sigmas go through :func:`posekit.codecs.rle.rle_sigma` in the loss and in decoding (zero bias: sigma
    starts at 0.5)."""

    values_per_joint = 4


HEADS.register(HeatmapHead, name="heatmap")     # Gaussian heatmaps (MSE)
HEADS.register(HeatmapHead, name="dsnt")        # the same maps read as logits, decoded by expectation
HEADS.register(RegressionHead, name="regression")
HEADS.register(RLEHead, name="rle")

#: the registered head types
HEAD_TYPES = tuple(HEADS.names())
#: head types whose network output is the backbone's own heatmap (logit) maps
HEATMAP_OUTPUT_HEADS = tuple(name for name, head in HEADS.items() if head.part_of_backbone)
#: head types that read the backbone's maps as logits (a softmax over each map): no output activation allowed
LOGIT_MAP_HEADS = ("dsnt",)


def head_type(name: str) -> str:
    """``name`` if it is a registered head type, else the registry's ValueError listing them."""
    HEADS.get(name)
    return name


def build_pose_model(name: str, num_keypoints: int = 17, model_kwargs: dict | None = None, head: str = "heatmap",
                     head_kwargs: dict | None = None) -> nn.Module:
    """Registered backbone ``name`` with the network part of ``head``.

    ``heatmap`` / ``dsnt``: exactly ``build_model(name, num_keypoints, **model_kwargs)`` (same weights for the
    same seed; ``dsnt`` refuses a backbone with an ``output_activation``). ``regression`` / ``rle``: :class:`~posekit.models.base.CoordinateModel` of that backbone and
    a :class:`RegressionHead` / :class:`RLEHead` built with ``head_kwargs`` (e.g. ``{"init_std": 0.01}``).
    """
    from .registry import build_model

    head_cls = HEADS.get(head)
    model = build_model(name, num_keypoints=num_keypoints, **(model_kwargs or {}))
    if head_cls.part_of_backbone:
        if head_kwargs:
            raise ValueError(f"head {head!r} uses the backbone's own 1x1 heatmap convolution: it takes no "
                             f"head_kwargs, got {sorted(head_kwargs)}")
        activation = getattr(model, "output_activation", None)
        if head in LOGIT_MAP_HEADS and activation is not None:
            raise ValueError(f"head {head!r} reads the maps as logits, but {name}'s output goes through a "
                             f"{activation}: build it to output the logits (MoveNet: model_kwargs "
                             f'{{"output": "logits"}})')
        return model
    try:
        module = head_cls(model.feature_channels, num_keypoints, **(head_kwargs or {}))
    except TypeError as err:  # an unknown head_kwargs key: a config error, reported as such
        raise ValueError(f"head {head!r}: bad head_kwargs {head_kwargs}: {err}") from None
    return CoordinateModel(model, module)

