"""Fast Pose Distillation (Zhang, Zhu & Ye, "Fast Human Pose Estimation", CVPR 2019).

1. A large teacher is trained first with the usual heatmap MSE, then frozen.
2. A compact student learns from both the labels and the teacher, in every mini-batch:

       L_fpd = α · L_pd + (1 - α) · L_mse,     L_pd = MSE(student heatmaps, teacher heatmaps)

   summed over the student's stages (every hourglass stack imitates the teacher's final heatmaps),
   α = 0.5 as in the official code. The teacher can soften wrong or missing labels: where the label
   weight is 0 (an unlabelled joint) the teacher still supervises.
3. On unlabeled images only the teacher supervises (L_pd alone), so any folder of people helps.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from posekit.engine.checkpoint import build_from_checkpoint, load_checkpoint
from posekit.methods.supervised import Supervised


def distillation_loss(student_stages: list[torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
    """L_pd summed over stages: mean squared error against the teacher's heatmaps (N, K, h, w), all joints."""
    return sum(torch.mean((stage - teacher) ** 2) for stage in student_stages)


class FPD(Supervised):
    name = "fpd"

    def __init__(self, model, *, teacher: str, alpha: float = 0.5, unlabeled: str | None = None,
                 unlabeled_ratio: float = 1.0, device="cpu", trainer=None, **_):
        super().__init__(model)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        payload = load_checkpoint(teacher)
        self.teacher, teacher_cfg = build_from_checkpoint(payload)
        self.teacher.to(device).eval().requires_grad_(False)
        if trainer is not None:
            check_compatible(teacher_cfg, trainer.model_config(), teacher)
        self.unlabeled_batches = None
        if unlabeled:
            self.unlabeled_batches = unlabeled_stream(trainer, unlabeled, unlabeled_ratio)

    @torch.no_grad()
    def teacher_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        return self.teacher(images)

    def training_step(self, batch: dict) -> dict:
        stages = self.model.forward_all(batch["image"])
        loss_gt = self.supervised_loss(stages, batch)
        loss_pd = distillation_loss(stages, self.teacher_heatmaps(batch["image"]))
        loss = self.alpha * loss_pd + (1 - self.alpha) * loss_gt
        logs = {"loss_gt": loss_gt.detach(), "loss_pd": loss_pd.detach()}
        if self.unlabeled_batches is not None:
            images = next(self.unlabeled_batches)["image"].to(batch["image"].device)
            images = images.contiguous(memory_format=torch.channels_last)
            loss_unlabeled = distillation_loss(self.model.forward_all(images), self.teacher_heatmaps(images))
            loss = loss + self.alpha * loss_unlabeled
            logs["loss_unlabeled"] = loss_unlabeled.detach()
        return {"loss": loss, **logs}


def check_compatible(teacher_cfg: dict, student_cfg: dict, path) -> None:
    """The teacher's heatmaps must live in the student's frame: same input size, heatmap size and joints."""
    for key in ("input_size", "num_keypoints"):
        if list(np.atleast_1d(teacher_cfg[key])) != list(np.atleast_1d(student_cfg[key])):
            raise ValueError(f"teacher {path}: {key} {teacher_cfg[key]} differs from the student's {student_cfg[key]}")
    if teacher_cfg["codec"].get("heatmap_size") != student_cfg["codec"].get("heatmap_size"):
        raise ValueError(f"teacher {path}: heatmap size differs from the student's")


def unlabeled_stream(trainer, spec: str, ratio: float):
    """Endless batches of augmented crops of unlabeled people (labels, if any, are withheld)."""
    from torch.utils.data import DataLoader

    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples

    samples = load_samples(spec)
    for s in samples:  # withhold labels: only the teacher speaks for these images
        s.keypoints = np.zeros_like(s.keypoints)
    if trainer is None:
        raise ValueError("FPD with unlabeled data needs the trainer's crop settings")
    cfg = trainer.cfg
    dataset = TopDownDataset(samples, trainer.codec, cfg.input_size, flip_index=np.array(trainer.flip_index), train=True,
                             augment=trainer.dataset.augment, seed=cfg.seed + 1)
    batch_size = max(1, int(round(cfg.batch_size * ratio)))
    generator = torch.Generator().manual_seed(cfg.seed + 1)

    def batches():
        for epoch in itertools.count():
            dataset.set_epoch(epoch)
            yield from DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator,
                                  num_workers=0)
    return batches()
