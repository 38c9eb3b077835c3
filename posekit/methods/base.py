"""The method contract: what the trainer needs from a training method, and what it hands to one.

A method is built with its own options only (``FPD(teacher="t.pt", alpha=0.5)``), then given to
``Trainer(cfg, method)``. The trainer calls, in this order:

1. ``method.select_samples(samples)`` -> the samples to train on (a source-free method withholds labels);
2. ``method.bind(ctx)`` once, with a read-only :class:`TrainContext` (model, codec, head loss, config, ...);
   everything that needs the network (copies, extra branches, teachers) is built here;
3. ``method.trainable_modules()`` -> the modules whose parameters the trainer's optimiser updates;
4. per batch: ``method.training_step(batch, progress) -> {"loss": tensor, ...logs}``, then the guarded
   optimiser step, then ``method.after_step(progress)``;
5. ``method.deploy_model()`` for validation and the saved model; ``state_dict()`` / ``load_state_dict()``
   for exact resume (saved in ``last.pt``).

No method reads or changes the trainer: everything it may know arrives in ``ctx`` and ``progress``.
Options a user sets from the command line are declared next to the method as :class:`MethodOption`;
outside a trainer, ``method.bind_model(net)`` binds a context that holds just the network.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from posekit.registry import Registry
from posekit.training.context import StepProgress, TrainContext

__all__ = ["METHODS", "register_method", "Method", "MethodOption", "TEACHER", "ALPHA", "TrainContext", "StepProgress"]

#: every training method by name (``posekit train --method NAME``)
METHODS = Registry("method")


def register_method(cls):
    """Class decorator: register a :class:`Method` subclass under its ``name``."""
    return METHODS.register(cls, name=cls.name)


@dataclass(frozen=True)
class MethodOption:
    """One user-settable option: the CLI flag ``--{flag}`` sets keyword ``kwarg`` (default: ``flag`` with
    '-' -> '_') of the method's constructor, whose signature holds the default (:meth:`Method.option_defaults`).
    A flag name means the same thing for every method using it."""
    flag: str
    type: Callable[[str], Any]
    help: str
    kwarg: str | None = None

    @property
    def key(self) -> str:
        return self.kwarg or self.flag.replace("-", "_")


#: options of the distillation methods (FPD, AdvMix): a frozen teacher and the weight of learning from it
TEACHER = MethodOption("teacher", str, "teacher checkpoint: a frozen heatmap model with the student's joints")
ALPHA = MethodOption("alpha", float, "distillation weight α: α · MSE(to teacher) + (1 - α) · MSE(to labels)")


class Method:
    """Base class with the defaults; a method overrides what its paper changes."""

    name: ClassVar[str] = ""
    options: ClassVar[tuple[MethodOption, ...]] = ()
    #: True when the method trains with ``ctx.head_loss`` (so any head and loss option works with it)
    uses_head_loss: ClassVar[bool] = False

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """{kwarg: default} of the declared options, read from the constructor (None for a required one)."""
        params = inspect.signature(cls).parameters
        return {o.key: None if params[o.key].default is inspect.Parameter.empty else params[o.key].default
                for o in cls.options}

    def select_samples(self, samples: list) -> list:
        return samples

    def bind(self, ctx: TrainContext) -> None:
        self.ctx = ctx
        self.model = ctx.model              # what deploys
        self.train_model = ctx.train_model  # what a training step calls (the DDP route under torchrun)

    def bind_model(self, model: torch.nn.Module, **context) -> "Method":
        """Bind a context holding ``model`` (and any other :class:`TrainContext` field); returns ``self``."""
        self.bind(TrainContext(model=model, **context))
        return self

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        raise NotImplementedError

    def after_step(self, progress: StepProgress = StepProgress()) -> None:
        pass

    def deploy_model(self) -> torch.nn.Module:
        return self.model

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
