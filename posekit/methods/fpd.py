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

The teacher is any posekit heatmap checkpoint with the student's joints and crop aspect ratio (a larger
input is resampled, see :class:`TeacherInStudentFrame`)::

    posekit train --method fpd --teacher runs/teacher/model.pt --alpha 0.5 [--unlabeled folder:DIR] ...
"""
from __future__ import annotations

import numpy as np
import torch

from posekit.data.transforms import AugmentConfig
from posekit.checkpoint import build_from_checkpoint, load_checkpoint
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
        self.teacher = load_teacher(teacher, trainer.model_config() if trainer is not None else None, device)
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


def resample(maps: torch.Tensor, size: tuple[int, int], scale: tuple[float, float]) -> torch.Tensor:
    """Bilinear resampling in posekit's pixel convention (pixel ``u`` sits at coordinate ``u``).

    maps: (N, C, H, W). size: output ``(w, h)``. scale: ``(sx, sy)``, input pixels per output pixel: output
    pixel ``(u, v)`` takes the input's value at ``(u * sx, v * sy)``; beyond the last pixel the edge value.
    Returns (N, C, h, w).
    """
    if maps.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) maps, got shape {tuple(maps.shape)}")
    n, _, height, width = maps.shape
    w, h = int(size[0]), int(size[1])
    xs = torch.arange(w, dtype=maps.dtype, device=maps.device) * scale[0]
    ys = torch.arange(h, dtype=maps.dtype, device=maps.device) * scale[1]
    # align_corners=True: normalised -1 / +1 are the centres of the first / last input pixel
    gx = 2 * xs / max(width - 1, 1) - 1
    gy = 2 * ys / max(height - 1, 1) - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).expand(n, h, w, 2)
    return torch.nn.functional.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


class TeacherInStudentFrame:
    """A frozen heatmap teacher, answering in the student's frame.

    The teacher may see larger crops than the student (a higher-resolution teacher is "larger" in compute
    at the same parameter count): the student's crop is upsampled to the teacher's input, and the teacher's
    heatmaps are resampled onto the student's heatmap grid, so the distillation target is what the student
    would have to predict. Crops must have the same aspect ratio (they then cover the same box).
    """

    def __init__(self, teacher: torch.nn.Module, teacher_cfg: dict, student_cfg: dict, path):
        if int(teacher_cfg["num_keypoints"]) != int(student_cfg["num_keypoints"]):
            raise ValueError(f"teacher {path}: num_keypoints {teacher_cfg['num_keypoints']} differs from the "
                             f"student's {student_cfg['num_keypoints']}")
        (tw, th), (sw, sh) = teacher_cfg["input_size"], student_cfg["input_size"]
        if abs(tw / th - sw / sh) > 1e-6:
            raise ValueError(f"teacher {path}: input {tw}x{th} has another aspect ratio than the student's {sw}x{sh}")
        self.teacher = teacher
        self.input_size = (int(tw), int(th))
        self.heatmap_size = tuple(int(v) for v in student_cfg["codec"]["heatmap_size"])
        self.image_scale = (sw / tw, sh / th)
        # student heatmap pixel -> student input -> teacher input -> teacher heatmap pixel
        to_input_s = heatmap_to_input_scale(student_cfg["codec"])
        to_input_t = heatmap_to_input_scale(teacher_cfg["codec"])
        self.heatmap_scale = tuple(to_input_s[a] * (tw / sw, th / sh)[a] / to_input_t[a] for a in (0, 1))
        self.identity = (self.input_size == (int(sw), int(sh))
                         and np.allclose(self.heatmap_scale, 1.0)
                         and list(teacher_cfg["codec"]["heatmap_size"]) == list(self.heatmap_size))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) student crops -> (N, K, h, w) teacher heatmaps on the student's heatmap grid."""
        if self.identity:
            return self.teacher(images)
        big = resample(images, self.input_size, self.image_scale).contiguous(memory_format=torch.channels_last)
        return resample(self.teacher(big), self.heatmap_size, self.heatmap_scale)


def heatmap_to_input_scale(codec_cfg: dict) -> np.ndarray:
    """(sx, sy) input pixels per heatmap pixel of a heatmap codec config (its ``heatmap_to_input``)."""
    from posekit.codecs import build_codec
    return build_codec(codec_cfg).heatmap_to_input(np.ones(2))


def load_teacher(path, student_cfg: dict | None, device="cpu"):
    """A frozen heatmap teacher from a checkpoint; in the student's frame when ``student_cfg`` is given."""
    teacher, teacher_cfg = build_from_checkpoint(load_checkpoint(path))
    teacher.to(device).eval().requires_grad_(False)
    if (teacher_cfg.get("head") or {}).get("type", "heatmap") != "heatmap":
        raise ValueError(f"teacher {path}: distillation uses heatmaps, but the teacher has a "
                         f"{teacher_cfg['head']['type']!r} head")
    if student_cfg is None:
        return teacher
    return TeacherInStudentFrame(teacher, teacher_cfg, student_cfg, path)


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
