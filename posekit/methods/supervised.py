"""Plain supervised top-down training: heatmap MSE against ground truth, summed over the model's stages
(intermediate supervision for stacked hourglasses)."""
from __future__ import annotations

import torch

from posekit.losses import KeypointMSELoss


class Supervised:
    """The reference training step every other method extends or replaces."""

    name = "supervised"

    def __init__(self, model: torch.nn.Module, **_):
        self.model = model
        self.criterion = KeypointMSELoss(use_target_weight=True)

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def supervised_loss(self, outputs: list[torch.Tensor], batch: dict) -> torch.Tensor:
        return sum(self.criterion(out, batch["heatmaps"], batch["weights"]) for out in outputs)

    def training_step(self, batch: dict) -> dict:
        """batch: image (N, 3, H, W), heatmaps (N, K, h, w), weights (N, K) -> {'loss': tensor, ...logs}."""
        outputs = self.model.forward_all(batch["image"])
        loss = self.supervised_loss(outputs, batch)
        return {"loss": loss}
