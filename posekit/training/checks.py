"""Input checks that say what was expected: the shape and kind of a tensor argument."""
from __future__ import annotations

import torch

__all__ = ["check_tensor"]


def check_tensor(name: str, value, ndim: int, shape_text: str) -> torch.Tensor:
    """``value`` if it is a floating-point tensor of ``ndim`` dimensions, else a TypeError / ValueError naming
    ``name`` and the expected ``shape_text`` (e.g. ``"(N, K, h, w)"``)."""
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor {shape_text}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be {shape_text}, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value
