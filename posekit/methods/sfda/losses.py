"""SFDA's losses (Peng, Zheng & Chen, ICCV 2023; see :mod:`posekit.methods.sfda` for the method):
step A's fine-tune and residual losses, the spatial probability space, and step B's contrastive,
information-maximisation and consistency losses. Every function checks its inputs and says what it expects.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from posekit.training.checks import check_tensor

__all__ = ["finetune_loss", "residual_kl_loss", "project_heatmaps", "spatial_probabilities", "joint_similarity",
           "pose_contrastive_loss", "information_maximization_loss", "consistency_loss", "check_positive"]


# -- input checks ----------------------------------------------------------------------------------
def _check_same_shape(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} must have the same shape")


def check_positive(name: str, value) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def _check_pair(name: str, pair) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise TypeError(f"{name} must be a pair (horizontal (N, K, w), vertical (N, K, h)) of probability vectors")
    px = check_tensor(f"{name}[0]", pair[0], 3, "(N, K, w)")
    py = check_tensor(f"{name}[1]", pair[1], 3, "(N, K, h)")
    if px.shape[:2] != py.shape[:2]:
        raise ValueError(f"{name}: horizontal {tuple(px.shape)} and vertical {tuple(py.shape)} disagree on (N, K)")
    return px, py


# -- step A: source protection ---------------------------------------------------------------------
def finetune_loss(source: torch.Tensor, intermediate: torch.Tensor) -> torch.Tensor:
    """L_ft: heatmap MSE between the source and intermediate models' heatmaps of the same crops.

    source, intermediate: (N, K, h, w). Returns a scalar, the mean over N, K, h, w of the squared difference.
    Gradients reach both arguments (F_sr and G_in both learn from it).
    """
    check_tensor("source", source, 4, "(N, K, h, w)")
    check_tensor("intermediate", intermediate, 4, "(N, K, h, w)")
    _check_same_shape("source", source, "intermediate", intermediate)
    return torch.mean((source - intermediate) ** 2)


def residual_kl_loss(source: torch.Tensor, intermediate: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """L_res: KL(p_sr || p_in) of the heatmaps' *residual* distributions, mean over N and K.

    source, intermediate: (N, K, h, w) heatmaps (h·w >= 3). For every (n, k) the most confident pixel of
    each map is removed from both maps (one or two pixels), and p = softmax(heatmap / tau) over the
    remaining pixels. Identical maps give 0; the value of the peak pixel never matters. Returns a scalar.
    """
    check_tensor("source", source, 4, "(N, K, h, w)")
    check_tensor("intermediate", intermediate, 4, "(N, K, h, w)")
    _check_same_shape("source", source, "intermediate", intermediate)
    tau = check_positive("tau", tau)
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
    check_tensor("heatmaps", heatmaps, 4, "(N, K, h, w)")
    return heatmaps.sum(dim=2), heatmaps.sum(dim=3)


def spatial_probabilities(heatmaps: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The spatial probability space: softmax of :func:`project_heatmaps` / temperature along each vector.

    heatmaps (N, K, h, w) -> (p^x (N, K, w), p^y (N, K, h)), float32, each vector summing to 1 (a bf16
    softmax under autocast misses 1 by more than the losses' checks allow on 48-wide maps).
    """
    temperature = check_positive("temperature", temperature)
    px, py = project_heatmaps(heatmaps.float())
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
    temperature = check_positive("contrast_temperature", temperature)
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
    p = check_tensor("probabilities", probabilities, 3, "(N, K, L)")
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
    check_tensor("reference", reference, 4, "(N, K, h, w)")
    check_tensor("other", other, 4, "(N, K, h, w)")
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
