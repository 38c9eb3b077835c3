"""Fast Pose Distillation (Zhang, Zhu & Ye, "Fast Human Pose Estimation", CVPR 2019).

1. A large teacher is trained first with the usual heatmap MSE, then frozen.
2. A compact student learns from both the labels and the teacher, in every mini-batch:

       L_fpd = α · L_pd + (1 - α) · L_mse,     L_pd = MSE(student heatmaps, teacher heatmaps)

   summed over the student's stages (every hourglass stack imitates the teacher's final heatmaps),
   α = 0.5 as in the official code. The teacher can soften wrong or missing labels: where the label
   weight is 0 (an unlabelled joint) the teacher still supervises.
3. On unlabeled images only the teacher supervises: each step also draws ``unlabeled_ratio`` x batch size
   crops from the ``unlabeled`` data spec, with every label withheld
   (:class:`~posekit.training.unlabeled.UnlabeledStream`), and adds α · L_pd on them -- so any folder of
   people helps.

The teacher is any posekit heatmap checkpoint with the student's joints and crop aspect ratio (a larger
input is resampled, see :class:`~posekit.training.teacher.TeacherInStudentFrame`)::

    posekit train --method fpd --teacher runs/teacher/model.pt --alpha 0.5 [--unlabeled folder:DIR] ...
"""
from __future__ import annotations

import torch

from posekit.methods.base import ALPHA, TEACHER, MethodOption, StepProgress, TrainContext, register_method
from posekit.methods.supervised import Supervised
from posekit.training.teacher import distillation_loss, load_teacher
from posekit.training.unlabeled import UnlabeledStream

__all__ = ["FPD", "distillation_loss"]


@register_method
class FPD(Supervised):
    name = "fpd"
    uses_head_loss = False  # heatmap distillation: the heatmap MSE on the labels too
    options = (TEACHER, ALPHA,
               MethodOption("unlabeled", str, "data spec of unlabeled images, supervised by the teacher alone"),
               MethodOption("unlabeled-ratio", float, "unlabeled crops per labelled crop in every step"))

    def __init__(self, *, teacher: str, alpha: float = 0.5, unlabeled: str | None = None,
                 unlabeled_ratio: float = 1.0):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.teacher_path, self.alpha = teacher, alpha
        self.unlabeled, self.unlabeled_ratio = unlabeled, unlabeled_ratio

    def bind(self, ctx: TrainContext) -> None:
        super().bind(ctx)
        student = ctx.config.to_dict() if ctx.config is not None else None
        self.teacher = load_teacher(self.teacher_path, student, ctx.device)
        self.unlabeled_batches = None
        if self.unlabeled:
            if ctx.config is None:
                raise ValueError("FPD with unlabeled data needs the trainer's crop settings")
            cfg, options = ctx.config, ctx.options
            self.unlabeled_batches = UnlabeledStream(
                self.unlabeled, codec=ctx.codec, input_size=cfg.input_size, num_keypoints=cfg.num_keypoints,
                flip_index=cfg.flip_index, batch_size=options["batch_size"], seed=ctx.seed + 1,
                ratio=self.unlabeled_ratio, augment=options["augment"], skip_invalid=options["skip_invalid"])

    @torch.no_grad()
    def teacher_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        return self.teacher(images)

    def labelled_losses(self, stages: list[torch.Tensor], batch: dict, teacher: torch.Tensor) -> dict:
        """L_fpd of a student's ``stages`` on a labelled ``batch`` whose teacher heatmaps are ``teacher``:
        {'loss': α · L_pd + (1 - α) · L_mse, 'loss_gt', 'loss_pd' (detached)}. NetAug applies it to the
        student and to its augmented versions."""
        loss_gt = self.supervised_loss(stages, batch)
        loss_pd = distillation_loss(stages, teacher)
        return {"loss": self.alpha * loss_pd + (1 - self.alpha) * loss_gt, "loss_gt": loss_gt.detach(),
                "loss_pd": loss_pd.detach()}

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        stages = self.train_model.forward_all(batch["image"])
        logs = self.labelled_losses(stages, batch, self.teacher_heatmaps(batch["image"]))
        loss = logs.pop("loss")
        if self.unlabeled_batches is not None:
            images = next(self.unlabeled_batches)["image"].to(batch["image"].device)
            images = images.contiguous(memory_format=torch.channels_last)
            loss_unlabeled = distillation_loss(self.train_model.forward_all(images), self.teacher_heatmaps(images))
            loss = loss + self.alpha * loss_unlabeled
            logs["loss_unlabeled"] = loss_unlabeled.detach()
        return {"loss": loss, **logs}

    def state_dict(self) -> dict:
        """The head loss's state (none for MSE) and how far the unlabeled stream has got (exact resume)."""
        state = super().state_dict()
        if self.unlabeled_batches is not None:
            state["unlabeled_position"] = self.unlabeled_batches.position
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.unlabeled_batches is not None and "unlabeled_position" in state:
            self.unlabeled_batches.position = int(state["unlabeled_position"])
