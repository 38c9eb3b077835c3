"""Mixed precision for a training step: bf16 autocast on the CPU, fp16 autocast on CUDA.

Only the step's forward pass runs under autocast: the weights, their gradients and the optimiser state stay
float32 (autocast casts copies of the weights per op; backward accumulates float32 gradients into the float32
parameters), so checkpoints are float32 whatever the setting. The loss is handed on as float32
(:func:`float32_loss`) so the NaN guard and backward see the same dtype as without autocast.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast", "float32_loss", "AUTOCAST_DTYPES"]

#: the reduced precision autocast computes in, per device type: bf16 on CPUs (fast on AVX-512 BF16 / AMX
#: and needs no loss scaling: the exponent range of float32), fp16 on CUDA as before
AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}


def autocast(device_type: str, enabled: bool):
    """The context a training step's forward pass runs in: autocast to :data:`AUTOCAST_DTYPES` when
    ``enabled`` (a null context otherwise, or on a device type without a reduced precision here)."""
    if not enabled or device_type not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=AUTOCAST_DTYPES[device_type])


def float32_loss(logs: dict) -> dict:
    """``logs`` with ``logs["loss"]`` as float32 (unchanged, the same tensor, when it already is): a loss
    summed under autocast may be bf16, and the guard and the log should not depend on that."""
    loss = logs["loss"]
    if torch.is_tensor(loss) and loss.dtype != torch.float32:
        logs = {**logs, "loss": loss.float()}
    return logs
