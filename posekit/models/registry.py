"""Model registry: every network is a plain function registered by name (timm style) in :data:`MODELS`.

``build_model(name, num_keypoints=17, **kwargs)`` calls the registered function and stores the
JSON-able ``{"name", "kwargs"}`` that rebuilds it on the module as ``model.pk_config``, so a checkpoint
``{"model": state_dict, "config": ...}`` can recreate the exact architecture.
"""
from __future__ import annotations

import copy
import json
from typing import Callable

import torch.nn as nn

from posekit.registry import Registry

__all__ = ["MODELS", "register_model", "build_model", "list_models", "is_model", "model_config"]

#: model name -> builder function ``fn(num_keypoints=..., **kwargs) -> nn.Module``
MODELS = Registry("model")


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Decorator: register ``fn`` under ``name`` (default: the function's name).

    Usable bare (``@register_model``) or with a name (``@register_model(name="x")``).
    Registering the same name twice is an error, so two modules can't silently shadow each other.
    """
    return MODELS.register(fn, name=name)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` (e.g. ``'hourglass_*'``)."""
    return MODELS.names(pattern)


def is_model(name: str) -> bool:
    return name in MODELS


def build_model(name: str, num_keypoints: int = 17, **kwargs) -> nn.Module:
    """Build registered model ``name`` with ``num_keypoints`` heatmap channels.

    ``kwargs`` override the preset's defaults (``build_model('hourglass_2x64', act='hardmish')``) and must
    be JSON-able: they are stored in ``model.pk_config`` for checkpoints.
    """
    builder = MODELS.get(name)
    if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, int) or num_keypoints < 1:
        raise ValueError(f"num_keypoints must be a positive int, got {num_keypoints!r}")
    config = {"name": name, "kwargs": {"num_keypoints": num_keypoints, **kwargs}}
    try:
        # JSON round trip: the stored config is exactly what a checkpoint will hold (tuples -> lists).
        config = json.loads(json.dumps(config))
    except TypeError as err:
        raise ValueError(f"model {name!r}: keyword arguments must be JSON-able to be checkpointed: {err}") from None
    model = builder(num_keypoints=num_keypoints, **kwargs)
    model.pk_config = config
    return model


def model_config(model: nn.Module) -> dict:
    """The ``{"name": str, "kwargs": dict}`` that rebuilds ``model`` with :func:`build_model` (a copy)."""
    config = getattr(model, "pk_config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} was not created by build_model(): it carries no pk_config")
    return copy.deepcopy(config)
