"""SCAI: Self-Correctable and Adaptable Inference (Z. Kan et al., "Self-Correctable and Adaptable Inference
for Generalizable Human Pose Estimation", CVPR 2023; it builds on the same group's SCIO, "Self-Constrained
Inference Optimization on Structural Groups for Human Pose Estimation", ECCV 2022).

A trained pose network is frozen. Three small networks learn the geometry of the body's local chains and
correct the hardest joints, the distal ones (wrists, ankles), at inference:

1. **Local chains.** The body is split into six chains of four joints ordered from a proximal joint to a
   distal one, ``(p, m1, m2, d)``: two arms, two legs and two head-torso chains
   (:attr:`posekit.skeletons.Skeleton.chains`; "a|b" = LSP's joint | MPII's joint):

   =======  =============================================  ========================================
   chain    LSP-14 / MPII-16                               COCO-17 (no neck: the other shoulder/hip)
   =======  =============================================  ========================================
   r. arm   neck|thorax, r shoulder, r elbow, r wrist      l shoulder, r shoulder, r elbow, r wrist
   l. arm   neck|thorax, l shoulder, l elbow, l wrist      r shoulder, l shoulder, l elbow, l wrist
   r. leg   l hip|pelvis, r hip, r knee, r ankle           l hip, r hip, r knee, r ankle
   l. leg   r hip|pelvis, l hip, l knee, l ankle           r hip, l hip, l knee, l ankle
   r. body  head top, neck|upper neck, r shoulder, r hip   nose, r shoulder, r hip, r knee
   l. body  head top, neck|upper neck, l shoulder, l hip   nose, l shoulder, l hip, l knee
   =======  =============================================  ========================================

   Walking a chain moves away from its proximal joint along the limbs (checked in the tests). The distal
   slots (wrists, ankles, and the hips -- COCO: the knees) are the six joints SCAI corrects.

2. **Prediction network** Φ: heatmaps of ``p, m1, m2`` -> a heatmap of ``d`` (what the chain's geometry
   says the distal joint should be).
3. **Correction network** C: corrects the pose network's estimate of ``d`` by an offset, conditioned on the
   chain, on Φ's opinion and on the **fitness feedback** of the uncorrected estimate (below).
4. **Self-referee** (the paper's *fitness feedback network*) Γ: heatmaps of ``m1, m2`` and the (corrected)
   distal joint -> the proximal joint. Mapping the prediction back to the observed input and comparing,
   ``e = || Γ(m1, m2, d') - p_observed ||``, gives a self-referential error that needs no label: the paper's
   central finding is that it correlates strongly with the true error of ``d'`` (we log the correlation,
   ``feedback_corr``, every training epoch; in a small synthetic check we measured only 0.1-0.15 there:
   the proximal joint is mostly determined by the middle ones).
5. **Training** (labeled data, pose network frozen): Φ and Γ with ground truth; C moves the distal estimate
   toward the ground truth and, with weight ``feedback_weight``, lowers the referee's error of its corrected
   joint (the referee is held fixed inside that term).
6. **Test-time training** (mode ``"tta"``): Γ frozen, C keeps training on the unlabeled test images with
   ``e`` as its only loss -- its own Adam optimizer, a small learning rate (``tta_lr``), ``tta_steps``
   steps per batch -- then corrects the batch. The corrected distal joints replace the pose network's.

What follows the paper and what is ours
---------------------------------------
Only the public abstracts and third-party summaries of SCAI and of its predecessor SCIO were available to
us (their full texts were not; no code was released). They give: keypoints partitioned into groups by
the body's structure, each split into high-confidence base joints and a low-confidence terminal joint
(SCIO); a forward prediction from base to terminal joints and a backward verification from the terminal
joint to the base ones, whose error on the base joints needs no label and serves as the objective at
inference (SCIO); a correction network that corrects the prediction conditioned on this fitness feedback
error, a fitness feedback network that maps the prediction back to the input side and compares it with
what was observed, the finding that this self-referential error correlates strongly with the true error,
and its use as the loss that adapts the correction network during inference (SCAI); everything trained
after, and on top of, a fixed pose network. Our own choices (everything the summaries do not pin down):

* the six chains of four joints (three base joints, the distal one terminal), fixed per skeleton;
* all three networks work on the pose network's *heatmaps* of the chain only (no image features), at the
  heatmap resolution (stride 4), so they are tiny (``width`` 16: 0.16 M parameters in all) and
  backbone-agnostic; one set of weights serves the six chains, told apart by six one-hot input planes (plus
  two coordinate planes);
* Φ and Γ are small encoder-decoders (two stride-2 stages, dilated context, skip connections, GroupNorm);
  Φ is trained with heatmap MSE to the Gaussian target; Γ outputs logits read by a spatial soft-argmax and
  is trained with the Euclidean error of the proximal joint, fed the *ground-truth* distal joint rendered as a
  Gaussian (so it learns to depend on where the distal joint is) and the observed middle joints;
* C reads the chain's heatmaps, Φ's heatmap and Γ's proximal map given the uncorrected distal joint, plus
  the decoded joint coordinates, the fitness error and the peak scores; it outputs an offset ``(dx, dy)``
  in heatmap pixels, ``max_offset * tanh(.)`` (default a quarter of the heatmap side), its last layer
  initialised to zero (a fresh C changes nothing). The offset moves the codec's decoded distal joint;
  the corrected joint is rendered as a Gaussian of the codec's sigma for Γ (differentiable in the offset);
* training losses: smooth-L1 (heatmap px) of the corrected distal joint to the ground truth, plus
  ``feedback_weight`` (0.1) x the referee's error of the corrected joint; pose-network crops come from the
  training augmentation (scale, rotation, flip, colour), which exposes realistic mistakes of the frozen
  pose network on its own training data;
* the observed proximal joint ``p_observed`` is the codec's decoded proximal joint of the same crop;
  ``e`` is Euclidean, in heatmap pixels; optional ``tta_weighting="confidence"`` weights each chain's
  error by the pose network's peak score of its proximal joint (default: the plain mean);
* test-time training: Adam, ``tta_steps`` 1, ``tta_lr`` 1e-4 by default (stored in the checkpoint,
  overridable at inference); it is *online* (C keeps its adapted weights and optimizer from batch to batch,
  ``reset()`` restores the trained ones) unless ``episodic=True`` (reset before every batch); with flip
  test the correction runs on the fused heatmaps of the two views (``Predictor.decode_views``); chains are
  corrected in parallel from the uncorrected estimates.

Use
---
* ``train_scai(pose_checkpoint, "lsp:DATA@train", "runs/scai", epochs=10)`` -> ``runs/scai/scai.pt``;
* ``SCAICorrector.from_checkpoint("runs/scai/scai.pt", mode="tta")`` is a drop-in
  :class:`~posekit.inference.predictor.Predictor` (``predict``, ``predict_samples``, ``predict_crops``);
* ``posekit eval|predict --checkpoint POSE.pt --scai runs/scai/scai.pt [--tta scai]``;
* ``posekit adapt --method scai --source POSE.pt --target SPEC --val SPEC --out DIR`` (:func:`adapt_cli`).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posekit.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

PROXIMAL, MIDDLE, DISTAL = 0, (1, 2), 3
MODES = ("none", "correct", "tta")
TTA_WEIGHTINGS = ("none", "confidence")


# =====================================================================================================
# Chains
# =====================================================================================================
def chains_of(skeleton) -> np.ndarray:
    """(6, 4) int64: the skeleton's chains, proximal -> distal."""
    chains = np.asarray(skeleton.chains, dtype=np.int64)
    if chains.ndim != 2 or chains.shape[1] != 4:
        raise ValueError(f"skeleton {skeleton.name}: SCAI needs chains of four joints, got {skeleton.chains}")
    return chains


def distal_joints(chains) -> list[int]:
    """The joints SCAI corrects (distal slots), in chain order."""
    return [int(c[DISTAL]) for c in np.asarray(chains)]


def gather_chains(heatmaps: torch.Tensor, coords: torch.Tensor, scores: torch.Tensor, chains) -> dict:
    """Per-person arrays -> one row per (person, chain).

    heatmaps (N, K, h, w), coords (N, K, 2) in heatmap pixels, scores (N, K); chains (C, 4).
    Returns ``maps`` (N*C, 4, h, w), ``coords`` (N*C, 4, 2), ``scores`` (N*C, 4), ``chain`` (N*C,) chain ids;
    row ``i * C + c`` is person ``i``, chain ``c``.
    """
    idx = torch.as_tensor(np.asarray(chains), dtype=torch.long)
    n, c = heatmaps.shape[0], idx.shape[0]
    maps = heatmaps[:, idx]                                   # (N, C, 4, h, w)
    return {"maps": maps.reshape(n * c, 4, *heatmaps.shape[2:]),
            "coords": coords[:, idx].reshape(n * c, 4, 2),
            "scores": scores[:, idx].reshape(n * c, 4),
            "chain": torch.arange(c).repeat(n)}


# =====================================================================================================
# Differentiable heatmap helpers
# =====================================================================================================
def render_gaussian(centers: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """centers (B, 2) heatmap px -> (B, 1, h, w) unnormalised Gaussians (peak 1), differentiable in the centres."""
    w, h = size
    xs = torch.arange(w, dtype=centers.dtype, device=centers.device)
    ys = torch.arange(h, dtype=centers.dtype, device=centers.device)
    gx = torch.exp(-(xs[None, :] - centers[:, :1]) ** 2 / (2 * sigma ** 2))   # (B, w)
    gy = torch.exp(-(ys[None, :] - centers[:, 1:]) ** 2 / (2 * sigma ** 2))   # (B, h)
    return (gy[:, :, None] * gx[:, None, :])[:, None]


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, 1, h, w) -> (coords (B, 2) heatmap px, probabilities (B, 1, h, w))."""
    b, _, h, w = logits.shape
    prob = torch.softmax(logits.reshape(b, -1).float(), dim=1).reshape(b, 1, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device)
    x = (prob.sum(dim=2)[:, 0] * xs).sum(dim=1)
    y = (prob.sum(dim=3)[:, 0] * ys).sum(dim=1)
    return torch.stack([x, y], dim=1), prob


def hard_argmax(maps: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 2) integer peak (x, y) as float."""
    b, _, h, w = maps.shape
    flat = maps.reshape(b, -1).argmax(dim=1)
    return torch.stack([(flat % w).float(), (flat // w).float()], dim=1)


def referee_error(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The fitness (self-referential) error: Euclidean distance (B,) between the referee's proximal joint and
    the observed one, (B, 2) each, heatmap px. Zero exactly when they agree."""
    squared = ((predicted - observed) ** 2).sum(dim=-1)
    norm = torch.sqrt(squared.clamp(min=1e-12))  # finite gradient at 0
    return torch.where(squared > 0, norm, torch.zeros_like(norm))


# =====================================================================================================
# Networks
# =====================================================================================================
def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True))


def _extra_planes(x: torch.Tensor, chain: torch.Tensor, num_chains: int) -> torch.Tensor:
    """Append ``num_chains`` one-hot chain planes and two coordinate planes in [-1, 1]."""
    b, _, h, w = x.shape
    onehot = F.one_hot(chain.to(x.device), num_chains).to(x.dtype)[:, :, None, None].expand(b, num_chains, h, w)
    ys = torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device)[None, None, :, None].expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device)[None, None, None, :].expand(b, 1, h, w)
    return torch.cat([x, onehot, xs, ys], dim=1)


class ChainEncoder(nn.Module):
    """Heatmaps of one chain (+ chain one-hot + coordinates) -> features at 1, 1/2 and 1/4 resolution."""

    def __init__(self, in_maps: int, num_chains: int, width: int):
        super().__init__()
        c = width
        self.num_chains = num_chains
        self.stem = _block(in_maps + num_chains + 2, c)
        self.down1 = _block(c, 2 * c, stride=2)
        self.down2 = _block(2 * c, 2 * c, stride=2)
        self.context = nn.Sequential(_block(2 * c, 2 * c, dilation=2), _block(2 * c, 2 * c, dilation=2))

    def forward(self, x: torch.Tensor, chain: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(_extra_planes(x, chain, self.num_chains))
        f1 = self.down1(f0)
        f2 = self.context(self.down2(f1))
        return [f0, f1, f2]


class ChainMapNet(nn.Module):
    """Encoder-decoder: (B, in_maps, h, w) heatmaps of a chain -> (B, 1, h, w) map of one joint.

    Used twice: the prediction network Φ (p, m1, m2 -> d heatmap) and the self-referee Γ (m1, m2, d ->
    p logits, read by soft-argmax).
    """

    def __init__(self, in_maps: int = 3, num_chains: int = 6, width: int = 16):
        super().__init__()
        c = width
        self.encoder = ChainEncoder(in_maps, num_chains, c)
        self.up1 = _block(4 * c, 2 * c)
        self.up0 = _block(3 * c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        f0, f1, f2 = self.encoder(x, chain)
        u1 = self.up1(torch.cat([F.interpolate(f2, size=f1.shape[2:], mode="bilinear", align_corners=False), f1], 1))
        u0 = self.up0(torch.cat([F.interpolate(u1, size=f0.shape[2:], mode="bilinear", align_corners=False), f0], 1))
        return self.head(u0)


#: scalar inputs of the correction network (see :meth:`SCAINets.correction_scalars`)
NUM_SCALARS = 17


class CorrectionNet(nn.Module):
    """C: (B, 6, h, w) maps [p, m1, m2, d, Φ(d), Γ(p | uncorrected d)] + (B, 17) scalars -> offset (B, 2) heatmap px.

    The offset is ``max_offset * tanh(z)`` and the last linear layer starts at zero: an untrained C changes
    nothing.
    """

    def __init__(self, num_chains: int = 6, width: int = 16, max_offset: float = 4.0):
        super().__init__()
        c = width
        self.max_offset = float(max_offset)
        self.encoder = ChainEncoder(6, num_chains, c)
        self.mlp = nn.Sequential(nn.Linear(4 * c + NUM_SCALARS, 2 * c), nn.ReLU(inplace=True),
                                 nn.Linear(2 * c, 2 * c), nn.ReLU(inplace=True))
        self.head = nn.Linear(2 * c, 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, maps: torch.Tensor, scalars: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        f2 = self.encoder(maps, chain)[-1]
        pooled = torch.cat([f2.mean(dim=(2, 3)), f2.amax(dim=(2, 3))], dim=1)
        return self.max_offset * torch.tanh(self.head(self.mlp(torch.cat([pooled, scalars], dim=1))))


class SCAINets(nn.Module):
    """The three SCAI networks of one pose model's heatmap frame, shared by the six chains.

    ``config``: ``heatmap_size`` (w, h), ``sigma`` (the codec's, for rendering the corrected joint), ``chains``
    (C, 4), ``width``, ``max_offset`` (heatmap px).
    """

    def __init__(self, heatmap_size, sigma: float, chains, width: int = 16, max_offset: float | None = None):
        super().__init__()
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.chains = np.asarray(chains, dtype=np.int64).tolist()
        self.width = int(width)
        self.max_offset = float(max_offset if max_offset is not None else max(self.heatmap_size) / 4)
        n = len(self.chains)
        self.prediction = ChainMapNet(3, n, width)
        self.referee = ChainMapNet(3, n, width)
        self.correction = CorrectionNet(n, width, self.max_offset)

    def config(self) -> dict:
        return {"heatmap_size": list(self.heatmap_size), "sigma": self.sigma, "chains": self.chains,
                "width": self.width, "max_offset": self.max_offset}

    @classmethod
    def from_config(cls, cfg: dict) -> "SCAINets":
        return cls(cfg["heatmap_size"], cfg["sigma"], cfg["chains"], cfg.get("width", 16), cfg.get("max_offset"))

    # -- pieces -----------------------------------------------------------------------------------
    def referee_coords(self, middle_maps: torch.Tensor, distal_xy: torch.Tensor, chain: torch.Tensor,
                       params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Γ: middle heatmaps (B, 2, h, w) + distal joint (B, 2) heatmap px -> proximal (coords (B, 2), map).

        ``params``: optional replacement parameters (``torch.func.functional_call``), e.g. detached ones so a
        loss through the referee trains only what feeds it.
        """
        x = torch.cat([middle_maps, render_gaussian(distal_xy, self.heatmap_size, self.sigma)], dim=1)
        if params is None:
            logits = self.referee(x, chain)
        else:
            logits = torch.func.functional_call(self.referee, params, (x, chain))
        return soft_argmax(logits)

    def fitness(self, rows: dict, distal_xy: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Self-referential error (B,) of a distal joint estimate: Γ's proximal joint vs the observed one."""
        predicted, _ = self.referee_coords(rows["maps"][:, 1:3], distal_xy, rows["chain"], params)
        return referee_error(predicted, rows["coords"][:, PROXIMAL])

    @torch.no_grad()
    def context(self, rows: dict, phi: torch.Tensor | None = None) -> dict:
        """What C is conditioned on and that does not depend on C: Φ's heatmap (computed unless given) and Γ's
        feedback on the uncorrected distal joint. No gradients."""
        maps, coords, chain = rows["maps"], rows["coords"], rows["chain"]
        phi = self.prediction(maps[:, :3], chain) if phi is None else phi.detach()
        ref_xy, ref_map = self.referee_coords(maps[:, 1:3], coords[:, DISTAL], chain)
        error = referee_error(ref_xy, coords[:, PROXIMAL])
        return {"phi": phi, "phi_xy": hard_argmax(phi), "ref_xy": ref_xy, "ref_map": ref_map, "error": error}

    def correction_scalars(self, rows: dict, ctx: dict) -> torch.Tensor:
        """(B, 17): joints relative to the observed distal joint, its absolute position, Φ's peak relative to
        it, Γ's feedback vector and error, the four peak scores; lengths over the heatmap side."""
        w, h = self.heatmap_size
        side = float(max(w, h))
        coords = rows["coords"]
        d = coords[:, DISTAL]
        rel = (coords[:, :3] - d[:, None]).reshape(len(d), 6) / side
        absolute = d / torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=d.dtype) * 2 - 1
        phi_rel = (ctx["phi_xy"] - d) / side
        feedback = (ctx["ref_xy"] - coords[:, PROXIMAL]) / side
        return torch.cat([rel, absolute, phi_rel, feedback, ctx["error"][:, None] / side,
                          rows["scores"].clamp(-1, 2)], dim=1)

    def offsets(self, rows: dict, ctx: dict) -> torch.Tensor:
        """C's correction (B, 2) of the distal joint, heatmap px (differentiable in C's parameters)."""
        maps = torch.cat([rows["maps"], ctx["phi"], ctx["ref_map"]], dim=1)
        return self.correction(maps, self.correction_scalars(rows, ctx), rows["chain"])

    # -- training on labels ------------------------------------------------------------------------
    def losses(self, rows: dict, gt_xy: torch.Tensor, gt_vis: torch.Tensor, gt_maps: torch.Tensor,
               feedback_weight: float = 0.1) -> dict:
        """Supervised SCAI losses of one batch of chain rows.

        gt_xy (B, 4, 2) heatmap px, gt_vis (B, 4) {0, 1}, gt_maps (B, 4, h, w) Gaussian targets of the chain.
        Returns ``loss`` (sum) and detached parts ``loss_pred``, ``loss_ref``, ``loss_corr``, ``loss_fb``
        plus ``distal_err`` / ``corrected_err`` (mean px over labelled distal joints) and the uncorrected
        fitness error ``fitness`` (B,) with the distal error ``true_err`` (B,) for correlation logging.
        """
        maps, coords, chain = rows["maps"], rows["coords"], rows["chain"]
        vd, vp = gt_vis[:, DISTAL], gt_vis[:, PROXIMAL]
        # Φ: heatmap MSE to the Gaussian of the true distal joint
        phi = self.prediction(maps[:, :3], chain)
        per_row = ((phi[:, 0] - gt_maps[:, DISTAL]) ** 2).mean(dim=(1, 2))
        loss_pred = (per_row * vd).sum() / vd.sum().clamp(min=1) * 1000.0
        # Γ: proximal joint from the observed middle joints and the TRUE distal joint
        distal_in = torch.where(vd[:, None] > 0, gt_xy[:, DISTAL], coords[:, DISTAL])
        ref_xy, _ = self.referee_coords(maps[:, 1:3], distal_in, chain)
        wr = vd * vp
        loss_ref = (referee_error(ref_xy, gt_xy[:, PROXIMAL]) * wr).sum() / wr.sum().clamp(min=1)
        # C: toward the truth, and toward a low fitness error with the referee held fixed
        ctx = self.context(rows, phi)
        corrected = coords[:, DISTAL] + self.offsets(rows, ctx)
        err = F.smooth_l1_loss(corrected, gt_xy[:, DISTAL], reduction="none").sum(dim=1)
        loss_corr = (err * vd).sum() / vd.sum().clamp(min=1)
        frozen = {k: v.detach() for k, v in self.referee.named_parameters()}
        loss_fb = self.fitness(rows, corrected, params=frozen).mean()
        loss = loss_pred + loss_ref + loss_corr + feedback_weight * loss_fb
        with torch.no_grad():
            true_err = torch.linalg.norm(coords[:, DISTAL] - gt_xy[:, DISTAL], dim=1)
            corr_err = torch.linalg.norm(corrected - gt_xy[:, DISTAL], dim=1)
            n = vd.sum().clamp(min=1)
            logs = {"distal_err": (true_err * vd).sum() / n, "corrected_err": (corr_err * vd).sum() / n}
        return {"loss": loss, "loss_pred": loss_pred.detach(), "loss_ref": loss_ref.detach(),
                "loss_corr": loss_corr.detach(), "loss_fb": loss_fb.detach(), **logs,
                "fitness": ctx["error"], "true_err": true_err, "visible": vd}


# =====================================================================================================
# Test-time training
# =====================================================================================================
class TestTimeTrainer:
    """Adapts C on unlabeled chain rows with the frozen referee's error as the loss (its own Adam)."""

    __test__ = False  # not a pytest class

    def __init__(self, nets: SCAINets, *, lr: float = 1e-4, steps: int = 1, weighting: str = "none",
                 episodic: bool = False):
        if weighting not in TTA_WEIGHTINGS:
            raise ValueError(f"tta_weighting must be one of {TTA_WEIGHTINGS}, got {weighting!r}")
        if steps < 0:
            raise ValueError(f"tta_steps must be >= 0, got {steps}")
        self.nets, self.lr, self.steps, self.weighting, self.episodic = nets, float(lr), int(steps), weighting, episodic
        self.initial = copy.deepcopy(nets.correction.state_dict())
        self.reset()

    def reset(self) -> None:
        """Back to the trained correction network and a fresh optimizer."""
        self.nets.correction.load_state_dict(self.initial)
        self.optimizer = torch.optim.Adam(self.nets.correction.parameters(), lr=self.lr)
        self.history: list[float] = []

    def loss(self, rows: dict, ctx: dict) -> torch.Tensor:
        corrected = rows["coords"][:, DISTAL] + self.nets.offsets(rows, ctx)
        error = self.nets.fitness(rows, corrected)
        if self.weighting == "confidence":
            weight = rows["scores"][:, PROXIMAL].clamp(0, 1)
            return (error * weight).sum() / weight.sum().clamp(min=1e-6)
        return error.mean()

    def step(self, rows: dict, ctx: dict | None = None) -> float:
        """One optimisation step of C on these rows; returns the loss before the step."""
        ctx = self.nets.context(rows) if ctx is None else ctx
        self.nets.referee.requires_grad_(False)
        self.nets.correction.train()
        loss = self.loss(rows, ctx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.history.append(float(loss.detach()))
        return float(loss.detach())

    def adapt(self, rows: dict, ctx: dict) -> None:
        if self.episodic:
            self.reset()
        for _ in range(self.steps):
            self.step(rows, ctx)


# =====================================================================================================
# Inference: a Predictor with SCAI
# =====================================================================================================
class SCAICorrector:
    """A :class:`~posekit.inference.predictor.Predictor` whose distal joints SCAI corrects.

    ``mode``: ``"none"`` (the pose network alone, through the same code path), ``"correct"`` (C's offsets),
    ``"tta"`` (test-time training of C on every batch, then its offsets). ``predict``, ``predict_samples``
    and ``predict_crops`` have the Predictor's signatures and return image-pixel keypoints (M, K, 3);
    everything else (``config``, ``prepare``, ``codec``, ...) is the wrapped predictor's.
    """

    def __init__(self, predictor, nets: SCAINets, config: dict | None = None, *, mode: str = "correct",
                 tta_steps: int | None = None, tta_lr: float | None = None, tta_weighting: str | None = None,
                 episodic: bool | None = None):
        from posekit.codecs import HeatmapCodec
        if mode not in MODES:
            raise ValueError(f"SCAI mode must be one of {MODES}, got {mode!r}")
        if not isinstance(predictor.codec, HeatmapCodec):
            raise ValueError(f"SCAI works on heatmaps; this model's codec is {type(predictor.codec).__name__}")
        config = dict(config or {})
        check_compatible(config.get("pose", {}).get("config"), predictor.config, nets)
        self.predictor, self.nets, self.scai_config, self.mode = predictor, nets.eval(), config, mode
        self.nets.requires_grad_(False)
        self.nets.correction.requires_grad_(True)
        tta = config.get("tta", {})
        self.tta = TestTimeTrainer(
            nets, lr=tta_lr if tta_lr is not None else tta.get("lr", 1e-4),
            steps=tta_steps if tta_steps is not None else tta.get("steps", 1),
            weighting=tta_weighting if tta_weighting is not None else tta.get("weighting", "none"),
            episodic=episodic if episodic is not None else tta.get("episodic", False))
        self.chains = np.asarray(nets.chains, dtype=np.int64)
        self.distal = distal_joints(self.chains)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, scai_checkpoint, *, pose_checkpoint=None, mode: str = "correct", tta_steps=None,
                        tta_lr=None, tta_weighting=None, episodic=None, **predictor_kwargs) -> "SCAICorrector":
        """Load the SCAI checkpoint and its pose model (``pose_checkpoint`` overrides the recorded path)."""
        from posekit.inference.predictor import Predictor
        nets, config = load_scai(scai_checkpoint)
        path = pose_checkpoint or config["pose"]["checkpoint"]
        predictor = Predictor.load(path, **predictor_kwargs)
        return cls(predictor, nets, config, mode=mode, tta_steps=tta_steps, tta_lr=tta_lr,
                   tta_weighting=tta_weighting, episodic=episodic)

    @classmethod
    def wrap(cls, predictor, scai_checkpoint, **kwargs) -> "SCAICorrector":
        """SCAI on an already built predictor (checked for the same heatmap frame)."""
        nets, config = load_scai(scai_checkpoint)
        return cls(predictor, nets, config, **kwargs)

    # -- Predictor interface ---------------------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__") or name == "predictor":
            raise AttributeError(name)
        return getattr(self.predictor, name)

    @property
    def flip_test(self) -> bool:
        return self.predictor.flip_test

    @flip_test.setter
    def flip_test(self, value: bool) -> None:
        self.predictor.flip_test = value

    @property
    def batch_size(self) -> int:
        return self.predictor.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.predictor.batch_size = value

    @property
    def num_keypoints(self) -> int:
        return self.predictor.num_keypoints

    @property
    def config(self) -> dict | None:
        return getattr(self.predictor, "config", None)

    def reset(self) -> None:
        """Forget test-time training (the trained correction network again)."""
        self.tta.reset()

    def predict(self, image: np.ndarray, boxes) -> np.ndarray:
        from posekit.inference.predictor import Predictor
        return Predictor.predict(self, image, boxes)

    def predict_samples(self, samples, on_error=None, read=None):
        from posekit.inference.predictor import Predictor
        return Predictor.predict_samples(self, samples, on_error=on_error, read=read)

    def predict_crops(self, crops: np.ndarray, matrices: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        """As :meth:`Predictor.predict_crops`, with the distal joints corrected in the crop's frame."""
        p = self.predictor
        return p.decode_views(p.run_network(crops), matrices, flipped,
                              refine=None if self.mode == "none" else self.correct)

    # -- SCAI ------------------------------------------------------------------------------------------
    def chain_rows(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> dict:
        codec = self.predictor.codec
        hm_xy = torch.from_numpy(codec.input_to_heatmap(coords).astype(np.float32))
        return gather_chains(torch.from_numpy(np.ascontiguousarray(heatmaps, dtype=np.float32)), hm_xy,
                             torch.from_numpy(np.asarray(scores, dtype=np.float32)), self.chains)

    def offsets(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(N, C, 2) distal offsets in heatmap px (after test-time training in mode "tta")."""
        n, c = len(heatmaps), len(self.chains)
        with torch.inference_mode(False):
            rows = self.chain_rows(heatmaps, coords, scores)
            ctx = self.nets.context(rows)
            if self.mode == "tta" and self.tta.steps > 0:
                with torch.enable_grad():
                    self.tta.adapt(rows, ctx)
            with torch.no_grad():
                return self.nets.offsets(rows, ctx).reshape(n, c, 2).numpy()

    def correct(self, heatmaps: np.ndarray, coords: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """coords (N, K, 2) model-input px -> a copy whose distal joints carry SCAI's offsets."""
        offsets = self.offsets(heatmaps, coords, scores)
        scale = self.predictor.codec.input_to_heatmap(np.ones(2))        # heatmap px per input px
        shift = np.zeros(coords.shape, np.float64)
        count = np.zeros(coords.shape[1])
        for c, j in enumerate(self.distal):  # a joint that ends two chains gets the mean of their offsets
            shift[:, j] += offsets[:, c] / scale
            count[j] += 1
        out = coords.copy()
        fixed = count > 0
        out[:, fixed] = coords[:, fixed] + (shift[:, fixed] / count[fixed, None]).astype(np.float32)
        return out


def check_compatible(pose_cfg: dict | None, predictor_cfg: dict, nets: SCAINets) -> None:
    """SCAI's nets must see the heatmaps they were trained on: same joints, input size, heatmap frame."""
    codec = predictor_cfg.get("codec", {})
    if list(codec.get("heatmap_size", [])) != list(nets.heatmap_size):
        raise ValueError(f"SCAI nets were trained on {nets.heatmap_size} heatmaps but this pose model gives "
                         f"{codec.get('heatmap_size')}")
    k = int(predictor_cfg.get("num_keypoints", 0))
    if int(np.max(nets.chains)) >= k:
        raise ValueError(f"SCAI chains {nets.chains} need more than the model's {k} keypoints")
    if pose_cfg:
        for key in ("num_keypoints", "input_size", "skeleton"):
            if key in pose_cfg and key in predictor_cfg and pose_cfg[key] != predictor_cfg[key]:
                raise ValueError(f"SCAI nets were trained on a pose model with {key} {pose_cfg[key]}, this one has "
                                 f"{predictor_cfg[key]}")


# =====================================================================================================
# Checkpoints
# =====================================================================================================
def scai_payload(nets: SCAINets, config: dict) -> dict:
    return {"scai": {"prediction": nets.prediction.state_dict(), "correction": nets.correction.state_dict(),
                     "referee": nets.referee.state_dict()},
            "config": config}


def load_scai(path_or_payload) -> tuple[SCAINets, dict]:
    """(nets in eval mode, config) from a SCAI checkpoint (``weights_only`` loading)."""
    payload = path_or_payload if isinstance(path_or_payload, dict) else load_checkpoint(path_or_payload)
    config = payload.get("config", {})
    if "scai" not in payload or config.get("method") != "scai":
        raise ValueError(f"{path_or_payload if not isinstance(path_or_payload, dict) else 'payload'}: "
                         "not a SCAI checkpoint (write one with posekit.methods.scai.train_scai)")
    nets = SCAINets.from_config(config["nets"])
    for name in ("prediction", "correction", "referee"):
        getattr(nets, name).load_state_dict(payload["scai"][name])
    return nets.eval(), config


def _paths(out) -> dict[str, Path]:
    """``out`` a folder -> out/scai.pt (+ scai_last.pt, scai_log.jsonl); ``out`` a .pt file -> next to it."""
    out = Path(out)
    if out.suffix == ".pt":
        return {"final": out, "last": out.with_name(out.stem + "_last.pt"),
                "log": out.with_name(out.stem + "_log.jsonl")}
    return {"final": out / "scai.pt", "last": out / "scai_last.pt", "log": out / "scai_log.jsonl"}


def _fingerprint(path) -> str:
    from posekit.engine.robustness import file_fingerprint
    return file_fingerprint(path)


# =====================================================================================================
# Training on labeled data
# =====================================================================================================
def train_scai(pose_checkpoint, data_spec: str, out, epochs: int = 10, *, batch_size: int = 32, lr: float = 1e-3,
               weight_decay: float = 1e-4, seed: int = 0, workers: int = 0, max_iters: int | None = None,
               augment: dict | None = None, width: int = 16, max_offset: float | None = None,
               feedback_weight: float = 0.1, tta_steps: int = 1, tta_lr: float = 1e-4, tta_weighting: str = "none",
               episodic: bool = False, resume: bool = True, skip_invalid: bool = False, device: str = "cpu",
               progress: bool = False) -> Path:
    """Train Φ, Γ and C on labeled data with the pose network frozen; returns the SCAI checkpoint path.

    ``out``: a folder (writes ``scai.pt``, ``scai_last.pt`` for resume, ``scai_log.jsonl``) or a ``.pt``
    path. The checkpoint holds the three nets' weights and ``config``: ``method`` "scai", ``nets``, ``pose``
    (``checkpoint`` path, ``fingerprint``, ``config``), ``tta`` defaults, ``train`` settings, ``history``.
    Written atomically, loadable with ``weights_only=True``. A finished run with the same settings is
    returned as is; an interrupted one resumes from its last epoch.
    """
    from torch.utils.data import DataLoader

    from posekit.codecs import HeatmapCodec, build_codec
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import AugmentConfig
    from posekit.checkpoint import build_from_checkpoint
    from posekit.engine.trainer import lr_factor, seed_everything

    if tta_weighting not in TTA_WEIGHTINGS:
        raise ValueError(f"tta_weighting must be one of {TTA_WEIGHTINGS}, got {tta_weighting!r}")
    paths = _paths(out)
    paths["final"].parent.mkdir(parents=True, exist_ok=True)
    model, pose_cfg = build_from_checkpoint(str(pose_checkpoint))
    codec = build_codec(pose_cfg["codec"])
    if not isinstance(codec, HeatmapCodec) or pose_cfg.get("head", {}).get("type", "heatmap") != "heatmap":
        raise ValueError(f"{pose_checkpoint}: SCAI needs a heatmap pose model, this one has codec "
                         f"{type(codec).__name__}")
    chains = pose_chains(pose_cfg)
    train_settings = {"data": data_spec, "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr),
                      "weight_decay": float(weight_decay), "seed": int(seed), "max_iters": max_iters,
                      "augment": dict(augment or {}), "feedback_weight": float(feedback_weight)}
    fingerprint = _fingerprint(pose_checkpoint)
    nets_cfg = SCAINets(codec.heatmap_size, codec.sigma, chains, width, max_offset).config()
    config = {"method": "scai", "nets": nets_cfg, "skeleton": pose_cfg.get("skeleton"),
              "pose": {"checkpoint": str(pose_checkpoint), "fingerprint": fingerprint, "config": pose_cfg},
              "tta": {"steps": int(tta_steps), "lr": float(tta_lr), "weighting": tta_weighting,
                      "episodic": bool(episodic)},
              "train": train_settings, "history": []}

    def same_run(cfg: dict) -> bool:
        return (cfg.get("train") == train_settings and cfg.get("nets") == nets_cfg
                and cfg.get("pose", {}).get("fingerprint") == fingerprint)

    if resume and paths["final"].exists():
        done = load_checkpoint(paths["final"])
        if same_run(done.get("config", {})):
            log.info("SCAI: %s already trained with these settings", paths["final"])
            if done["config"].get("tta") != config["tta"]:  # only the test-time defaults changed
                done["config"]["tta"] = config["tta"]
                save_checkpoint(paths["final"], done)
            return paths["final"]

    seed_everything(seed)
    dev = torch.device(device)
    nets = SCAINets.from_config(nets_cfg).to(dev)
    model.to(dev).eval().requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(nets.parameters(), lr=lr, weight_decay=weight_decay)
    start, history = 0, []
    if resume and paths["last"].exists():
        state = load_checkpoint(paths["last"])
        if same_run(state.get("config", {})):
            for name in ("prediction", "correction", "referee"):
                getattr(nets, name).load_state_dict(state["scai"][name])
            optimizer.load_state_dict(state["optimizer"])
            start, history = int(state["epoch"]), list(state["config"].get("history", []))
            log.info("SCAI: resumed from %s at epoch %d", paths["last"], start)

    samples = load_samples(data_spec, skip_invalid=skip_invalid)
    if not samples:
        raise ValueError(f"no samples in {data_spec}")
    if not any((s.keypoints[:, 2] > 0).any() for s in samples):
        raise ValueError(f"{data_spec}: SCAI's networks are trained with labels, and this data has none")
    if samples[0].keypoints.shape[0] != pose_cfg["num_keypoints"]:
        raise ValueError(f"{data_spec} has {samples[0].keypoints.shape[0]} keypoints, the pose model "
                         f"{pose_cfg['num_keypoints']}")
    dataset = TopDownDataset(samples, codec, tuple(pose_cfg["input_size"]),
                             flip_index=np.asarray(pose_cfg["flip_index"]), train=True,
                             augment=AugmentConfig(**(augment or {})), seed=seed,
                             padding=pose_cfg.get("padding", 1.25))
    steps = len(dataset) // batch_size
    if max_iters:
        steps = min(steps, int(max_iters))
    if steps < 1:
        raise ValueError(f"{len(dataset)} samples are fewer than one batch of {batch_size}")
    total, warmup = steps * epochs, min(100, max(1, steps * epochs // 10))

    for epoch in range(start, epochs):
        t0 = time.time()
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(seed * 1000003 + epoch))
        totals: dict[str, float] = {}
        fitness, true_err = [], []
        nets.train()
        n = 0
        for it, batch in enumerate(loader):
            if it >= steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(epoch * steps + it, total, warmup, 0.01)
            rows, gt = training_rows(model, codec, batch, chains, dev)
            logs = nets.losses(rows, *gt, feedback_weight=feedback_weight)
            optimizer.zero_grad(set_to_none=True)
            logs["loss"].backward()
            optimizer.step()
            n += 1
            for k, v in logs.items():
                if k not in ("fitness", "true_err", "visible"):
                    totals[k] = totals.get(k, 0.0) + float(v.detach())
            keep = logs["visible"] > 0
            fitness.append(logs["fitness"][keep].cpu().numpy())
            true_err.append(logs["true_err"][keep].cpu().numpy())
            if progress and it % 20 == 0:
                log.info("SCAI epoch %d it %d/%d loss %.4f", epoch + 1, it, steps, float(logs["loss"].detach()))
        record = {"epoch": epoch + 1, **{k: v / max(1, n) for k, v in totals.items()},
                  "feedback_corr": _correlation(np.concatenate(fitness), np.concatenate(true_err)),
                  "seconds": round(time.time() - t0, 1)}
        history.append(record)
        config["history"] = json.loads(json.dumps(history, default=float))
        save_checkpoint(paths["last"], {**scai_payload(nets, config), "optimizer": optimizer.state_dict(),
                                        "epoch": epoch + 1})
        with open(paths["log"], "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
        log.info("SCAI epoch %d: %s", epoch + 1,
                 {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()})
    config["history"] = json.loads(json.dumps(history, default=float))
    save_checkpoint(paths["final"], scai_payload(nets.cpu(), config))
    return paths["final"]


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def pose_chains(pose_cfg: dict) -> np.ndarray:
    from posekit.skeletons import SKELETONS
    name = pose_cfg.get("skeleton")
    if name not in SKELETONS:
        raise ValueError(f"SCAI needs a known skeleton for its chains, the pose model's is {name!r}")
    return chains_of(SKELETONS[name])


@torch.no_grad()
def training_rows(model, codec, batch: dict, chains, device) -> tuple[dict, tuple]:
    """A training batch -> (chain rows of the frozen pose model's heatmaps, (gt_xy, gt_vis, gt_maps) rows)."""
    images = batch["image"].to(device).contiguous(memory_format=torch.channels_last)
    heatmaps = model(images).float().cpu()
    coords, scores = codec.decode(heatmaps.numpy())
    hm_xy = torch.from_numpy(codec.input_to_heatmap(coords).astype(np.float32))
    rows = gather_chains(heatmaps, hm_xy, torch.from_numpy(scores.astype(np.float32)), chains)
    gt_xy = torch.from_numpy(codec.input_to_heatmap(batch["keypoints"][..., :2].numpy()).astype(np.float32))
    gt = gather_chains(batch["heatmaps"].float(), gt_xy, batch["weights"].float(), chains)
    rows = {k: v.to(device) for k, v in rows.items()}
    return rows, (gt["coords"].to(device), gt["scores"].to(device), gt["maps"].to(device))


# =====================================================================================================
# Evaluation and `posekit adapt --method scai`
# =====================================================================================================
def distal_summary(metrics: dict, skeleton, chains) -> dict:
    """Mean PCK of the corrected (distal) joints from ``metrics["per_joint"]``, weighted by their counts."""
    per_joint = metrics.get("per_joint") or {}
    out = {}
    for metric, count in (("pck@0.2_torso", "n_torso"), ("pck@0.05_box", "n")):
        num = den = 0.0
        for j in distal_joints(chains):
            r = per_joint.get(skeleton.keypoints[j])
            if r and r.get(count) and np.isfinite(r[metric]):
                num += r[metric] * r[count]
                den += r[count]
        out[f"distal_{metric}"] = num / den if den else float("nan")
    return out


def evaluate_modes(corrector: SCAICorrector, samples, *, modes=MODES, coco_gt=None, wrap=None) -> dict:
    """{mode: metrics} on the same samples; test-time training starts from the trained C for every mode.

    ``wrap``: optional ``f(predictor) -> predictor-like`` (e.g. corrupted images) applied around the corrector.
    """
    from posekit.engine.evaluate import evaluate_samples
    from posekit.skeletons import SKELETONS
    results, original = {}, corrector.mode
    for mode in modes:
        corrector.mode = mode
        corrector.reset()
        t0 = time.time()
        metrics = evaluate_samples(wrap(corrector) if wrap else corrector, samples, coco_gt=coco_gt)
        skeleton = SKELETONS.get(corrector.config.get("skeleton"))
        if skeleton is not None and "per_joint" in metrics:
            metrics.update(distal_summary(metrics, skeleton, corrector.chains))
        metrics["seconds"] = round(time.time() - t0, 1)
        if mode == "tta":
            metrics["tta_loss_first"] = corrector.tta.history[0] if corrector.tta.history else None
            metrics["tta_loss_last"] = corrector.tta.history[-1] if corrector.tta.history else None
        results[mode] = metrics
    corrector.reset()
    corrector.mode = original
    return results


def has_labels(samples) -> bool:
    return any((s.keypoints[:, 2] > 0).any() for s in samples)


def adapt_on(corrector: SCAICorrector, samples, *, passes: int = 1) -> int:
    """Test-time training of C over unlabeled samples (predictions discarded); returns the batches seen."""
    corrector.mode = "tta"
    before = len(corrector.tta.history)
    for _ in range(passes):
        for _ in corrector.predict_samples(samples):
            pass
    return len(corrector.tta.history) - before


_ADAPT_KEYS = {"checkpoint", "train", "modes", "adapt_passes", "workers", "max_iters", "augment", "width",
               "max_offset", "feedback_weight", "tta_steps", "tta_lr", "tta_weighting", "episodic", "weight_decay",
               "no_flip", "limit"}


def adapt_cli(args) -> int:
    """``posekit adapt --method scai``: train SCAI's networks, optionally adapt C to an unlabeled target, evaluate.

    ``args``: ``source`` (pose checkpoint), ``target`` (data spec), ``out`` (folder), ``val`` (data spec or
    None), ``epochs``, ``seed``, ``batch_size``, ``lr`` (None -> 10, 0, 32, 1e-3), optional ``workers`` and
    ``max_iters`` (SCAI training), ``scai_kwargs`` (JSON
    object or None) with any of: ``checkpoint`` (a trained SCAI checkpoint: skip training), ``train`` (labeled
    spec to train on), ``modes`` (evaluated, default ["none", "correct", "tta"]), ``adapt_passes`` (1),
    ``limit`` (first N val samples), ``no_flip``, and :func:`train_scai`'s options (``width``, ``max_offset``,
    ``feedback_weight``, ``tta_steps``, ``tta_lr``, ``tta_weighting``, ``episodic``, ``augment``,
    ``workers``, ``max_iters``, ``weight_decay``).

    SCAI's networks are trained on *labeled* data (in the paper: the pose model's own training set):

    * ``target`` has labels -> the nets are trained on ``target`` -> ``OUT/scai.pt``;
    * ``target`` has none -> they are trained on ``scai_kwargs["train"]``, else on the training spec
      recorded in the pose checkpoint (``config.train.train``); then C is adapted to the unlabeled target by
      test-time training over its images (``adapt_passes`` passes) -> ``OUT/scai_adapted.pt``.

    With ``val``: metrics of each mode on ``val`` (and ``adapted``: the target-adapted C, mode "correct")
    -> ``OUT/scai_eval.json``, printed as a table. Returns 0.
    """
    from posekit.data.formats import load_samples, parse_spec
    from posekit.inference.predictor import Predictor

    kwargs = json.loads(args.scai_kwargs) if getattr(args, "scai_kwargs", None) else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"--scai-kwargs must be a JSON object, got {kwargs!r}")
    unknown = set(kwargs) - _ADAPT_KEYS
    if unknown:
        raise ValueError(f"unknown SCAI options {sorted(unknown)}; known: {sorted(_ADAPT_KEYS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = tuple(kwargs.pop("modes", MODES))
    if any(m not in MODES for m in modes):
        raise ValueError(f"modes must be from {MODES}, got {modes}")
    passes = int(kwargs.pop("adapt_passes", 1))
    limit = kwargs.pop("limit", None)
    flip = not kwargs.pop("no_flip", False)
    given = kwargs.pop("checkpoint", None)
    train_spec = kwargs.pop("train", None)
    for key in ("workers", "max_iters"):  # the adapt command's own flags, unless --scai-kwargs sets them
        if getattr(args, key, None) is not None:
            kwargs.setdefault(key, getattr(args, key))
    target_samples = load_samples(args.target)
    labeled = has_labels(target_samples)
    report: dict = {"source": str(args.source), "target": args.target, "target_labeled": labeled}

    if given:
        scai_path = Path(given)
        report["scai_checkpoint"] = str(scai_path)
    else:
        if train_spec is None:
            if labeled:
                train_spec = args.target
            else:
                pose_cfg = load_checkpoint(args.source)["config"]
                train_spec = pose_cfg.get("train", {}).get("train")
                if not train_spec:
                    raise ValueError(f"target {args.target} has no labels and {args.source} records no training "
                                     f"data: give labeled data with --scai-kwargs '{{\"train\": \"SPEC\"}}'")
                log.info("target is unlabeled: SCAI nets trained on the pose model's training data %s", train_spec)
        scai_path = train_scai(args.source, train_spec, out, epochs=args.epochs if args.epochs is not None else 10,
                               batch_size=args.batch_size or 32, lr=args.lr or 1e-3,
                               seed=args.seed if args.seed is not None else 0, progress=True, **kwargs)
        report.update({"scai_checkpoint": str(scai_path), "trained_on": train_spec})
    predictor = Predictor.load(args.source, flip_test=flip, batch_size=args.batch_size or 32)
    corrector = SCAICorrector.wrap(predictor, scai_path, mode="correct")
    adapted_path = None
    if not labeled:  # adapt C to the unlabeled target by test-time training over its images
        t0 = time.time()
        batches = adapt_on(corrector, target_samples, passes=passes)
        nets, config = load_scai(scai_path)
        nets.correction.load_state_dict(corrector.nets.correction.state_dict())
        config = {**config, "adapted": {"target": args.target, "passes": passes, "batches": batches}}
        adapted_path = out / "scai_adapted.pt"
        save_checkpoint(adapted_path, scai_payload(nets, config))
        report["adapted"] = {"checkpoint": str(adapted_path), "batches": batches,
                             "seconds": round(time.time() - t0, 1)}
        corrector.reset()
    if getattr(args, "val", None):
        val_samples = load_samples(args.val)
        if limit:
            val_samples = val_samples[:int(limit)]
        fmt, path, _ = parse_spec(args.val)
        coco_gt = path if fmt == "coco" and not limit else None
        results = evaluate_modes(corrector, val_samples, modes=modes, coco_gt=coco_gt)
        if adapted_path is not None:
            adapted = SCAICorrector.wrap(predictor, adapted_path, mode="correct")
            results["adapted"] = evaluate_modes(adapted, val_samples, modes=("correct",), coco_gt=coco_gt)["correct"]
        report["val"] = args.val
        report["results"] = results
        print(format_results(results))
    (out / "scai_eval.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {out / 'scai_eval.json'}")
    return 0


def format_results(results: dict) -> str:
    keys = ("pck@0.2_torso", "pck@0.05_box", "distal_pck@0.2_torso", "distal_pck@0.05_box", "AP")
    keys = [k for k in keys if any(k in r for r in results.values())]
    lines = ["| SCAI | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for mode, r in results.items():
        cells = [("-" if r.get(k) is None or not math.isfinite(r[k]) else f"{100 * r[k]:.2f}") for k in keys]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
