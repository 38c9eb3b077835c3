"""The learning-rate schedule every posekit training uses: linear warm-up, then cosine decay."""
from __future__ import annotations

import math

__all__ = ["lr_factor"]


def lr_factor(step: int, total: int, warmup: int, final_ratio: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``final_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
