"""Fast Pose Distillation (Zhang, Zhu & Ye, "Fast Human Pose Estimation", CVPR 2019).

1. A large teacher is trained first with the usual heatmap MSE, then frozen.
2. A compact student learns from both the labels and the teacher, in every mini-batch:

       L_fpd = α · L_pd + (1 - α) · L_mse,     L_pd = MSE(student heatmaps, teacher heatmaps)

   summed over the student's stages (every hourglass stack imitates the teacher's final heatmaps),
   α = 0.5 as in the official code. The teacher can soften wrong or missing labels: where the label
   weight is 0 (an unlabelled joint) the teacher still supervises.
3. On unlabeled images only the teacher supervises: each step also draws ``unlabeled_ratio`` x batch size
   crops from the ``unlabeled`` data spec, with every label withheld (:class:`UnlabeledStream`), and adds
   α · L_pd on them -- so any folder of people helps.

The teacher is any posekit heatmap checkpoint with the student's input size, heatmap size and joints::

    posekit train --method fpd --teacher runs/teacher/model.pt --alpha 0.5 [--unlabeled folder:DIR] ...
"""
from __future__ import annotations

import numpy as np
import torch

from posekit.data.transforms import AugmentConfig
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
        if (teacher_cfg.get("head") or {}).get("type", "heatmap") != "heatmap":
            raise ValueError(f"teacher {teacher}: FPD distils heatmaps, but the teacher has a "
                             f"{teacher_cfg['head']['type']!r} head")
        if trainer is not None:
            check_compatible(teacher_cfg, trainer.model_config(), teacher)
        self.unlabeled_batches = None
        if unlabeled:
            self.unlabeled_batches = UnlabeledStream(trainer, unlabeled, unlabeled_ratio)

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


def check_compatible(teacher_cfg: dict, student_cfg: dict, path) -> None:
    """The teacher's heatmaps must live in the student's frame: same input size, heatmap size and joints."""
    for key in ("input_size", "num_keypoints"):
        if list(np.atleast_1d(teacher_cfg[key])) != list(np.atleast_1d(student_cfg[key])):
            raise ValueError(f"teacher {path}: {key} {teacher_cfg[key]} differs from the student's {student_cfg[key]}")
    if teacher_cfg["codec"].get("heatmap_size") != student_cfg["codec"].get("heatmap_size"):
        raise ValueError(f"teacher {path}: heatmap size differs from the student's")


class UnlabeledStream:
    """Endless batches of augmented crops of unlabeled people, labels withheld: every sample's keypoints are
    replaced by zeros (v = 0) before the dataset sees it, so targets and weights are all zero and only the
    teacher speaks for these images. The person box stays (a detector's box, for ``lsp``/``coco`` data the
    annotated one; ``folder:`` data uses the whole image).

    Deterministic and resumable: batch ``position`` p is the p-th slice of a seeded per-epoch permutation, its
    augmentation comes from (seed, epoch, index) like the labelled data's, and ``position`` is all the state
    there is (saved by :meth:`FPD.state_dict`). Images are read in the main process.
    """

    def __init__(self, trainer, spec: str, ratio: float = 1.0):
        from posekit.data.dataset import TopDownDataset
        from posekit.data.formats import load_samples

        if trainer is None:
            raise ValueError("FPD with unlabeled data needs the trainer's crop settings")
        if ratio <= 0:
            raise ValueError(f"unlabeled_ratio must be > 0, got {ratio}")
        cfg = trainer.cfg
        samples = load_samples(spec, skip_invalid=cfg.skip_invalid)
        if not samples:
            raise ValueError(f"no unlabeled images in {spec}")
        for s in samples:  # withhold labels (and match the student's joint count: folder data has 17)
            s.keypoints = np.zeros((trainer.num_keypoints, 3), np.float32)
        self.seed = cfg.seed + 1
        self.dataset = TopDownDataset(samples, trainer.codec, cfg.input_size, flip_index=np.array(trainer.flip_index),
                                      train=True, augment=AugmentConfig(**cfg.augment), seed=self.seed)
        self.batch_size = min(len(samples), max(1, int(round(cfg.batch_size * ratio))))
        self.batches_per_epoch = len(samples) // self.batch_size
        self.position = 0

    def indices(self, position: int) -> tuple[int, list[int]]:
        """(epoch, sample indices) of batch number ``position``."""
        epoch, slot = divmod(position, self.batches_per_epoch)
        perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 1000003 + epoch))
        return epoch, perm[slot * self.batch_size:(slot + 1) * self.batch_size].tolist()

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        epoch, indices = self.indices(self.position)
        self.position += 1
        self.dataset.set_epoch(epoch)
        return torch.utils.data.default_collate([self.dataset[i] for i in indices])
