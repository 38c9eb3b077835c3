"""The method contract: what the trainer needs from a training method, and what it hands to one.

A method is built with its own options (``FPD(teacher="t.pt", alpha=0.5)``), then given to
``Trainer(cfg, method)``. The trainer calls, in this order:

1. ``method.select_samples(samples)`` -> the samples to train on (a source-free method withholds labels);
2. ``method.bind(ctx)`` once, with a read-only :class:`TrainContext` (model, codec, head loss, config, ...);
3. ``method.trainable_modules()`` -> the modules whose parameters the trainer's optimiser updates;
4. per batch: ``method.training_step(batch, progress) -> {"loss": tensor, ...logs}``, then the guarded
   optimiser step, then ``method.after_step(progress)``;
5. ``method.deploy_model()`` for validation and the saved model; ``state_dict()`` / ``load_state_dict()``
   for exact resume (saved in ``last.pt``).

No method reads or changes the trainer: everything it may know arrives in ``ctx`` and ``progress``.
Options a user sets from the command line are declared next to the method as :class:`MethodOption`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch

from posekit.registry import Registry

__all__ = ["METHODS", "Method", "MethodOption", "TrainContext", "StepProgress"]

#: every training method by name (``posekit train --method NAME``)
METHODS = Registry("method")


@dataclass(frozen=True)
class MethodOption:
    """One user-settable option: the CLI flag ``--{flag}`` sets keyword ``kwarg`` (default: ``flag`` with
    '-' -> '_') of the method's constructor. A flag name means the same thing for every method using it."""
    flag: str
    type: Callable[[str], Any]
    default: Any
    help: str
    kwarg: str | None = None

    @property
    def key(self) -> str:
        return self.kwarg or self.flag.replace("-", "_")


@dataclass(frozen=True)
class TrainContext:
    """What the trainer tells a method once, before training (read-only)."""
    model: torch.nn.Module          # the network being trained (under DDP: routed through the wrapper)
    codec: Any                      # the target codec (posekit.codecs)
    head_loss: torch.nn.Module      # the configured head's loss (heatmap MSE unless configured otherwise)
    config: Any                     # the PoseConfig the checkpoints will store
    samples: Sequence[Any]          # the training samples (after select_samples)
    device: torch.device
    seed: int
    total_steps: int
    channels_last: bool


@dataclass(frozen=True)
class StepProgress:
    """Where training is, handed to every step (read-only)."""
    step: int           # optimiser steps taken so far (0-based index of this step)
    epoch: int          # 0-based
    total_steps: int
    lr_factor: float    # the schedule's factor on the base learning rate at this step


class Method:
    """Base class with the defaults; a method overrides what its paper changes."""

    name: ClassVar[str] = ""
    options: ClassVar[tuple[MethodOption, ...]] = ()
    #: True when the method trains with ``ctx.head_loss`` (so any head and loss option works with it)
    uses_head_loss: ClassVar[bool] = False

    def select_samples(self, samples: list) -> list:
        return samples

    def bind(self, ctx: TrainContext) -> None:
        self.ctx = ctx
        self.model = ctx.model

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def training_step(self, batch: dict, progress: StepProgress) -> dict:
        raise NotImplementedError

    def after_step(self, progress: StepProgress) -> None:
        pass

    def deploy_model(self) -> torch.nn.Module:
        return self.model

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
