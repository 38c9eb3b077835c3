"""Training losses for heatmap, coordinate and distillation objectives.

Shapes: ``N`` people, ``K`` joints. ``weights`` is always (N, K) per joint (0 = ignore), as produced by the
codecs. Reductions: heatmap losses average over N, K and pixels (mmpose's ``KeypointMSELoss``);
per-joint coordinate losses are weighted means over the joints with non-zero weight (dsntnn's
``average_loss``), 0 when no joint counts.

Head losses (:func:`build_head_loss`): the whole training objective of one head type, as a module
``forward(stages, batch) -> {"loss": scalar, "loss_<term>": detached parts}`` whose parameters (RLE's flow,
the AWL weights) train with the model. ``stages`` is the model's ``forward_all`` output; the terms are
summed over stages (intermediate supervision).
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .codecs.integral import dsnt, js_regulariser
from .codecs.rle import RLELoss

__all__ = ["KeypointMSELoss", "CoordL1Loss", "CoordL2Loss", "BoneLoss", "AutomaticWeightedLoss",
           "HeatmapKLLoss", "RLELoss", "check_finite", "weighted_mean", "HeatmapHeadLoss", "CoordinateHeadLoss",
           "build_head_loss", "LOSS_OPTIONS"]


def check_finite(loss, *, where: str, what: str = "loss"):
    """Return ``loss`` unchanged, or raise ``FloatingPointError("non-finite <what> at <where>")``.

    ``loss`` may also be a dict of named tensors (e.g. ``{name: param.grad}`` with ``what="gradient"``):
    all are checked and the message names the first non-finite one.
    """
    if isinstance(loss, dict):
        if loss and not bool(torch.stack([torch.isfinite(t).all() for t in loss.values()]).all()):
            name = next(n for n, t in loss.items() if not bool(torch.isfinite(t).all()))
            raise FloatingPointError(f"non-finite {what} at {where} (first in {name})")
        return loss
    if not bool(torch.isfinite(torch.as_tensor(loss)).all()):
        raise FloatingPointError(f"non-finite {what} at {where}")
    return loss


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """(N, K) per-joint values -> ``sum(w v) / sum(w)`` (0 with a graph when ``sum(w) == 0``)."""
    if weights is None:
        return values.mean()
    if weights.shape != values.shape:
        raise ValueError(f"weights must be {tuple(values.shape)}, got {tuple(weights.shape)}")
    weights = weights.to(values.dtype)
    total = weights.sum()
    # Dividing by max(total, tiny) keeps the graph (and zero gradients) when nothing is labelled.
    return (values * weights).sum() / total.clamp_min(torch.finfo(values.dtype).tiny)


def _check_coords(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred must be (N, K, 2), got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def _safe_norm(diff: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis with a zero (not NaN) gradient at the origin."""
    squared = (diff ** 2).sum(dim=-1)
    positive = squared > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))),
                       torch.zeros_like(squared))


class KeypointMSELoss(nn.Module):
    """Heatmap MSE: ``mean over N, K, H, W of w_nk (pred - target)^2``, summed over stages.

    forward(pred (N, K, H, W) or a list of such (intermediate supervision), target (N, K, H, W),
    weights (N, K) -- required when ``use_target_weight``).
    """

    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        stages = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        if not stages:
            raise ValueError("pred is an empty list of stages")
        if target.dim() != 4:
            raise ValueError(f"target must be (N, K, H, W), got shape {tuple(target.shape)}")
        if self.use_target_weight:
            if weights is None:
                raise ValueError("weights (N, K) are required when use_target_weight=True")
            if weights.shape != target.shape[:2]:
                raise ValueError(f"weights must be {tuple(target.shape[:2])}, got {tuple(weights.shape)}")
        total = 0
        for i, stage in enumerate(stages):
            if stage.shape != target.shape:
                raise ValueError(f"stage {i} output {tuple(stage.shape)} does not match the target "
                                 f"{tuple(target.shape)}")
            error = (stage - target) ** 2
            if self.use_target_weight:
                error = error * weights.to(error.dtype)[:, :, None, None]
            total = total + error.mean()
        return total


class CoordL1Loss(nn.Module):
    """Per-joint L1 distance ``|dx| + |dy|``, weighted mean over joints.

    forward(pred (N, K, 2), target (N, K, 2), weights (N, K) or None).
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        _check_coords(pred, target)
        return weighted_mean((pred - target).abs().sum(dim=-1), weights)


class CoordL2Loss(nn.Module):
    """Per-joint Euclidean distance (DSNT's loss), or its square with ``squared=True``; weighted mean.

    forward(pred (N, K, 2), target (N, K, 2), weights (N, K) or None).
    """

    def __init__(self, squared: bool = False):
        super().__init__()
        self.squared = squared

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        _check_coords(pred, target)
        diff = pred - target
        per_joint = (diff ** 2).sum(dim=-1) if self.squared else _safe_norm(diff)
        return weighted_mean(per_joint, weights)


class BoneLoss(nn.Module):
    """Bone-length consistency: mean of ``| ||p_i - p_j|| - ||g_i - g_j|| |`` over joint pairs whose two
    joints both have weight > 0.

    Args:
        limbs: sequence of ``(i, j)`` joint pairs (e.g. ``skeleton.limbs``: connected limbs only, the
            variant that works better on small data); ``None`` uses all ``K (K - 1) / 2`` pairs.

    forward(pred (N, K, 2), target (N, K, 2), weights (N, K) or None) -> scalar (0 if no pair counts).
    """

    def __init__(self, limbs: Sequence[tuple[int, int]] | None = None):
        super().__init__()
        if limbs is not None:
            limbs = [(int(i), int(j)) for i, j in limbs]
            if not limbs:
                raise ValueError("limbs is empty; pass None for all joint pairs")
            if any(i == j or min(i, j) < 0 for i, j in limbs):
                raise ValueError(f"limbs must be pairs of distinct non-negative joint indices, got {limbs}")
        self.limbs = limbs

    def _pairs(self, num_joints: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = self.limbs if self.limbs is not None else list(combinations(range(num_joints), 2))
        if not pairs:
            raise ValueError("BoneLoss needs at least two joints")
        if max(max(p) for p in pairs) >= num_joints:
            raise ValueError(f"a limb index is out of range for {num_joints} joints")
        index = torch.tensor(pairs, dtype=torch.long, device=device)
        return index[:, 0], index[:, 1]

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        _check_coords(pred, target)
        first, second = self._pairs(pred.shape[1], pred.device)
        pred_length = _safe_norm(pred[:, first] - pred[:, second])
        true_length = _safe_norm(target[:, first] - target[:, second])
        if weights is None:
            valid = None
        else:
            if weights.shape != pred.shape[:2]:
                raise ValueError(f"weights must be {tuple(pred.shape[:2])}, got {tuple(weights.shape)}")
            valid = ((weights[:, first] > 0) & (weights[:, second] > 0)).to(pred.dtype)
        return weighted_mean((pred_length - true_length).abs(), valid)


class AutomaticWeightedLoss(nn.Module):
    """Learned multi-task weighting: ``sum_i 0.5 / s_i^2 * L_i + log(1 + s_i^2)``, ``s_i`` initialised to 1.

    Homoscedastic-uncertainty weighting of Kendall, Gal & Cipolla (CVPR 2018) with the ``log(1 + s^2)``
    regulariser of Liebel & Koerner ("Auxiliary Tasks in Multi-task Learning", 2018), which keeps the
    total positive and stops ``s -> 0``; the form popularised by the ``AutomaticWeightedLoss`` package.
    Give ``awl.parameters()`` to the optimiser (without weight decay).
    """

    def __init__(self, num_losses: int = 2):
        super().__init__()
        if num_losses < 1:
            raise ValueError(f"num_losses must be positive, got {num_losses}")
        self.params = nn.Parameter(torch.ones(num_losses))

    @property
    def weights(self) -> torch.Tensor:
        """Current effective weights ``0.5 / s_i^2`` (detached, for logging)."""
        return (0.5 / self.params.detach() ** 2).clone()

    def forward(self, *losses: torch.Tensor) -> torch.Tensor:
        if len(losses) != len(self.params):
            raise ValueError(f"expected {len(self.params)} losses, got {len(losses)}")
        total = 0
        for s, loss in zip(self.params, losses):
            total = total + 0.5 / s ** 2 * loss + torch.log1p(s ** 2)
        return total


class HeatmapKLLoss(nn.Module):
    """Distillation: ``T^2 KL(softmax(teacher / T) || softmax(student / T))`` per map over its H x W pixels,
    averaged over joints (weighted mean with weights). The teacher is detached.

    forward(student (N, K, H, W), teacher (N, K, H, W), weights (N, K) or None).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        if student.dim() != 4 or student.shape != teacher.shape:
            raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must be "
                             "equal (N, K, H, W)")
        t = self.temperature
        log_p_student = F.log_softmax(student.flatten(2) / t, dim=2)
        log_p_teacher = F.log_softmax(teacher.detach().flatten(2) / t, dim=2)
        kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=2)
        return weighted_mean(kl, weights) * t ** 2


# -- head losses ---------------------------------------------------------------------------------------
#: the ``loss`` training option: which keys each head accepts
LOSS_OPTIONS = {
    "heatmap": (),
    "dsnt": ("coord", "js_weight", "js_sigma", "bone_loss", "bone_weight", "awl"),
    "regression": ("coord", "bone_loss", "bone_weight", "awl"),
    "rle": ("rle", "bone_loss", "bone_weight", "awl"),  # awl: refused with a reason
}
_COORD_LOSSES = {"l1": lambda: CoordL1Loss(), "l2": lambda: CoordL2Loss(), "mse": lambda: CoordL2Loss(squared=True)}
_DEFAULT_COORD = {"dsnt": "l2", "regression": "l1"}
_BONE_CHOICES = ("none", "all", "limbs")


class HeatmapHeadLoss(nn.Module):
    """The heatmap head's objective: :class:`KeypointMSELoss` against ``batch["heatmaps"]``, summed over stages.
    Logs only ``loss`` (as posekit always has)."""

    def __init__(self):
        super().__init__()
        self.mse = KeypointMSELoss(use_target_weight=True)

    def forward(self, stages: list[torch.Tensor], batch: dict) -> dict:
        return {"loss": sum(self.mse(out, batch["heatmaps"], batch["weights"]) for out in stages)}


class CoordinateHeadLoss(nn.Module):
    """Objective of a coordinate head (``dsnt``, ``regression``, ``rle``) against ``batch["coords"]`` (N, K, 2)
    in the codec's target units and ``batch["weights"]`` (N, K).

    Terms (each summed over stages):

    * ``coord`` -- :class:`CoordL1Loss` (``"l1"``), Euclidean :class:`CoordL2Loss` (``"l2"``, DSNT's) or its
      square (``"mse"``) on the predicted coordinates (dsnt, regression);
    * ``js`` -- DSNT's divergence regulariser: weighted mean of :func:`js_regulariser` of the normalised
      maps to Gaussians of ``js_sigma`` heatmap pixels at the targets (dsnt; off with ``js_weight=0``);
    * ``rle`` -- :class:`RLELoss` (its RealNVP flow is a parameter of this module) on the (N, K, 4) output;
    * ``bone`` -- :class:`BoneLoss` over all joint pairs (``bone_loss="all"``) or the skeleton's limbs
      (``"limbs"``).

    Total: ``coord + js_weight * js + bone_weight * bone`` (or ``rle + ...``), or with ``awl=True`` the
    :class:`AutomaticWeightedLoss` of the terms (its learned weights replace ``js_weight`` and
    ``bone_weight``). AWL is refused with RLE: a negative log-likelihood can be negative, and the weighted
    sum would then fall without bound as its weight grows.
    """

    def __init__(self, head: str, codec, *, coord: str | None = None, js_weight: float = 1.0,
                 js_sigma: float = 1.0, bone_loss: str = "none", bone_weight: float = 1.0, awl: bool = False,
                 rle: dict | None = None, limbs: Sequence[tuple[int, int]] | None = None):
        super().__init__()
        if head not in ("dsnt", "regression", "rle"):
            raise ValueError(f"CoordinateHeadLoss is for the dsnt, regression and rle heads, not {head!r}")
        self.head, self.codec = head, codec
        self.coord_name = None
        if head != "rle":
            self.coord_name = coord or _DEFAULT_COORD[head]
            if self.coord_name not in _COORD_LOSSES:
                raise ValueError(f"loss coord must be one of {sorted(_COORD_LOSSES)}, got {self.coord_name!r}")
            self.coord = _COORD_LOSSES[self.coord_name]()
        for name, value in (("js_weight", js_weight), ("bone_weight", bone_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"loss {name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(js_sigma, (int, float)) and js_sigma > 0):
            raise ValueError(f"loss js_sigma must be > 0 (heatmap pixels), got {js_sigma!r}")
        self.js_weight = float(js_weight) if head == "dsnt" else 0.0
        self.js_sigma = float(js_sigma)
        if bone_loss not in _BONE_CHOICES:
            raise ValueError(f"loss bone_loss must be one of {list(_BONE_CHOICES)}, got {bone_loss!r}")
        self.bone_loss_kind = bone_loss
        self.bone_weight = float(bone_weight)
        self.bone = None
        if bone_loss == "limbs":
            if not limbs:
                raise ValueError("bone_loss 'limbs' needs the skeleton's limbs (unknown keypoint set?); use 'all'")
            self.bone = BoneLoss(limbs)
        elif bone_loss == "all":
            self.bone = BoneLoss(None)
        self.rle = RLELoss(**(rle or {})) if head == "rle" else None
        self.term_names = (["rle"] if head == "rle" else ["coord"]) + (["js"] if self.js_weight > 0 else []) \
            + (["bone"] if self.bone is not None and self.bone_weight > 0 else [])
        self.awl = None
        if awl:
            if head == "rle":
                raise ValueError("awl is not available with the rle head: its negative log-likelihood can be "
                                 "negative, which makes the learned weighting unbounded")
            if len(self.term_names) < 2:
                raise ValueError(f"awl learns weights between loss terms but {head} has only "
                                 f"{self.term_names}: add bone_loss (or keep dsnt's js_weight > 0)")
            self.awl = AutomaticWeightedLoss(len(self.term_names))

    def stage_terms(self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> dict:
        """One stage's raw output -> {term name: unweighted scalar}."""
        terms = {}
        if self.head == "dsnt":
            maps = self.codec.normalized_maps(output)
            pred = dsnt(maps)
        else:
            if output.dim() != 3 or output.shape[-1] != (4 if self.head == "rle" else 2):
                raise ValueError(f"{self.head} head output must be (N, K, {4 if self.head == 'rle' else 2}), "
                                 f"got {tuple(output.shape)}")
            pred = output[..., :2]
        if self.head == "rle":
            terms["rle"] = self.rle(pred, output[..., 2:], target, weights)
        else:
            terms["coord"] = self.coord(pred, target, weights)
        if "js" in self.term_names:
            terms["js"] = weighted_mean(js_regulariser(maps, target, self.js_sigma), weights)
        if "bone" in self.term_names:
            terms["bone"] = self.bone(pred, target, weights)
        return terms

    def forward(self, stages: list[torch.Tensor], batch: dict) -> dict:
        target, weights = batch["coords"], batch["weights"]
        target = target.to(stages[0].dtype)
        totals: dict[str, torch.Tensor] = {}
        for output in stages:
            for name, value in self.stage_terms(output, target, weights).items():
                totals[name] = totals[name] + value if name in totals else value
        values = [totals[name] for name in self.term_names]
        if self.awl is not None:
            loss = self.awl(*values)
        else:
            scale = {"js": self.js_weight, "bone": self.bone_weight}
            loss = sum(scale.get(name, 1.0) * value for name, value in zip(self.term_names, values))
        logs = {f"loss_{name}": value.detach() for name, value in zip(self.term_names, values)}
        if self.awl is not None:
            logs.update({f"awl_weight_{name}": w for name, w in zip(self.term_names, self.awl.weights)})
        return {"loss": loss, **logs}


def build_head_loss(head: str, codec, options: dict | None = None,
                    limbs: Sequence[tuple[int, int]] | None = None) -> nn.Module:
    """The objective of head type ``head`` (see :data:`posekit.models.heads.HEAD_TYPES`) from the ``loss``
    training option ``options`` (keys per head in :data:`LOSS_OPTIONS`; unknown keys are an error).

    ``codec``: the trainer's codec (DSNT reads its normalisation). ``limbs``: the skeleton's limbs, for
    ``bone_loss="limbs"``. Examples::

        build_head_loss("heatmap", codec)                                  # heatmap MSE
        build_head_loss("dsnt", codec, {"coord": "l2", "js_weight": 1.0})
        build_head_loss("regression", codec, {"coord": "l1", "bone_loss": "limbs", "awl": True}, skeleton.limbs)
        build_head_loss("rle", codec, {"rle": {"q_distribution": "laplace"}})
    """
    if head not in LOSS_OPTIONS:
        raise ValueError(f"unknown head {head!r}; choose one of {list(LOSS_OPTIONS)}")
    options = dict(options or {})
    unknown = set(options) - set(LOSS_OPTIONS[head])
    if unknown:
        allowed = list(LOSS_OPTIONS[head]) or "none (heatmap MSE)"
        raise ValueError(f"loss options {sorted(unknown)} do not apply to the {head} head; it accepts {allowed}")
    if head == "heatmap":
        return HeatmapHeadLoss()
    return CoordinateHeadLoss(head, codec, limbs=limbs, **options)
