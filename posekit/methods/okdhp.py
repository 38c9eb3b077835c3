"""Online Knowledge Distillation for Human Pose estimation, OKDHP (Li, Ye, Song, Huang & Pan, "Online Knowledge
Distillation for Efficient Pose Estimation", ICCV 2021).

No pre-trained teacher: the teacher is built on the fly from the student itself.

1. **Multi-branch student.** The network keeps its early layers *shared* and grows ``B`` *branches* (3 in
   the official code) that each repeat the later part of the network; shared part + any one branch is a
   complete pose estimator of the original architecture. How a registered model is divided
   (:func:`split_model`; ``shared`` overrides the default):

   * Models whose :meth:`~posekit.models.base.PoseModel.split_trunk_head` has trunk stages (SimpleBaseline,
     RepVGG: encoder stages | upsampler + heatmap conv): the trunk up to its last resolution stage is shared;
     each branch has its own last trunk stage, deconvolution upsampler and 1x1 heatmap conv. ``shared`` = number of trunk modules shared (= all of them: the MobilePose variant of the
     paper, one whole decoder per branch).
   * Stacked hourglass (its :meth:`~posekit.models.backbones.hourglass.StackedHourglass.stacks` ranges): the
     stem and the first ``S // 2`` stacks (with their re-injection convs) are shared, each branch has the remaining stacks, as in the paper ("share half of the stacks": a 4-stack
     student shares 2 and branches 2). ``shared`` = number of stacks shared.
   * Any other architecture is refused with an error naming ``split_trunk_head``, unless ``shared=0``: nothing
     shared, every branch a full copy of the model.

   The extra branches start from their own random initialisation (copies of branch 0 would receive identical
   gradients and never diverge).

2. **Feature Aggregation Unit (FAU)** -- the ensemble teacher. SKNet-style selection over the shared
   features ``z``: parallel 3x3, 5x5 and 7x7 conv-BN-ReLU paths and a 3x3 average-pool + 1x1 conv-BN-ReLU
   path (the paper's "multiple parallel transformations with different receptive fields") are summed,
   globally average-pooled, squeezed by a linear layer + ReLU and mapped to one logit per branch and
   joint; a softmax over branches gives weights ``a_{b,k}`` (per image, per branch, per joint: a
   channel-wise ensemble) and the ensemble heatmaps are ``E_k = sum_b a_{b,k} H_{b,k}`` of the branches'
   final heatmaps.

3. **Losses.** Every stage of every branch (and every shared stage, once) learns from the labels with the
   heatmap MSE and from the ensemble through the pixel-wise KL divergence of spatially softmaxed heatmaps,
   and the ensemble itself learns from the labels (which trains the FAU):

       L = sum_stages MSE(H, Y) + w_ens * MSE(E, Y) + w_kd * r(t) * sum_stages KL(E || H)
       KL(E || H) = T^2 * sum_{n,k} v_nk * sum_pixels p_E log(p_E / p_H) / (N * h * w),
       p = softmax over the h * w pixels of (heatmap / T)

   with the official code's weights ``w_kd = 2.0`` and ``w_ens = 1.0``, temperature ``T = 1`` (the official
   loss takes a plain spatial softmax of the raw heatmaps, normalised by N * h * w as here), joints
   without a label (``v_nk = 0``) left out, and the official sigmoid ramp-up ``r(t) = exp(-5 (1 - t)^2)``
   over the first ``rampup`` = 40% of training (60 of 150 epochs there; per iteration here; ``r = 1``
   outside the trainer). posekit's MSE is the plain mean (the official one carries a factor 1/2), so at equal
   ``kd_weight`` the distillation is half as strong relative to the labels as in the official code:
   ``kd_weight=4.0`` restores the official balance. The ensemble is a *target* here (``E`` detached inside
   the KL, where the official code lets the KL's gradient reach the ensemble too): the FAU learns only from
   the ensemble's own MSE, and the KL cannot shrink by pulling the ensemble towards a weak branch.

4. **Deployment.** Branch 0 with the shared part is the trainer's model -- the plain, registered
   architecture; the other branches and the FAU are this method's own modules (trained through
   :meth:`OKDHP.trainable_modules`, saved for resume by :meth:`OKDHP.state_dict`). So ``model.pt`` and
   ``best.pt`` are ordinary single-branch checkpoints, and validation measures the deployed branch.
   (The official code keeps the best branch at validation; here branch 0 is always the one deployed --
   the "main branch" of the paper's unbalanced variant.)

Method options (``method_kwargs``): ``branches`` (3), ``kd_weight`` (2.0), ``ens_weight`` (1.0),
``temperature`` (1.0), ``rampup`` (0.4, fraction of the run; 0 = no ramp-up), ``shared`` (see 1.),
``fau_channels`` (64).
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.methods.base import MethodOption, StepProgress, TrainContext, register_method
from posekit.methods.supervised import Supervised
from posekit.models.backbones.hourglass import HourglassStacks, StackedHourglass
from posekit.models.base import CoordinateModel, PoseModel, TrunkHead
from posekit.models.heads import HeatmapHead
from posekit.models.layers import ConvBNAct, init_weights

__all__ = ["OKDHP", "FeatureAggregationUnit", "pixelwise_kl", "aggregate", "split_model", "rampup_weight"]


# -- losses ----------------------------------------------------------------------------------------
def pixelwise_kl(student: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * sum_{n,k} w_nk KL(softmax(target_nk / T) || softmax(student_nk / T)) / (N * h * w)``, the
    softmax taken over the ``h * w`` pixels of each heatmap. ``student``, ``target``: (N, K, h, w);
    ``weights``: (N, K) or None (all joints). Zero when student == target."""
    if student.shape != target.shape:
        raise ValueError(f"student {tuple(student.shape)} and target {tuple(target.shape)} differ in shape")
    n, k, h, w = student.shape
    log_p_student = F.log_softmax(student.reshape(n, k, h * w).float() / temperature, dim=-1)
    log_p_target = F.log_softmax(target.reshape(n, k, h * w).float() / temperature, dim=-1)
    per_joint = (log_p_target.exp() * (log_p_target - log_p_student)).sum(dim=-1)  # (N, K)
    if weights is not None:
        per_joint = per_joint * weights.to(per_joint.dtype)
    return per_joint.sum() * temperature ** 2 / (n * h * w)


def aggregate(weights: torch.Tensor, heatmaps: list[torch.Tensor]) -> torch.Tensor:
    """Channel-wise ensemble: ``weights`` (N, B, K) (summing to 1 over B), ``heatmaps`` B x (N, K, h, w)
    -> ``sum_b weights[:, b, :, None, None] * heatmaps[b]``."""
    stacked = torch.stack(list(heatmaps), dim=1)  # (N, B, K, h, w)
    if weights.shape != stacked.shape[:3]:
        raise ValueError(f"weights {tuple(weights.shape)} do not match {len(heatmaps)} branches of "
                         f"{tuple(stacked.shape[2:3])} joints")
    return (weights[..., None, None].to(stacked.dtype) * stacked).sum(dim=1)


def rampup_weight(progress: float) -> float:
    """The sigmoid-shaped consistency ramp-up ``exp(-5 (1 - t)^2)`` for ``t = progress`` clipped to [0, 1]."""
    t = min(max(progress, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


class FeatureAggregationUnit(nn.Module):
    """Shared features ``z`` (N, C, h', w') -> ensemble weights (N, B, K) (softmax over the B branches).

    Paths with different receptive fields (3x3, 5x5, 7x7 conv-BN-ReLU and 3x3 average pool + 1x1 conv-BN-ReLU,
    ``channels`` each) are summed, globally pooled, squeezed to ``hidden`` (linear + ReLU) and mapped to
    ``B * K`` logits.
    """

    def __init__(self, in_channels: int, num_branches: int, num_keypoints: int, channels: int = 64,
                 hidden: int = 64):
        super().__init__()
        self.num_branches, self.num_keypoints = num_branches, num_keypoints
        self.paths = nn.ModuleList([ConvBNAct(in_channels, channels, k) for k in (3, 5, 7)])
        self.paths.append(nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBNAct(in_channels, channels, 1)))
        self.squeeze = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True))
        self.select = nn.Linear(hidden, num_branches * num_keypoints)
        init_weights(self)

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        fused = sum(path(z) for path in self.paths)
        logits = self.select(self.squeeze(fused.mean(dim=(2, 3))))
        return torch.softmax(logits.reshape(-1, self.num_branches, self.num_keypoints), dim=1)

    def forward(self, z: torch.Tensor, heatmaps: list[torch.Tensor]) -> torch.Tensor:
        """The ensemble heatmaps (N, K, h, w) of the branches' final ``heatmaps``."""
        return aggregate(self.weights(z), heatmaps)


# -- splitting a registered model into shared part + branch -------------------------------------------
class SequentialBranch(nn.Sequential):
    """Late part of an encoder-decoder model: z -> [decoder(tail(z))], ``tail`` the unshared trunk stages and
    the decoder's layers under the model's own names (``upsample``, ``head``)."""

    def __init__(self, tail: nn.Sequential, decoder: nn.Sequential):
        super().__init__(OrderedDict([("tail", tail), *decoder.named_children()]))

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [super().forward(z)]


class HourglassBranch(HourglassStacks):
    """The last stacks of a :class:`StackedHourglass` (with the re-injection convs between them):
    z (the input of the first branched stack) -> every branched stack's heatmaps."""

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [heatmaps for _, heatmaps in super().forward(z)[1]]


class WholeModelBranch(nn.Module):
    """Nothing shared (``shared=0`` on a model without trunk stages): the branch is the whole model, z the image."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model.forward_all(x))


class Split:
    """A model divided into a shared part and branch 0.

    * ``shared(x) -> (z, shared_stages)``: features every branch starts from and the heatmaps of the shared
      supervised stages (empty unless hourglass stacks are shared);
    * ``branch``: branch 0 -- a module holding the model's OWN late modules (not a copy, registered nowhere);
    * ``feature_channels``: channels of ``z`` (the FAU's input);
    * ``description``: what is shared, in words.
    """

    def __init__(self, shared, branch: nn.Module, feature_channels: int, description: str):
        self.shared, self.branch = shared, branch
        self.feature_channels, self.description = feature_channels, description


@torch.no_grad()
def _trunk_shapes(model: nn.Module, trunk: nn.Sequential) -> list[tuple[int, int, int]]:
    """(channels, h, w) after each trunk module for a small probe input (eval mode; nothing is updated)."""
    side = max(64, model.min_input_size)
    side = -(-side // model.input_multiple) * model.input_multiple
    param = next(model.parameters())
    x = torch.zeros(1, 3, side, side, dtype=param.dtype, device=param.device)
    was_training = trunk.training
    trunk.eval()
    shapes = []
    try:
        for module in trunk:
            x = module(x)
            shapes.append(tuple(x.shape[1:]))
    finally:
        trunk.train(was_training)
    return shapes


def _split_hourglass(model: StackedHourglass, shared: int | None) -> Split:
    """The paper's rule: the stem and the first half of the stacks shared."""
    stacks = model.num_stacks
    count = stacks // 2 if shared is None else int(shared)
    if not 0 <= count < stacks:
        raise ValueError(f"shared must be in [0, {stacks - 1}] stacks for a {stacks}-stack hourglass, got {shared}")
    early = model.stacks(0, count)

    def shared_forward(x):
        model.check_input(x)
        z, stages = early(model.stem(x))
        return z, [heatmaps for _, heatmaps in stages]

    return Split(shared_forward, HourglassBranch(model, count, stacks), model.feature_channels,
                 f"stem + {count} of {stacks} stacks shared, {stacks - count} per branch")


def _trunk_head(model: nn.Module) -> TrunkHead | None:
    """The model's trunk/head split when it states one with trunk stages, else None."""
    if not isinstance(model, PoseModel):
        return None
    try:
        split = model.split_trunk_head()
    except NotImplementedError:
        return None
    return split if split.stages is not None else None


def split_model(model: nn.Module, shared: int | None = None) -> Split:
    """Divide a heatmap model into a shared part and branch 0 (see the module docstring for the rules)."""
    if isinstance(model, CoordinateModel):
        raise ValueError("OKDHP distils heatmaps: it needs the heatmap head, not a coordinate head")
    if isinstance(model, StackedHourglass):
        return _split_hourglass(model, shared)
    split = _trunk_head(model)
    if split is None:
        if shared == 0:
            return Split(lambda x: (x, []), WholeModelBranch(model), 3, "nothing shared: every branch is a whole model")
        raise ValueError(f"OKDHP shares the first trunk stages, but {type(model).__name__} states no trunk of stages "
                         "(PoseModel.split_trunk_head); shared=0 makes every branch a whole copy of the model")
    trunk = split.stages
    shapes = _trunk_shapes(model, trunk)
    if shared is None:  # share everything before the last resolution stage
        final = shapes[-1][1:]
        count = next(i for i, shape in enumerate(shapes) if shape[1:] == final)
    else:
        count = int(shared)
    if not 0 <= count <= len(trunk):
        raise ValueError(f"shared must be in [0, {len(trunk)}] trunk modules, got {shared}")

    head_part = nn.Sequential(*list(trunk)[:count])  # the trunk's own modules, not copies

    def shared_forward(x):
        model.check_input(x)
        return head_part(x), []

    branch = SequentialBranch(nn.Sequential(*list(trunk)[count:]), split.head)
    channels = shapes[count - 1][0] if count else 3
    return Split(shared_forward, branch, channels,
                 f"{count} of {len(trunk)} trunk modules shared; the rest, the upsampler and the head per branch")


def reinitialise(module: nn.Module) -> nn.Module:
    """posekit's default init for every layer of ``module`` (heatmap heads: their own small-normal init)."""
    init_weights(module)
    for m in module.modules():
        if isinstance(m, HeatmapHead):
            m.reset_parameters()
    return module


class OKDHPModules(nn.Module):
    """What OKDHP trains besides the deployable model: branches 1..B-1 and the FAU."""

    def __init__(self, branches: list[nn.Module], fau: FeatureAggregationUnit):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.fau = fau


@register_method
class OKDHP(Supervised):
    name = "okdhp"
    uses_head_loss = False  # the KL to the ensemble is over heatmaps: heatmap MSE on the labels
    options = (MethodOption("branches", int, "number of branches (the ensemble's members)"),
               MethodOption("kd-weight", float, "weight of the KL from every stage to the ensemble"))

    def __init__(self, *, branches: int = 3, kd_weight: float = 2.0, ens_weight: float = 1.0,
                 temperature: float = 1.0, rampup: float = 0.4, shared: int | None = None, fau_channels: int = 64):
        if int(branches) != branches or branches < 2:
            raise ValueError(f"OKDHP needs at least 2 branches, got {branches}")
        if temperature <= 0 or kd_weight < 0 or ens_weight < 0 or not 0 <= rampup <= 1:
            raise ValueError("temperature must be > 0, kd_weight and ens_weight >= 0, rampup in [0, 1]")
        self.num_branches = int(branches)
        self.kd_weight, self.ens_weight, self.temperature, self.rampup = kd_weight, ens_weight, temperature, rampup
        self.shared, self.fau_channels = shared, fau_channels

    def bind(self, ctx: TrainContext) -> None:
        if ctx.world_size > 1:
            raise ValueError("OKDHP does not support distributed training (its extra branches are not wrapped in DDP)")
        super().bind(ctx)
        model = ctx.model
        self.split = split_model(model, self.shared)
        extra = [reinitialise(copy.deepcopy(self.split.branch)) for _ in range(self.num_branches - 1)]
        fau = FeatureAggregationUnit(self.split.feature_channels, self.num_branches, model.num_keypoints,
                                     channels=self.fau_channels)
        self.extra = OKDHPModules(extra, fau).to(ctx.device)
        if ctx.channels_last:
            self.extra = self.extra.to(memory_format=torch.channels_last)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.model, self.extra]

    def ramp(self, progress: StepProgress) -> float:
        """r(t): 1 outside a schedule or with ``rampup=0``; else the ramp-up at this step."""
        if progress.total_steps == 0 or self.rampup == 0:
            return 1.0
        return rampup_weight(progress.step / max(1.0, self.rampup * progress.total_steps))

    def forward_branches(self, images: torch.Tensor
                         ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]], torch.Tensor]:
        """(shared stages, every branch's stages (branch 0 first), ensemble heatmaps)."""
        z, shared_stages = self.split.shared(images)
        branch_stages = [self.split.branch(z)] + [branch(z) for branch in self.extra.branches]
        ensemble = self.extra.fau(z, [stages[-1] for stages in branch_stages])
        return shared_stages, branch_stages, ensemble

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        shared_stages, branch_stages, ensemble = self.forward_branches(batch["image"])
        stages = shared_stages + [s for stages in branch_stages for s in stages]
        loss_gt = self.supervised_loss(stages, batch)
        loss_ens = self.supervised_loss([ensemble], batch)
        target = ensemble.detach()
        loss_kd = sum(pixelwise_kl(stage, target, batch["weights"], self.temperature) for stage in stages)
        ramp = self.ramp(progress)
        loss = loss_gt + self.ens_weight * loss_ens + self.kd_weight * ramp * loss_kd
        return {"loss": loss, "loss_gt": loss_gt.detach(), "loss_ens": loss_ens.detach(),
                "loss_kd": loss_kd.detach(), "kd_ramp": ramp}

    def state_dict(self) -> dict:
        return {"okdhp": self.extra.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "okdhp" in state:
            self.extra.load_state_dict(state["okdhp"])
