"""Parameter and FLOP counts.

FLOPs are exactly what :class:`torch.utils.flop_counter.FlopCounterMode` reports for one forward pass:
it counts multiply-accumulates as **2 FLOPs** (a Conv2d(3, 8, 3, padding=1) on 8x8 is 2 * 3 * 8 * 9 * 64
= 27648) and counts only matmul-like ops (convolutions, transposed convolutions, linear layers);
BatchNorm, activations, pooling, additions and interpolation count 0. Divide by 2 for MACs.

The forward runs on the ``meta`` device (shapes only, no arithmetic), so even an 8-stack hourglass at
256x256 is counted in well under a second without allocating activations.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_flops", "model_info"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_size(input_size) -> tuple[int, int]:
    try:
        w, h = input_size
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be a pair (W, H), got {input_size!r}") from None
    if int(w) != w or int(h) != h or w < 1 or h < 1:
        raise ValueError(f"input_size must hold two positive integers, got {input_size!r}")
    return int(w), int(h)


def count_flops(model: nn.Module, input_size=(128, 128), batch: int = 1) -> int:
    """FLOPs (2 per multiply-accumulate, see module docstring) of ``model(x)`` for ``x: (batch, 3, H, W)``,
    ``input_size = (W, H)``. Runs in eval mode on meta tensors; ``model`` is not modified."""
    w, h = _check_size(input_size)
    meta = {name: torch.empty_like(t, device="meta") for name, t in
            [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(batch, 3, h, w, device="meta")
    was_training = model.training
    model.eval()  # BN in train mode would refuse 1x1 maps at batch 1; FLOPs are the same either way
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, meta, (x,))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_info(name_or_model: str | nn.Module, input_size=(128, 128), num_keypoints: int = 17,
               **model_kwargs) -> dict:
    """``{'params': int, 'flops': int, 'gflops': float}`` of a model or a registered name at ``input_size`` (W, H).

    A name is built on the meta device (no weights are initialised), so this is cheap for any preset.
    """
    if isinstance(name_or_model, str):
        from .registry import build_model

        with torch.device("meta"):
            model = build_model(name_or_model, num_keypoints=num_keypoints, **model_kwargs)
    else:
        model = name_or_model
    flops = count_flops(model, input_size)
    return {"params": count_params(model), "flops": flops, "gflops": flops / 1e9}
