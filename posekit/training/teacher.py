"""A frozen heatmap teacher for distillation (FPD, AdvMix), answering in the student's frame.

The teacher may see larger crops than the student (a higher-resolution teacher is "larger" in compute at
the same parameter count): the student's crop is upsampled to the teacher's input, and the teacher's
heatmaps are resampled onto the student's heatmap grid, so the distillation target is what the student
would have to predict. Crops must have the same aspect ratio (they then cover the same box).
"""
from __future__ import annotations

import numpy as np
import torch

from posekit.checkpoint import build_from_checkpoint, load_checkpoint

__all__ = ["distillation_loss", "resample", "TeacherInStudentFrame", "heatmap_to_input_scale", "load_teacher"]


def distillation_loss(student_stages: list[torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
    """Summed over stages: mean squared error against the teacher's heatmaps (N, K, h, w), all joints."""
    return sum(torch.mean((stage - teacher) ** 2) for stage in student_stages)


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
    """A frozen heatmap ``teacher`` (its checkpoint config ``teacher_cfg``) answering in the frame of a student
    whose checkpoint config is ``student_cfg`` (both dicts, as checkpoints store them)."""

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
