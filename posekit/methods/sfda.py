"""Source-free domain adaptation (Peng, Zheng & Chen, "Source-free Domain Adaptive Human Pose
Estimation", ICCV 2023).

Setting. A heatmap pose network was trained on labelled *source* images (here: posekit's synthetic
people). Adaptation may use only that network and *unlabelled* target images: no source image, no
target label. (Person boxes are still given, as in every top-down setting; on LSP-style data posekit
derives them from the joints, so the boxes are the only trace of the labels the method sees.)

Models. Three networks of the source architecture, each a feature extractor G and a regressor F
(f = F ∘ G): the source model f_sr, an intermediate model f_in and a target model f_tg, all three
initialised from the source checkpoint. The split used here (``regressor`` option):

* ``"upsample_head"`` (default for SimpleBaseline / RepVGG, i.e. any model with ``trunk``, ``upsample`` and
  ``head``): G = the ResNet/RepVGG trunk, F = deconvolution upsampler + 1x1 heatmap conv. This is the
  split of the authors' code for its SimpleBaseline-style pose_resnet (F_sr's optimiser holds
  ``upsampling`` + ``head``, G_in's the ``backbone``);
* ``"head"`` (default for every other model, e.g. stacked hourglasses): G = everything before the final
  1x1 heatmap convolution (``forward_features``), F = that convolution (``heads[-1]`` of an hourglass).

Every adaptation iteration, on a batch x of augmented target crops:

1. Source protection (step A). G_sr is frozen (weights and BatchNorm statistics: eval mode), so f_sr
   keeps the source's view of the target images.
       L_ft  = MSE(f_sr(x), f_in(x))
       L_res = KL( softmax(H̃_sr / τ) || softmax(H̃_in / τ) ),
   where H̃ is a heatmap with its most confident pixel removed (the peaks of both maps are removed from
   both, so the two distributions share one support): the peak says *where* the joint is, the rest of
   the map holds the source's "dark knowledge" (its uncertainty, the other candidate locations), which
   the intermediate model must keep. F_sr descends L_ft (the source regressor follows the intermediate
   features); G_in descends L_ft + α L_res (α = 0.7). F_in is not trained in this step.
   *What the fine-tune loss is.* The authors' code (``train_sfda.py``) computes
   ``loss_ft = JointsMSELoss(model_sr(x), model_in(x))`` on the very same target crop: the source model's
   heatmaps are soft pseudo-labels for the intermediate model and vice versa; no labels, no second view
   and no confidence threshold. That is what is implemented (heatmap MSE, mean over N, K, h, w).
   Optimisers as in the code's Adam setting: the F_sr learning rate equals the target model's, G_in's is
   ten times smaller (``intermediate_lr_ratio``); both follow the trainer's warm-up/cosine schedule
   (AdamW with the trainer's weight decay, posekit's optimiser).
2. Target relevance (step B). A heatmap H_k (h x w) becomes two vectors in a *spatial probability
   space*: horizontal p^x_k = softmax(Σ_rows H_k / t) (length w) and vertical p^y_k = softmax(Σ_cols H_k / t)
   (length h), t = ``projection_temperature``. Sparse heatmaps (one small blob in h·w pixels) turn
   into dense 1-D distributions on which contrastive and entropy objectives are meaningful.
   * L_con, pose-specific contrastive learning between the target model (anchors) and the intermediate
     model (candidates) on the same crop: joint k of f_tg is pulled to joint k of f_in and pushed from
     the other joints j ≠ k of the same person, with similarity
     s_kj = ½ (cos(p^x_k(tg), p^x_j(in)) + cos(p^y_k(tg), p^y_j(in))) and
     L_con = -mean_k log(s_kk / Σ_j s_kj) (the authors' ratio of similarities; ``contrast_temperature``
     switches to the InfoNCE form -log softmax_j(s_kj / T)_k).
   * L_im, information maximisation on the target model's vectors: every prediction confident (low
     entropy), the predictions diverse over the batch (high entropy of the batch mean):
     L_im = mean_{n,k} H(p_nk) - mean_k H(mean_n p_nk), both axes averaged, entropies divided by log(length).
   * L_cst, consistency: a second view x' = A(x) of every crop (a known random affine A: rotation, scale,
     shift, horizontal flip, plus brightness/contrast jitter, applied with torch to the crop batch); the
     target model's heatmaps of x' are warped back by A⁻¹ into x's frame (and left/right joints swapped
     for mirrored views) and compared with its heatmaps of x (MSE over the pixels both views see).
     ``consistency_reference="intermediate"`` compares against f_in(x) instead (mean-teacher style).
   L_tg = L_con + β L_cst + γ L_im (β = 0.5, γ = 0.85) trains f_tg by back-propagation (the trainer's
   optimiser and schedule), then f_in ← m f_in + (1 - m) f_tg (EMA, m = 0.999; floating BatchNorm
   buffers too).
3. Inference uses f_in: the trainer's ``model`` *is* f_in, so ``model.pt`` / ``best.pt`` are plain pose
   checkpoints of it, and ``last.pt`` carries the rest (:meth:`SFDA.state_dict`: f_sr, f_tg, both
   step-A optimisers, the iteration counter) for exact resume.

Departures from the released code, and why:

* The code's ``L_tg`` is ``MSE(f_in(x), f_tg(x)) + 0.5 · contrastive + 0.85 · IM``: its unit-weight
  term is a same-view MSE to the intermediate model, and β weighs the contrastive term. The paper's
  description (and this task's spec) has the consistency between two augmented views weighted by β and
  the contrastive term at weight 1; implemented as specified. Note the scales: the heatmap-MSE terms
  (L_ft, L_cst) are ~1e-3 while L_con and L_im are O(1), as in the authors' code.
* Its loss classes do not run as published (``super()`` calls name other classes, tuple-unpacking of
  ``mean``), its residual mask indexes across the whole batch, its contrastive denominator sums over the
  batch, and the information-maximisation entropies are divided by h·w rather than log(length); the
  formulas above are implemented instead. The residual KL is KL(p_sr || p_in), the source's residual
  distribution as the reference (the distillation direction; the code's argument order would give
  KL(p_in || p_sr)), and τ defaults to 1, the code's implicit value.
* The code's occlusion augmentation of the student view (from UniFrame) is not part of the method
  section and is left out.

Randomness of the second view comes from (seed, iteration) only, never from global state, so a resumed
run replays the same views. For ablations every term has a weight: ``finetune_weight`` (L_ft, 1),
``alpha`` (L_res), ``contrast_weight`` (L_con, 1), ``beta`` (L_cst), ``gamma`` (L_im); a weight of 0 skips
that term's computation.
"""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.data.transforms import crop_matrix, invert_affine

log = logging.getLogger(__name__)

REGRESSORS = ("auto", "head", "upsample_head")
CONSISTENCY_REFERENCES = ("target", "intermediate")


# -- input checks ----------------------------------------------------------------------------------
def _check_tensor(name: str, value, ndim: int, shape_text: str) -> torch.Tensor:
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor {shape_text}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be {shape_text}, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


def _check_same_shape(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} must have the same shape")


def _check_positive(name: str, value) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def _check_pair(name: str, pair) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise TypeError(f"{name} must be a pair (horizontal (N, K, w), vertical (N, K, h)) of probability vectors")
    px = _check_tensor(f"{name}[0]", pair[0], 3, "(N, K, w)")
    py = _check_tensor(f"{name}[1]", pair[1], 3, "(N, K, h)")
    if px.shape[:2] != py.shape[:2]:
        raise ValueError(f"{name}: horizontal {tuple(px.shape)} and vertical {tuple(py.shape)} disagree on (N, K)")
    return px, py


# -- step A: source protection ---------------------------------------------------------------------
def finetune_loss(source: torch.Tensor, intermediate: torch.Tensor) -> torch.Tensor:
    """L_ft: heatmap MSE between the source and intermediate models' heatmaps of the same crops.

    source, intermediate: (N, K, h, w). Returns a scalar, the mean over N, K, h, w of the squared difference.
    Gradients reach both arguments (F_sr and G_in both learn from it).
    """
    _check_tensor("source", source, 4, "(N, K, h, w)")
    _check_tensor("intermediate", intermediate, 4, "(N, K, h, w)")
    _check_same_shape("source", source, "intermediate", intermediate)
    return torch.mean((source - intermediate) ** 2)


def residual_kl_loss(source: torch.Tensor, intermediate: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """L_res: KL(p_sr || p_in) of the heatmaps' *residual* distributions, mean over N and K.

    source, intermediate: (N, K, h, w) heatmaps (h·w >= 3). For every (n, k) the most confident pixel of
    each map is removed from both maps (one or two pixels), and p = softmax(heatmap / tau) over the
    remaining pixels. Identical maps give 0; the value of the peak pixel never matters. Returns a scalar.
    """
    _check_tensor("source", source, 4, "(N, K, h, w)")
    _check_tensor("intermediate", intermediate, 4, "(N, K, h, w)")
    _check_same_shape("source", source, "intermediate", intermediate)
    tau = _check_positive("tau", tau)
    if source.shape[2] * source.shape[3] < 3:
        raise ValueError(f"heatmaps need at least 3 pixels to leave a residual, got {tuple(source.shape[2:])}")
    s = source.flatten(2) / tau
    i = intermediate.flatten(2) / tau
    keep = torch.ones_like(s, dtype=torch.bool)
    keep.scatter_(2, s.detach().argmax(dim=2, keepdim=True), False)
    keep.scatter_(2, i.detach().argmax(dim=2, keepdim=True), False)
    log_ps = torch.where(keep, F.log_softmax(s.masked_fill(~keep, float("-inf")), dim=2), 0.0)
    log_pi = torch.where(keep, F.log_softmax(i.masked_fill(~keep, float("-inf")), dim=2), 0.0)
    ps = torch.where(keep, log_ps.exp(), 0.0)
    return (ps * (log_ps - log_pi)).sum(dim=2).mean()


# -- step B: target relevance ----------------------------------------------------------------------
def project_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (N, K, h, w) -> (horizontal (N, K, w) = sum over the rows, vertical (N, K, h) = sum over the
    columns). A one-hot heatmap gives one-hot vectors at its column and row."""
    _check_tensor("heatmaps", heatmaps, 4, "(N, K, h, w)")
    return heatmaps.sum(dim=2), heatmaps.sum(dim=3)


def spatial_probabilities(heatmaps: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The spatial probability space: softmax of :func:`project_heatmaps` / temperature along each vector.

    heatmaps (N, K, h, w) -> (p^x (N, K, w), p^y (N, K, h)), each vector summing to 1.
    """
    temperature = _check_positive("temperature", temperature)
    px, py = project_heatmaps(heatmaps)
    return F.softmax(px / temperature, dim=-1), F.softmax(py / temperature, dim=-1)


def joint_similarity(anchor, candidates, eps: float = 1e-8) -> torch.Tensor:
    """s (N, K, K): s[n, k, j] = ½ (cos(anchor^x_nk, candidates^x_nj) + cos(anchor^y_nk, candidates^y_nj)).

    anchor, candidates: pairs (horizontal (N, K, w), vertical (N, K, h)) of vectors of one shape.
    """
    ax, ay = _check_pair("anchor", anchor)
    cx, cy = _check_pair("candidates", candidates)
    _check_same_shape("anchor[0]", ax, "candidates[0]", cx)
    _check_same_shape("anchor[1]", ay, "candidates[1]", cy)

    def cosine(a, b):
        a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
        b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
        return a @ b.transpose(1, 2)

    return 0.5 * (cosine(ax, cx) + cosine(ay, cy))


def pose_contrastive_loss(anchor, candidates, temperature: float | None = None, eps: float = 1e-8) -> torch.Tensor:
    """L_con: pose-specific contrastive loss. Joint k of ``anchor`` (the target model) is the positive of
    joint k of ``candidates`` (the intermediate model) and the other joints of the same person are its
    negatives.

    anchor, candidates: pairs (horizontal (N, K, w), vertical (N, K, h)) of probability vectors, K >= 2.
    temperature None: -mean_{n,k} log(s_kk / Σ_j s_kj) with s from :func:`joint_similarity` (non-negative for
    probability vectors); a float T: InfoNCE, -mean log softmax_j(s_kj / T)[k]. Returns a scalar.
    """
    sim = joint_similarity(anchor, candidates, eps)
    k = sim.shape[1]
    if k < 2:
        raise ValueError("the contrastive loss needs at least 2 joints (the others are the negatives)")
    if temperature is None:
        positive = torch.diagonal(sim, dim1=1, dim2=2)
        return -(torch.log(positive.clamp_min(eps)) - torch.log(sim.sum(dim=2).clamp_min(eps))).mean()
    temperature = _check_positive("contrast_temperature", temperature)
    logits = (sim / temperature).flatten(0, 1)
    target = torch.arange(k, device=sim.device).repeat(sim.shape[0])
    return F.cross_entropy(logits, target)


def information_maximization_loss(probabilities, normalize: bool = True, eps: float = 1e-12) -> torch.Tensor:
    """L_im = mean_{n,k} H(p_nk) - mean_k H(mean_n p_nk): confident per sample, diverse over the batch.

    probabilities: one tensor (N, K, L) of probability vectors (non-negative, summing to 1 over L), or a pair
    (horizontal (N, K, w), vertical (N, K, h)) whose two values are averaged. ``normalize`` divides every
    entropy by log(L), so each part lies in [0, 1] and the loss in [-1, 1]. Returns a scalar.
    """
    if isinstance(probabilities, (tuple, list)):
        parts = _check_pair("probabilities", probabilities)
        return sum(information_maximization_loss(p, normalize, eps) for p in parts) / 2
    p = _check_tensor("probabilities", probabilities, 3, "(N, K, L)")
    length = p.shape[-1]
    if length < 2:
        raise ValueError(f"probability vectors need at least 2 entries, got {length}")
    with torch.no_grad():
        if (p < -1e-6).any() or not torch.allclose(p.sum(dim=-1), torch.ones((), dtype=p.dtype), atol=1e-3):
            raise ValueError("probabilities must be non-negative and sum to 1 along the last dimension")

    def entropy(q):
        return -(q * torch.log(q.clamp_min(eps))).sum(dim=-1)

    value = entropy(p).mean() - entropy(p.mean(dim=0)).mean()
    return value / math.log(length) if normalize else value


def consistency_loss(reference: torch.Tensor, other: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_cst: MSE between two heatmap predictions of the same crops in one frame, over the valid pixels.

    reference, other: (N, K, h, w); valid: None (all pixels) or (N, 1, h, w) / (N, K, h, w) bool or {0, 1}
    (the pixels the second view saw). Returns a scalar (0 when no pixel is valid).
    """
    _check_tensor("reference", reference, 4, "(N, K, h, w)")
    _check_tensor("other", other, 4, "(N, K, h, w)")
    _check_same_shape("reference", reference, "other", other)
    squared = (reference - other) ** 2
    if valid is None:
        return squared.mean()
    if not torch.is_tensor(valid) or valid.dim() != 4 or valid.shape[0] != reference.shape[0] \
            or valid.shape[1] not in (1, reference.shape[1]) or valid.shape[2:] != reference.shape[2:]:
        raise ValueError(f"valid must be (N, 1, h, w) or (N, K, h, w) matching {tuple(reference.shape)}, "
                         f"got {tuple(valid.shape) if torch.is_tensor(valid) else type(valid).__name__}")
    weight = valid.to(squared.dtype).expand_as(squared)
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 - decay) · student, for every parameter and floating-point buffer
    (BatchNorm running statistics); integer buffers (``num_batches_tracked``) are copied. In place."""
    decay = float(decay)
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    if t_state.keys() != s_state.keys():
        raise ValueError("teacher and student must have the same architecture (state dict keys differ)")
    for name, t in t_state.items():
        s = s_state[name]
        if t.shape != s.shape:
            raise ValueError(f"{name}: teacher {tuple(t.shape)} vs student {tuple(s.shape)}")
        if t.is_floating_point():
            t.mul_(decay).add_(s.detach().to(t.dtype), alpha=1.0 - decay)
        else:
            t.copy_(s)


# -- second view: a known affine of the crop batch ---------------------------------------------------
def sample_view_transforms(rng: np.random.Generator, n: int, input_size: tuple[int, int], *, rotation: float = 30.0,
                           scale: float = 0.25, shift: float = 0.05, flip_prob: float = 0.5
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Random affine maps from the first view's crop pixels to the second view's.

    Each is :func:`posekit.data.transforms.crop_matrix` of a region of the crop: zoom s ∈ [1 - scale,
    1 + scale] (the region is ``input_size / s``), centre shifted by up to ``shift`` x the crop size, rotated
    by up to ± ``rotation`` degrees, mirrored with probability ``flip_prob``.
    Returns matrices (n, 2, 3) float64 and flipped (n,) bool.
    """
    w, h = int(input_size[0]), int(input_size[1])
    if n < 1 or w < 2 or h < 2:
        raise ValueError(f"need n >= 1 and an input of at least 2x2 pixels, got n={n}, input_size={input_size}")
    if not (0 <= scale < 1 and rotation >= 0 and shift >= 0 and 0 <= flip_prob <= 1):
        raise ValueError(f"need 0 <= scale < 1, rotation >= 0, shift >= 0, 0 <= flip_prob <= 1; got "
                         f"scale={scale}, rotation={rotation}, shift={shift}, flip_prob={flip_prob}")
    matrices, flipped = np.zeros((n, 2, 3)), np.zeros(n, dtype=bool)
    for i in range(n):
        zoom = rng.uniform(1 - scale, 1 + scale)
        angle = rng.uniform(-rotation, rotation)
        offset = rng.uniform(-shift, shift, size=2) * np.array([w, h])
        flipped[i] = rng.random() < flip_prob
        center = np.array([(w - 1) / 2, (h - 1) / 2]) + offset
        matrices[i] = crop_matrix(center, np.array([w / zoom, h / zoom]), (w, h), angle, bool(flipped[i]))
    return matrices, flipped


def _theta(matrices: torch.Tensor, in_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """affine_grid's theta (N, 2, 3) for pixel matrices mapping OUTPUT pixels to INPUT pixels (align_corners)."""
    (wi, hi), (wo, ho) = in_size, out_size
    to_norm = matrices.new_tensor([[2 / (wi - 1), 0, -1], [0, 2 / (hi - 1), -1], [0, 0, 1]])
    from_norm = matrices.new_tensor([[(wo - 1) / 2, 0, (wo - 1) / 2], [0, (ho - 1) / 2, (ho - 1) / 2], [0, 0, 1]])
    full = torch.cat([matrices, matrices.new_tensor([0, 0, 1]).expand(len(matrices), 1, 3)], dim=1)
    return (to_norm @ full @ from_norm)[:, :2]


def warp(tensor: torch.Tensor, out_to_in: torch.Tensor, out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``tensor`` (N, C, H, W): output pixel p takes the (bilinear) value at ``out_to_in[n] @ p`` of
    the input. out_to_in: (N, 2, 3) pixel matrices (pixel centres at integers). Returns the warped tensor
    (N, C, out_h, out_w) (zero outside the input) and valid (N, 1, out_h, out_w) bool: inside the input."""
    _check_tensor("tensor", tensor, 4, "(N, C, H, W)")
    if out_to_in.shape != (tensor.shape[0], 2, 3):
        raise ValueError(f"out_to_in must be ({tensor.shape[0]}, 2, 3), got {tuple(out_to_in.shape)}")
    n, c, h, w = tensor.shape
    wo, ho = int(out_size[0]), int(out_size[1])
    if min(w, h, wo, ho) < 2:
        raise ValueError("warp needs inputs and outputs of at least 2x2 pixels")
    theta = _theta(out_to_in.to(torch.float64), (w, h), (wo, ho)).to(tensor.dtype)
    grid = F.affine_grid(theta, [n, c, ho, wo], align_corners=True)
    out = F.grid_sample(tensor, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    valid = (grid.abs() <= 1 + 1e-5).all(dim=-1).unsqueeze(1)
    return out, valid


def heatmap_matrices(matrices: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Input-pixel affine maps (N, 2, 3) -> the same maps between heatmap pixels, x_hm = x_in * scale."""
    s = np.diag([scale[0], scale[1], 1.0])
    s_inv = np.diag([1 / scale[0], 1 / scale[1], 1.0])
    full = np.concatenate([matrices, np.tile([[[0.0, 0.0, 1.0]]], (len(matrices), 1, 1))], axis=1)
    return (s @ full @ s_inv)[:, :2]


def map_to_reference(heatmaps: torch.Tensor, matrices: np.ndarray, flipped: np.ndarray, flip_index,
                     scale: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (N, K, h, w) predicted on the second view -> the first view's frame.

    matrices (N, 2, 3): first-view input pixels -> second-view input pixels (as from
    :func:`sample_view_transforms`); flipped (N,): mirrored views, whose joint k is the original's joint
    ``flip_index[k]``; scale: heatmap pixels per input pixel (x, y). Returns (heatmaps (N, K, h, w), valid
    (N, 1, h, w) bool: first-view pixels the second view saw)."""
    _check_tensor("heatmaps", heatmaps, 4, "(N, K, h, w)")
    n, k, h, w = heatmaps.shape
    matrices = np.asarray(matrices, dtype=np.float64)
    flipped = np.asarray(flipped, dtype=bool)
    if matrices.shape != (n, 2, 3) or flipped.shape != (n,):
        raise ValueError(f"matrices must be ({n}, 2, 3) and flipped ({n},), got {matrices.shape}, {flipped.shape}")
    flip_index = torch.as_tensor(np.asarray(flip_index), dtype=torch.long, device=heatmaps.device)
    if flip_index.shape != (k,) or sorted(flip_index.tolist()) != list(range(k)):
        raise ValueError(f"flip_index must be a permutation of the {k} joints, got {flip_index.tolist()}")
    hm = torch.from_numpy(heatmap_matrices(matrices, scale)).to(heatmaps.device)
    back, valid = warp(heatmaps, hm, (w, h))  # first-view heatmap pixel p samples the second view at hm @ p
    if flipped.any():
        rows = torch.from_numpy(flipped).to(heatmaps.device)
        back = torch.where(rows[:, None, None, None], back[:, flip_index], back)
    return back, valid


# -- model split: G (features) and F (regressor) ---------------------------------------------------
def _final_head(model: nn.Module) -> nn.Module:
    heads = getattr(model, "heads", None)
    if isinstance(heads, nn.ModuleList) and len(heads):
        return heads[-1]
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module) and hasattr(model, "forward_features"):
        return head
    raise ValueError(f"{type(model).__name__} has no final heatmap head (`head` or `heads`) on top of "
                     "forward_features(): sfda needs a posekit heatmap model")


def _has_upsampler(model: nn.Module) -> bool:
    return all(isinstance(getattr(model, name, None), nn.Module) for name in ("trunk", "upsample", "head")) \
        and not isinstance(getattr(model, "heads", None), nn.ModuleList)


def resolve_regressor(model: nn.Module, regressor: str = "auto") -> str:
    """'auto' -> 'upsample_head' for trunk + upsampler models (SimpleBaseline, RepVGG), else 'head'."""
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
    _final_head(model)
    if regressor == "auto":
        return "upsample_head" if _has_upsampler(model) else "head"
    if regressor == "upsample_head" and not _has_upsampler(model):
        raise ValueError(f"regressor 'upsample_head' needs a model with trunk, upsample and head "
                         f"(SimpleBaseline, RepVGG); {type(model).__name__} has not: use 'head'")
    return regressor


def regressor_modules(model: nn.Module, regressor: str) -> list[nn.Module]:
    """F's modules: [upsample, head] or [final head]."""
    return [model.upsample, model.head] if regressor == "upsample_head" else [_final_head(model)]


def extract_features(model: nn.Module, x: torch.Tensor, regressor: str) -> torch.Tensor:
    """G(x): the trunk's output ('upsample_head') or forward_features ('head')."""
    if regressor == "upsample_head":
        model.check_input(x)
        return model.trunk(x)
    return model.forward_features(x)


def regress(model: nn.Module, features: torch.Tensor, regressor: str) -> torch.Tensor:
    """F(features) -> heatmaps; ``regress(m, extract_features(m, x, r), r) == m(x)``."""
    for module in regressor_modules(model, regressor):
        features = module(features)
    return features


# -- the method ------------------------------------------------------------------------------------
class SFDA:
    """Trainer method: ``model`` is f_in (what the trainer saves and validates); f_tg is what the trainer's
    optimiser trains (:meth:`trainable_modules`); f_sr and both step-A optimisers live here."""

    name = "sfda"

    def __init__(self, model: nn.Module, *, source: str | None = None, alpha: float = 0.7, beta: float = 0.5,
                 gamma: float = 0.85, ema: float = 0.999, tau: float = 1.0, finetune_weight: float = 1.0,
                 contrast_weight: float = 1.0, projection_temperature: float = 1.0,
                 contrast_temperature: float | None = None, regressor: str = "auto", source_lr: float | None = None,
                 intermediate_lr_ratio: float = 0.1, consistency_reference: str = "target",
                 view_rotation: float = 30.0, view_scale: float = 0.25, view_shift: float = 0.05,
                 view_flip: float = 0.5, view_color: float = 0.2, flip_index=None, seed: int | None = None,
                 lr: float | None = None, weight_decay: float | None = None, device="cpu", trainer=None):
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("finetune_weight", finetune_weight),
                            ("contrast_weight", contrast_weight)):
            if not (math.isfinite(float(value)) and value >= 0):
                raise ValueError(f"{name} must be a non-negative weight, got {value!r}")
        if contrast_weight == 0 and beta == 0 and gamma == 0:
            raise ValueError("contrast_weight, beta and gamma are all 0: the target model would learn nothing")
        if not 0.0 <= float(ema) <= 1.0:
            raise ValueError(f"ema must be in [0, 1], got {ema!r}")
        _check_positive("tau", tau)
        _check_positive("projection_temperature", projection_temperature)
        if contrast_temperature is not None:
            _check_positive("contrast_temperature", contrast_temperature)
        if consistency_reference not in CONSISTENCY_REFERENCES:
            raise ValueError(f"consistency_reference must be one of {CONSISTENCY_REFERENCES}, got "
                             f"{consistency_reference!r}")
        if not 0 <= view_color < 1:
            raise ValueError(f"view_color must be in [0, 1), got {view_color!r}")
        _check_positive("intermediate_lr_ratio", intermediate_lr_ratio)
        sample_view_transforms(np.random.default_rng(0), 1, (4, 4), rotation=view_rotation, scale=view_scale,
                               shift=view_shift, flip_prob=view_flip)  # validates the view options
        self.alpha, self.beta, self.gamma, self.ema = float(alpha), float(beta), float(gamma), float(ema)
        self.finetune_weight, self.contrast_weight = float(finetune_weight), float(contrast_weight)
        self.tau, self.projection_temperature = float(tau), float(projection_temperature)
        self.contrast_temperature = contrast_temperature
        self.consistency_reference = consistency_reference
        self.view = dict(rotation=float(view_rotation), scale=float(view_scale), shift=float(view_shift),
                         flip_prob=float(view_flip))
        self.view_color = float(view_color)
        self.trainer = trainer
        self.unbiased = False
        if trainer is not None:
            cfg = trainer.cfg
            if getattr(trainer, "world", 1) > 1:
                raise ValueError("sfda runs in one process: its three networks are not wrapped for DDP")
            if cfg.head != "heatmap":
                raise ValueError(f"sfda adapts heatmap models; head {cfg.head!r} is not supported")
            source = source or cfg.init
            if not source:
                raise ValueError("sfda adapts a trained source model: give method_kwargs.source (or init) = CKPT")
            # Source-free, label-free: the target labels are withheld before the dataset sees the samples.
            for sample in trainer.train_samples:
                sample.keypoints = np.zeros_like(sample.keypoints)
            flip_index = trainer.flip_index if flip_index is None else flip_index
            self.unbiased = bool(getattr(trainer.codec, "unbiased", False))
            lr = cfg.lr if lr is None else lr
            weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
            seed = cfg.seed if seed is None else seed
        self.lr = float(1e-4 if lr is None else lr)
        self.seed = int(0 if seed is None else seed)
        self.flip_index = None if flip_index is None else [int(i) for i in flip_index]
        self.device = torch.device(device)

        self.model = model  # f_in: the inference model
        if source:
            self.load_source(source)
        self.regressor = resolve_regressor(model, regressor)
        self.source_model = copy.deepcopy(model)
        self.target_model = copy.deepcopy(model)
        # f_sr: G frozen, F trained by step A. f_in: G trained by step A, F only by the EMA.
        self.source_model.requires_grad_(False)
        source_head = [p for m in regressor_modules(self.source_model, self.regressor) for p in m.parameters()]
        for p in source_head:
            p.requires_grad_(True)
        for m in regressor_modules(self.model, self.regressor):
            m.requires_grad_(False)
        head_ids = {id(p) for m in regressor_modules(self.model, self.regressor) for p in m.parameters()}
        features = [p for p in self.model.parameters() if id(p) not in head_ids]
        weight_decay = 1e-4 if weight_decay is None else float(weight_decay)
        self.source_lr = float(self.lr if source_lr is None else source_lr)
        self.intermediate_lr = self.lr * float(intermediate_lr_ratio)
        self.source_optimizer = torch.optim.AdamW(source_head, lr=self.source_lr, weight_decay=weight_decay)
        self.intermediate_optimizer = torch.optim.AdamW(features, lr=self.intermediate_lr, weight_decay=weight_decay)
        self.iteration = 0
        self.skipped_source_steps = 0

    # -- setup -------------------------------------------------------------------------------------
    def load_source(self, path) -> None:
        """Load the source checkpoint into ``self.model`` (all of it: the three networks start from it)."""
        from posekit.checkpoint import load_checkpoint
        payload = load_checkpoint(path)
        if "model" not in payload or "config" not in payload:
            raise ValueError(f"source {path}: not a posekit checkpoint (no 'model' / 'config')")
        config = payload["config"]
        if self.trainer is not None:
            check_source_compatible(config, self.trainer.model_config(), path)
        weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as err:
            raise ValueError(f"source {path} does not fit the adapted network: {str(err).splitlines()[0]}") from None

    def trainable_modules(self) -> list[nn.Module]:
        """What the trainer's optimiser trains: the target model f_tg."""
        return [self.target_model]

    def deploy_model(self) -> nn.Module:
        """The inference model f_in."""
        return self.model

    # -- one iteration -----------------------------------------------------------------------------
    def lr_factor(self) -> float:
        """The trainer's current schedule factor (warm-up / cosine), applied to step A's optimisers too."""
        if self.trainer is None:
            return 1.0
        base = self.trainer.cfg.lr
        return self.trainer.optimizer.param_groups[0]["lr"] / base if base else 0.0

    def source_protection_step(self, images: torch.Tensor) -> dict:
        """Step A: F_sr on w_ft L_ft, G_in on w_ft L_ft + α L_res. Returns detached logs."""
        if self.finetune_weight == 0 and self.alpha == 0:
            zero = images.new_zeros(())
            return {"loss_ft": zero, "loss_res": zero}
        factor = self.lr_factor()
        for group in self.source_optimizer.param_groups:
            group["lr"] = self.source_lr * factor
        for group in self.intermediate_optimizer.param_groups:
            group["lr"] = self.intermediate_lr * factor
        self.source_model.eval()
        for m in regressor_modules(self.source_model, self.regressor):
            m.train()
        self.model.train()
        buffers = [(b, b.detach().clone()) for m in (self.source_model, self.model) for b in m.buffers()]
        with torch.no_grad():
            features = extract_features(self.source_model, images, self.regressor)
        source_maps = regress(self.source_model, features, self.regressor)
        intermediate_maps = self.model(images)
        loss_ft = finetune_loss(source_maps, intermediate_maps)
        loss_res = residual_kl_loss(source_maps.detach(), intermediate_maps, self.tau) if self.alpha > 0 \
            else intermediate_maps.new_zeros(())
        total = self.finetune_weight * loss_ft + self.alpha * loss_res
        self.source_optimizer.zero_grad(set_to_none=True)
        self.intermediate_optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for opt in (self.source_optimizer, self.intermediate_optimizer)
                  for g in opt.param_groups for p in g["params"] if p.grad is not None]
        finite = bool(torch.isfinite(total)) and all(bool(torch.isfinite(p.grad).all()) for p in params)
        if finite:
            self.source_optimizer.step()
            self.intermediate_optimizer.step()
        else:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
            self.source_optimizer.zero_grad(set_to_none=True)
            self.intermediate_optimizer.zero_grad(set_to_none=True)
            policy = getattr(getattr(self.trainer, "cfg", None), "nan_policy", "raise")
            if policy != "skip":
                raise FloatingPointError(f"sfda step A (iteration {self.iteration}): non-finite loss or gradient "
                                         f"(L_ft {float(loss_ft):.4g}, L_res {float(loss_res):.4g})")
            self.skipped_source_steps += 1
            log.warning("sfda: skipped step A at iteration %d (non-finite)", self.iteration)
        self.source_optimizer.zero_grad(set_to_none=True)
        self.intermediate_optimizer.zero_grad(set_to_none=True)
        return {"loss_ft": loss_ft.detach(), "loss_res": loss_res.detach()}

    def second_view(self, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """x' = A(x) for the crop batch: (view (N, 3, H, W), matrices (N, 2, 3) x -> x' pixels, flipped (N,))."""
        n, _, h, w = images.shape
        rng = np.random.default_rng([self.seed % 2**32, self.iteration])
        matrices, flipped = sample_view_transforms(rng, n, (w, h), **self.view)
        inverse = torch.from_numpy(np.stack([invert_affine(m) for m in matrices]))
        view, _ = warp(images.contiguous(), inverse.to(images.device), (w, h))
        if self.view_color > 0:
            a = self.view_color
            contrast = torch.from_numpy(rng.uniform(1 - a, 1 + a, n)).to(view)
            brightness = torch.from_numpy(rng.uniform(-a, a, n)).to(view)
            view = view * contrast[:, None, None, None] + brightness[:, None, None, None]
        return view.contiguous(memory_format=torch.channels_last), matrices, flipped

    def heatmap_scale(self, images: torch.Tensor, heatmaps: torch.Tensor) -> tuple[float, float]:
        (h_in, w_in), (h, w) = images.shape[2:], heatmaps.shape[2:]
        if self.unbiased:
            return (w - 1) / (w_in - 1), (h - 1) / (h_in - 1)
        return w / w_in, h / h_in

    def training_step(self, batch: dict) -> dict:
        """batch['image'] (N, 3, H, W): unlabelled target crops -> {'loss': L_tg (trains f_tg), logs}."""
        images = batch["image"]
        logs = self.source_protection_step(images)

        # Step B: target relevance.
        n = images.shape[0]
        want_view = self.beta > 0
        if want_view:
            view, matrices, flipped = self.second_view(images)
            both = self.target_model(torch.cat([images, view.to(images.dtype)]))
            target_maps, view_maps = both[:n], both[n:]
        else:
            target_maps = self.target_model(images)
        zero = target_maps.new_zeros(())
        intermediate_maps = None
        if self.contrast_weight > 0 or (want_view and self.consistency_reference == "intermediate"):
            with torch.no_grad():
                self.model.eval()
                intermediate_maps = self.model(images)
                self.model.train()
        target_probs = spatial_probabilities(target_maps, self.projection_temperature)
        loss_con = zero
        if self.contrast_weight > 0:
            loss_con = pose_contrastive_loss(target_probs,
                                             spatial_probabilities(intermediate_maps, self.projection_temperature),
                                             self.contrast_temperature)
        loss_im = information_maximization_loss(target_probs) if self.gamma > 0 else zero
        loss_cst = zero
        if want_view:
            flip_index = self.flip_index if self.flip_index is not None else list(range(target_maps.shape[1]))
            back, valid = map_to_reference(view_maps, matrices, flipped, flip_index,
                                           self.heatmap_scale(images, target_maps))
            reference = target_maps if self.consistency_reference == "target" else intermediate_maps
            loss_cst = consistency_loss(reference, back, valid)
        loss = self.contrast_weight * loss_con + self.beta * loss_cst + self.gamma * loss_im
        self.iteration += 1
        return {"loss": loss, **logs, "loss_con": loss_con.detach(), "loss_cst": loss_cst.detach(),
                "loss_im": loss_im.detach()}

    def after_step(self) -> None:
        """f_in ← EMA of f_tg (called by the trainer after its optimiser step)."""
        ema_update(self.model, self.target_model, self.ema)

    # -- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything but f_in (the trainer's ``model``) needed for exact resume."""
        return {"source_model": self.source_model.state_dict(), "target_model": self.target_model.state_dict(),
                "source_optimizer": self.source_optimizer.state_dict(),
                "intermediate_optimizer": self.intermediate_optimizer.state_dict(),
                "iteration": self.iteration, "skipped_source_steps": self.skipped_source_steps}

    def load_state_dict(self, state: dict) -> None:
        self.source_model.load_state_dict(state["source_model"])
        self.target_model.load_state_dict(state["target_model"])
        self.source_optimizer.load_state_dict(state["source_optimizer"])
        self.intermediate_optimizer.load_state_dict(state["intermediate_optimizer"])
        self.iteration = int(state["iteration"])
        self.skipped_source_steps = int(state.get("skipped_source_steps", 0))


def check_source_compatible(source_cfg: dict, adapted_cfg: dict, path) -> None:
    """The adapted network must be the source's: same model and kwargs, input size, joints, heatmap size, head."""
    if source_cfg.get("head", {"type": "heatmap"}).get("type", "heatmap") != "heatmap":
        raise ValueError(f"source {path}: sfda adapts heatmap models, this one has head {source_cfg['head']}")
    checks = {"model": (source_cfg.get("model"), adapted_cfg.get("model")),
              "input_size": (list(source_cfg.get("input_size", [])), list(adapted_cfg.get("input_size", []))),
              "num_keypoints": (source_cfg.get("num_keypoints"), adapted_cfg.get("num_keypoints")),
              "heatmap_size": (source_cfg.get("codec", {}).get("heatmap_size"),
                               adapted_cfg.get("codec", {}).get("heatmap_size"))}
    for key, (theirs, ours) in checks.items():
        if theirs != ours:
            raise ValueError(f"source {path}: {key} {theirs} differs from the adapted network's {ours} "
                             "(adapt with the source's model, input size and keypoint set)")
