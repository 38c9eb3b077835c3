"""Plain supervised top-down training: the head's loss against ground truth, summed over the model's stages
(intermediate supervision for stacked hourglasses).

The loss matches the head (see :func:`posekit.losses.build_head_loss`): heatmap MSE for the default
``heatmap`` head, coordinate / DSNT / RLE objectives (plus the bone loss and automatic loss weighting) for
the others -- the trainer's ``ctx.head_loss``. Methods built on this one that train heatmaps with their own
loss (``uses_head_loss = False``) get the heatmap MSE.
"""
from __future__ import annotations

import torch

from posekit.losses import HeatmapHeadLoss
from posekit.methods.base import Method, StepProgress, TrainContext, register_method


@register_method
class Supervised(Method):
    """The reference training step every other method extends or replaces."""

    name = "supervised"
    uses_head_loss = True

    def bind(self, ctx: TrainContext) -> None:
        super().bind(ctx)
        own = self.uses_head_loss and ctx.head_loss is not None
        self.head_loss = ctx.head_loss if own else HeatmapHeadLoss()

    def trainable_modules(self) -> list[torch.nn.Module]:
        """The model, plus the head loss when it has parameters (RLE's flow, AWL's weights): the optimiser
        trains whatever this returns."""
        if any(True for _ in self.head_loss.parameters()):
            return [self.model, self.head_loss]
        return [self.model]

    def supervised_losses(self, outputs: list[torch.Tensor], batch: dict) -> dict:
        """{'loss': total, 'loss_<term>': detached parts} of the head loss on every stage."""
        return self.head_loss(outputs, batch)

    def supervised_loss(self, outputs: list[torch.Tensor], batch: dict) -> torch.Tensor:
        return self.supervised_losses(outputs, batch)["loss"]

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        """batch: image (N, 3, H, W) and the codec's targets (heatmaps (N, K, h, w) or coords (N, K, 2)) with
        weights (N, K) -> {'loss': tensor, ...logs}."""
        outputs = self.train_model.forward_all(batch["image"])
        return self.supervised_losses(outputs, batch)

    def state_dict(self) -> dict:
        """The head loss's parameters (RLE flow, AWL weights) for exact resume; {} when it has none."""
        state = self.head_loss.state_dict()
        return {"head_loss": state} if state else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("head_loss"):
            self.head_loss.load_state_dict(state["head_loss"])
