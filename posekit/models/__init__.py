"""Model zoo: ``build_model(name, num_keypoints=17, **kwargs)``, ``list_models()``, ``register_model``.

Every model maps ``(N, 3, H, W)`` crops to ``(N, K, H/4, W/4)`` heatmaps; see :mod:`posekit.models.base`.
"""
from __future__ import annotations

import copy

import torch.nn as nn

from . import backbones  # noqa: F401  (registers the models)
from .base import PoseModel, SingleStageModel
from .layers import HardMish, hard_mish, make_act
from .registry import build_model, is_model, list_models, model_config, register_model

__all__ = ["build_model", "list_models", "is_model", "register_model", "model_config", "reparameterize",
           "PoseModel", "SingleStageModel", "make_act", "HardMish", "hard_mish"]


def reparameterize(model: nn.Module) -> nn.Module:
    """A NEW deploy-form copy of ``model``: ``model.reparameterize()`` when the model has re-parameterisable
    branches (RepVGG), otherwise a plain deep copy. ``model`` itself is never modified."""
    if hasattr(model, "reparameterize"):
        return model.reparameterize()
    return copy.deepcopy(model)
