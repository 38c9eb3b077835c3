"""AdvMix (Wang et al., "When Human Pose Estimation Meets Robustness: Adversarial Algorithms and
Benchmarks", CVPR 2021): adversarial mixing of augmented images plus distillation from a clean teacher.

1. Augmented copies. From every training crop x_0 we make K = 2 copies x_1..x_K, each by an
   AutoAugment-style photometric policy (two random ops of :data:`posekit.data.augment.ADVMIX_OPS`:
   autocontrast, equalize, posterize, solarize, invert, color, sharpness; the ops resembling the
   held-out ImageNet-C corruptions are left out) followed, with probability 1/2, by GridMask. None of
   them moves a pixel, so every copy keeps x_0's heatmap targets.
2. Adversarial mixing. A small U-Net generator G reads the K + 1 images (concatenated on channels) and
   returns K + 1 logits per pixel (computed at half resolution and resized bilinearly: smooth maps, and
   10x cheaper on the CPU); a softmax over them gives mixing weights
       w_k(p) >= 0,  sum_k w_k(p) = 1,        x_mix(p) = sum_k w_k(p) x_k(p).
   The mix is convex, so it always stays within the augmentations' span (G chooses *where* each
   corruption shows, not new pixel values).
3. Knowledge distillation. A frozen teacher T trained on clean images supervises the pose network D
   on the mixed image alongside the labels:
       L_D = (1 - α) · MSE(D(x_mix), y) + α · MSE(D(x_mix), T(x_0)),      α = 0.1;
   T sees the clean crop, passing on clean pose structure that the corrupted mix may hide. Without a
   teacher (``teacher=None``, the paper's "AdvMix w/o KD" ablation) L_D = MSE(D(x_mix), y).
4. Min-max game. D minimises L_D; G maximises it, L_G = -L_D, so G learns the mixes that hurt D most.
   The two are updated in alternation on every batch (``generator_every``): first one Adam step of G
   against the current D (whose BatchNorm statistics this extra pass leaves untouched), then the
   trainer's step of D on the mix of the updated G.

The generator and its optimizer live here, not in the trainer: the trainer optimises
``trainable_modules()`` (the pose network) and saves/restores :meth:`AdvMix.state_dict` in its
checkpoints, so an interrupted run resumes exactly. Augmentation randomness comes from
(seed, iteration, sample index, copy), never from global state.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from posekit.data.augment import ADVMIX_OPS, grid_mask, photometric_policy
from posekit.data.transforms import IMAGE_MEAN, IMAGE_STD
from posekit.methods.base import ALPHA, TEACHER, MethodOption, StepProgress, TrainContext, register_method
from posekit.methods.supervised import Supervised
from posekit.training.guard import BufferSnapshot, all_finite
from posekit.training.teacher import distillation_loss, load_teacher

log = logging.getLogger(__name__)


# -- the generator ---------------------------------------------------------------------------------
class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        groups = 4 if cout % 4 == 0 else 1
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


class MixingUNet(nn.Module):
    """Small U-Net: (N, C_in, H, W) -> (N, num_outputs, H, W) logits, any H, W.

    The input is first average-pooled by ``stride`` and the logits are resized back bilinearly: mixing
    maps vary smoothly over a few pixels, and the generator costs ~10x less on the CPU than at full
    resolution (stride 2, 128x128 crops). ``depth`` further poolings, ``width`` channels at the top level
    doubling per level, GroupNorm (no batch statistics, so the generator behaves the same in train and
    eval mode). The last 1x1 convolution starts at zero: the initial mix is uniform.
    """

    def __init__(self, in_channels: int, num_outputs: int, width: int = 16, depth: int = 2, stride: int = 2):
        super().__init__()
        if depth < 1 or width < 1 or stride < 1:
            raise ValueError(f"depth, width and stride must be >= 1, got {depth}, {width}, {stride}")
        self.stride = stride
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_DoubleConv(in_channels, chans[0])]
                                  + [_DoubleConv(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_DoubleConv(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], num_outputs, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, ceil_mode=True)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        logits = self.head(x)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def mix(images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """x_mix = sum_k w_k x_k. images (N, K+1, 3, H, W), weights (N, K+1, H, W) -> (N, 3, H, W).

    Mixing normalised images equals mixing raw ones, since the weights sum to 1 and normalisation is affine.
    """
    return (weights.unsqueeze(2) * images).sum(dim=1)


# -- augmented copies ------------------------------------------------------------------------------
_MEAN = torch.from_numpy(IMAGE_MEAN).view(1, 3, 1, 1)
_STD = torch.from_numpy(IMAGE_STD).view(1, 3, 1, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised (N, 3, H, W) float -> (N, H, W, 3) uint8 RGB."""
    raw = images.detach().float().cpu() * _STD + _MEAN
    return raw.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8(images: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> ImageNet-normalised (N, 3, H, W) float on ``like``'s device and dtype."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return ((x - _MEAN) / _STD).to(device=like.device, dtype=like.dtype)


def augment_copy(image: np.ndarray, rng: np.random.Generator, *, num_ops: int = 2, magnitude: float | None = None,
                 ops=ADVMIX_OPS, gridmask_prob: float = 0.5) -> np.ndarray:
    """One augmented copy: the photometric policy, then GridMask with probability ``gridmask_prob``."""
    out = photometric_policy(image, rng, num_ops=num_ops, magnitude=magnitude, ops=ops)
    if rng.random() < gridmask_prob:
        out = grid_mask(out, rng)
    return out


# -- the method ------------------------------------------------------------------------------------
@register_method
class AdvMix(Supervised):
    name = "advmix"
    options = (TEACHER, ALPHA,
               MethodOption("generator-lr", float, "Adam learning rate of the mixing generator (1e-3)"),
               MethodOption("generator-every", int, "one generator step every N pose steps (1: every step)"),
               MethodOption("clean-floor", float, "least weight of the clean image at every pixel (0: none)"))
    # uses_head_loss: the configured head's loss on the labels (heatmap MSE by default)

    def __init__(self, *, teacher: str | None = None, alpha: float = 0.1, num_augmented: int = 2,
                 generator_lr: float = 1e-3, generator_betas=(0.5, 0.999), generator_width: int = 16,
                 generator_depth: int = 2, generator_stride: int = 2, generator_every: int = 1, policy_ops: int = 2,
                 policy_magnitude: float | None = None, gridmask_prob: float = 0.5, clean_floor: float = 0.0,
                 seed: int | None = None):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if num_augmented < 1 or generator_every < 1:
            raise ValueError(f"num_augmented and generator_every must be >= 1, got {num_augmented}, {generator_every}")
        if not 0.0 <= gridmask_prob <= 1.0:
            raise ValueError(f"gridmask_prob must be in [0, 1], got {gridmask_prob}")
        if not 0.0 <= clean_floor < 1.0:
            raise ValueError(f"clean_floor must be in [0, 1), got {clean_floor}")
        self.clean_floor = clean_floor
        self.teacher_path, self.alpha = teacher, alpha
        self.num_augmented = num_augmented
        self.generator_every = generator_every
        self.generator_options = {"lr": generator_lr, "betas": tuple(generator_betas), "width": generator_width,
                                  "depth": generator_depth, "stride": generator_stride}
        self.policy = {"num_ops": policy_ops, "magnitude": policy_magnitude, "gridmask_prob": gridmask_prob}
        self.seed_option = seed
        self.iteration = 0

    def bind(self, ctx: TrainContext) -> None:
        super().bind(ctx)
        self.seed = int(self.seed_option if self.seed_option is not None else ctx.seed)
        self.teacher = None
        if self.teacher_path:
            self.teacher = load_teacher(self.teacher_path, ctx.config.to_dict() if ctx.config is not None else None,
                                        ctx.device)
        elif self.alpha != 0.1:
            log.info("advmix without a teacher: alpha=%s is unused", self.alpha)
        g = self.generator_options
        # A private RNG stream for the generator's initialisation: the global stream stays as without AdvMix.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 7919 + 17)
            self.generator = MixingUNet(3 * (self.num_augmented + 1), self.num_augmented + 1, width=g["width"],
                                        depth=g["depth"], stride=g["stride"])
        self.generator = self.generator.to(ctx.device, memory_format=torch.channels_last)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=g["lr"], betas=g["betas"])

    # -- pieces ------------------------------------------------------------------------------------
    def augmented_copies(self, images: torch.Tensor, indices) -> torch.Tensor:
        """(N, 3, H, W) normalised crops -> (N, K, 3, H, W) augmented copies (normalised), deterministic
        in (seed, iteration, sample index)."""
        raw = to_uint8(images)
        indices = [int(i) for i in (indices.tolist() if torch.is_tensor(indices) else indices)]
        copies = np.empty((len(raw), self.num_augmented, *raw.shape[1:]), np.uint8)
        for n, (image, index) in enumerate(zip(raw, indices)):
            for k in range(self.num_augmented):
                rng = np.random.default_rng([self.seed, 0xAD0, self.iteration, index, k])
                copies[n, k] = augment_copy(image, rng, num_ops=self.policy["num_ops"],
                                            magnitude=self.policy["magnitude"], gridmask_prob=self.policy["gridmask_prob"])
        flat = from_uint8(copies.reshape(-1, *raw.shape[1:]), images)
        return flat.view(len(raw), self.num_augmented, *images.shape[1:])

    def stack(self, batch: dict) -> torch.Tensor:
        """(N, K+1, 3, H, W): the clean crop first, then its K augmented copies."""
        clean = batch["image"]
        return torch.cat([clean.unsqueeze(1), self.augmented_copies(clean, batch["index"])], dim=1)

    def mixing_weights(self, stack: torch.Tensor) -> torch.Tensor:
        """(N, K+1, 3, H, W) -> per-pixel softmax weights (N, K+1, H, W), summing to 1 over dim 1.

        With ``clean_floor`` f the clean image keeps at least f everywhere: w = f e_0 + (1 - f) softmax(G),
        still convex, so the generator can only hide part of the clean pixels (a knob against the clean cost)."""
        n, k1, c, h, w = stack.shape
        x = stack.reshape(n, k1 * c, h, w).contiguous(memory_format=torch.channels_last)
        weights = torch.softmax(self.generator(x), dim=1)
        if self.clean_floor > 0:
            weights = (1 - self.clean_floor) * weights
            weights[:, 0] += self.clean_floor
        return weights

    @torch.no_grad()
    def teacher_heatmaps(self, images: torch.Tensor) -> torch.Tensor | None:
        return None if self.teacher is None else self.teacher(images)

    def pose_loss(self, model, images: torch.Tensor, batch: dict, teacher: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """L_D on ``images``: (1 - α) MSE to the labels + α MSE to the teacher (labels only without one)."""
        stages = model.forward_all(images)
        loss_gt = self.supervised_loss(stages, batch)
        if teacher is None:
            return loss_gt, {"loss_gt": loss_gt.detach()}
        loss_kd = distillation_loss(stages, teacher)
        return (1 - self.alpha) * loss_gt + self.alpha * loss_kd, {"loss_gt": loss_gt.detach(), "loss_kd": loss_kd.detach()}

    def generator_step(self, stack: torch.Tensor, batch: dict, teacher: torch.Tensor | None) -> torch.Tensor:
        """One Adam step of G on L_G = -L_D against the current pose network; returns L_D before the step.

        Only G's gradients are computed (the pose network's weights get none), and the pose network's
        BatchNorm running statistics are restored afterwards: this pass only probes D (the bare network:
        under DDP the trainer's all-reduce is not involved; G's gradients are averaged here).
        """
        model = self.model
        buffers = BufferSnapshot([model])
        params = [p for p in self.generator.parameters() if p.requires_grad]
        self.generator.train()
        mixed = mix(stack, self.mixing_weights(stack))
        if stack.is_contiguous(memory_format=torch.channels_last) or batch["image"].is_contiguous(
                memory_format=torch.channels_last):
            mixed = mixed.contiguous(memory_format=torch.channels_last)
        loss_d, _ = self.pose_loss(model, mixed, batch, teacher)
        loss_g = -loss_d
        grads = torch.autograd.grad(loss_g, params)
        buffers.restore()
        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size()
            for g in grads:
                dist.all_reduce(g)
                g.div_(world)
        if not all_finite(loss_d, grads):
            log.warning("advmix: non-finite generator loss or gradient at iteration %d; generator step skipped",
                        self.iteration)
            return loss_d.detach()
        for p, g in zip(params, grads):
            p.grad = g
        self.generator_optimizer.step()
        self.generator_optimizer.zero_grad(set_to_none=True)
        return loss_d.detach()

    # -- the training step -------------------------------------------------------------------------
    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        stack = self.stack(batch)
        teacher = self.teacher_heatmaps(batch["image"])
        logs = {}
        if self.iteration % self.generator_every == 0:
            logs["loss_adv"] = self.generator_step(stack, batch, teacher)
        with torch.no_grad():
            weights = self.mixing_weights(stack)
            mixed = mix(stack, weights)
        if batch["image"].is_contiguous(memory_format=torch.channels_last):
            mixed = mixed.contiguous(memory_format=torch.channels_last)
        loss, parts = self.pose_loss(self.train_model, mixed, batch, teacher)
        self.iteration += 1
        return {"loss": loss, **parts, **logs, "w_clean": weights[:, 0].mean()}

    # -- checkpointing (the trainer stores this in last.pt and restores it on resume) ---------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.state_dict(),  # + a head loss's parameters
                "optimizer": self.generator_optimizer.state_dict(), "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.load_state_dict(state["generator"])
        self.generator_optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
