"""What the trainer tells a training method: once, a read-only :class:`TrainContext`; every step, a
:class:`StepProgress`. Defined here, below both, so the trainer builds them without importing any method.

Outside a trainer (tests, a notebook) a context needs only the model: ``TrainContext(model=net)``; every
other field then says "no trainer" (no config, no schedule, one process).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch

__all__ = ["TrainContext", "StepProgress"]


@dataclass(frozen=True)
class TrainContext:
    model: torch.nn.Module                   # the network being trained: what deploys, what checkpoints hold
    train_model: torch.nn.Module | None = None  # the same network as training steps call it (under DDP routed
    #                                          through the wrapper, so gradients are all-reduced); default: model
    codec: Any = None                        # the target codec (posekit.codecs)
    head_loss: torch.nn.Module | None = None  # the configured head's loss (heatmap MSE unless configured otherwise)
    config: Any = None                       # the posekit.config.PoseConfig the checkpoints store; None: no trainer
    samples: Sequence[Any] = ()              # the training samples (after Method.select_samples)
    device: torch.device = torch.device("cpu")
    seed: int = 0
    total_steps: int = 0                     # optimiser steps of the whole run; 0: no schedule
    channels_last: bool = False              # the channels_last option (a model may still train contiguous)
    world_size: int = 1                      # processes under torchrun
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # TrainConfig.to_dict()

    def __post_init__(self):
        if self.train_model is None:
            object.__setattr__(self, "train_model", self.model)
        if not isinstance(self.options, MappingProxyType):
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


@dataclass(frozen=True)
class StepProgress:
    """Where training is, handed to every step (read-only). The default is a step outside any schedule."""
    step: int = 0            # optimiser steps taken so far (0-based index of this step)
    epoch: int = 0           # 0-based
    total_steps: int = 0     # 0: no schedule
    lr_factor: float = 1.0   # the trainer's learning rate at this step over its base learning rate
