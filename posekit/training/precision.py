"""Mixed precision for a training step: bf16 autocast on the CPU, fp16 autocast on CUDA.

Only the step's forward pass runs under autocast: the weights, their gradients and the optimiser state stay
float32 (autocast casts copies of the weights per op; backward accumulates float32 gradients into the float32
parameters), so checkpoints are float32 whatever the setting. The loss is handed on as float32
(:func:`float32_loss`) so the NaN guard and backward see the same dtype as without autocast.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

__all__ = ["autocast", "float32_loss", "AUTOCAST_DTYPES", "NATIVE_BF16_FLAGS", "cpu_has_native_bf16",
           "slow_autocast_warning"]

#: the reduced precision autocast computes in, per device type: bf16 on CPUs (fast on AVX-512 BF16 / AMX
#: and needs no loss scaling: the exponent range of float32), fp16 on CUDA as before
AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}


def autocast(device_type: str, enabled: bool):
    """The context a training step's forward pass runs in: autocast to :data:`AUTOCAST_DTYPES` when
    ``enabled`` (a null context otherwise, or on a device type without a reduced precision here)."""
    if not enabled or device_type not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=AUTOCAST_DTYPES[device_type])


#: /proc/cpuinfo flags of CPUs that compute bf16 natively; without one, torch's CPU kernels emulate bf16 and a
#: bf16 training step is many times slower than float32 (benchmarks/results/train_speed_avx2.md: about 10x)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU has a native bf16 instruction set (:data:`NATIVE_BF16_FLAGS`); None when unknown (no
    /proc/cpuinfo to read). ``cpuinfo``: that file's text, for tests."""
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
        if cpuinfo is None:
            return None
    flags = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def _read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def slow_autocast_warning(device_type: str, enabled: bool, cpuinfo: str | None = None) -> str | None:
    """The one-line warning a run with bf16 autocast on a CPU without native bf16 gets (None: nothing to say)."""
    if not enabled or device_type != "cpu" or cpu_has_native_bf16(cpuinfo) is not False:
        return None
    return ("bf16 autocast (amp) on a CPU without native bf16 (no avx512_bf16 / amx_bf16 flag): torch emulates "
            "it and training runs many times slower than float32 here; train without amp on this machine")


def float32_loss(logs: dict) -> dict:
    """``logs`` with ``logs["loss"]`` as float32 (unchanged, the same tensor, when it already is): a loss
    summed under autocast may be bf16, and the guard and the log should not depend on that."""
    loss = logs["loss"]
    if torch.is_tensor(loss) and loss.dtype != torch.float32:
        logs = {**logs, "loss": loss.float()}
    return logs
