"""Exponential moving average of a network (mean teacher, SFDA's intermediate model)."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ema_update"]


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 - decay) · student, for every parameter and floating-point buffer
    (BatchNorm running statistics); integer buffers (``num_batches_tracked``) are copied. In place."""
    decay = float(decay)
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    if t_state.keys() != s_state.keys():
        raise ValueError("teacher and student must have the same architecture (state dict keys differ)")
    for name, t in t_state.items():
        s = s_state[name]
        if t.shape != s.shape:
            raise ValueError(f"{name}: teacher {tuple(t.shape)} vs student {tuple(s.shape)}")
        if t.is_floating_point():
            t.mul_(decay).add_(s.detach().to(t.dtype), alpha=1.0 - decay)
        else:
            t.copy_(s)
