"""The context a method gets is read-only and says "no trainer" when built from a model alone."""
import dataclasses

import pytest
import torch

from posekit.training.context import StepProgress, TrainContext


def test_a_bare_context_and_its_defaults():
    net = torch.nn.Linear(2, 2)
    ctx = TrainContext(model=net)
    assert ctx.train_model is net and ctx.config is None and ctx.total_steps == 0 and ctx.world_size == 1
    assert dict(ctx.options) == {} and ctx.device == torch.device("cpu")
    assert StepProgress() == StepProgress(step=0, epoch=0, total_steps=0, lr_factor=1.0)


def test_the_context_cannot_be_changed():
    ctx = TrainContext(model=torch.nn.Linear(2, 2), options={"lr": 0.1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.seed = 3
    with pytest.raises(TypeError):
        ctx.options["lr"] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        StepProgress().step = 1
