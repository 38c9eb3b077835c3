"""Plain supervised top-down training: the head's loss against ground truth, summed over the model's stages
(intermediate supervision for stacked hourglasses).

The loss matches the head (see :func:`posekit.losses.build_head_loss`): heatmap MSE for the default
``heatmap`` head, coordinate / DSNT / RLE objectives (plus the bone loss and automatic loss weighting) for
the others. Under the trainer, the method uses the trainer's ``head_loss``; built without a trainer it
trains heatmaps with MSE, as it always has.
"""
from __future__ import annotations

import torch

from posekit.losses import HeatmapHeadLoss


class Supervised:
    """The reference training step every other method extends or replaces."""

    name = "supervised"

    def __init__(self, model: torch.nn.Module, *, trainer=None, head_loss: torch.nn.Module | None = None, **_):
        self.model = model
        if head_loss is None and trainer is not None:
            head_loss = getattr(trainer, "head_loss", None)
        self.head_loss = head_loss if head_loss is not None else HeatmapHeadLoss()
        # the heatmap MSE module, as methods built on this one have always found it
        self.criterion = self.head_loss.mse if isinstance(self.head_loss, HeatmapHeadLoss) else None

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

    def training_step(self, batch: dict) -> dict:
        """batch: image (N, 3, H, W) and the codec's targets (heatmaps (N, K, h, w) or coords (N, K, 2)) with
        weights (N, K) -> {'loss': tensor, ...logs}."""
        outputs = self.model.forward_all(batch["image"])
        return self.supervised_losses(outputs, batch)

    def state_dict(self) -> dict:
        """The head loss's parameters (RLE flow, AWL weights) for exact resume; {} when it has none."""
        state = self.head_loss.state_dict()
        return {"head_loss": state} if state else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("head_loss"):
            self.head_loss.load_state_dict(state["head_loss"])
