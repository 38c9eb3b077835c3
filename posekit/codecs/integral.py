"""Integral / DSNT decoding: coordinates as the expectation of a normalised heatmap.

References: Nibali et al., "Numerical Coordinate Regression with Convolutional Neural Networks" (DSNT,
2018); Sun et al., "Integral Human Pose Regression" (ECCV 2018).

Convention (consistent with :class:`~posekit.codecs.regression.RegressionCodec`): heatmap pixel ``i`` of
a map ``w`` pixels wide has the normalised coordinate ``i / w - 0.5``. With the default heatmap mapping
``x_in = stride * x_hm`` that is exactly ``x_in / W - 0.5``, the regression codec's ``u``. (dsntnn uses
``(2 i + 1) / w - 1``, i.e. pixel-area centres in ``[-1, 1]``; this module does not.)

All functions are differentiable torch ops on ``(N, K, H, W)`` tensors.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .base import CODECS, Codec
from .heatmap import _as_size
from .regression import RegressionCodec

__all__ = ["normalized_grid", "normalize_heatmaps", "flat_softmax", "dsnt", "soft_argmax",
           "normalized_gaussians", "js_regulariser", "IntegralCodec"]

_NORMALIZATIONS = ("softmax", "sigmoid", "relu", "abs")


def _check_maps(heatmaps: torch.Tensor, name: str = "heatmaps") -> None:
    if not isinstance(heatmaps, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(heatmaps).__name__}")
    if heatmaps.dim() != 4:
        raise ValueError(f"{name} must be (N, K, H, W), got shape {tuple(heatmaps.shape)}")
    if not heatmaps.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {heatmaps.dtype}")


def normalized_grid(length: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """(length,) normalised coordinates of the pixel centres: ``i / length - 0.5``."""
    return torch.arange(length, dtype=dtype, device=device) / length - 0.5


def normalize_heatmaps(logits: torch.Tensor, method: str = "softmax", beta: float = 1.0) -> torch.Tensor:
    """(N, K, H, W) logits -> (N, K, H, W) maps that are non-negative and sum to 1 over H x W.

    method: ``softmax`` of ``beta * logits`` (DSNT's best choice), or ``sigmoid`` / ``relu`` / ``abs``
    followed by division by the sum (a map with zero sum becomes uniform).
    """
    _check_maps(logits, "logits")
    if method == "softmax":
        return flat_softmax(logits, beta)
    if method not in _NORMALIZATIONS:
        raise ValueError(f"method must be one of {_NORMALIZATIONS}, got {method!r}")
    positive = {"sigmoid": torch.sigmoid, "relu": F.relu, "abs": torch.abs}[method](beta * logits)
    n, k, h, w = logits.shape
    flat = positive.reshape(n, k, h * w) + 1e-12  # keeps all-zero maps finite (uniform)
    return (flat / flat.sum(dim=2, keepdim=True)).reshape(n, k, h, w)


def flat_softmax(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """(N, K, H, W) -> softmax of ``beta * logits`` over each map's H x W pixels."""
    _check_maps(logits, "logits")
    n, k, h, w = logits.shape
    return F.softmax(beta * logits.reshape(n, k, h * w), dim=2).reshape(n, k, h, w)


def dsnt(probabilities: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """Differentiable spatial to numerical transform: the expected pixel position of each map.

    probabilities: (N, K, H, W), each map non-negative and summing to 1 (not checked; see
    :func:`normalize_heatmaps`). normalized: return ``(x, y)`` in the ``i / w - 0.5`` convention; else in
    heatmap pixels. Returns (N, K, 2).
    """
    _check_maps(probabilities, "probabilities")
    _, _, h, w = probabilities.shape
    kw = dict(dtype=probabilities.dtype, device=probabilities.device)
    xs = normalized_grid(w, **kw) if normalized else torch.arange(w, **kw)
    ys = normalized_grid(h, **kw) if normalized else torch.arange(h, **kw)
    # Marginals first: H + W multiplies per map instead of 2 H W.
    x = (probabilities.sum(dim=2) * xs).sum(dim=-1)
    y = (probabilities.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def soft_argmax(heatmaps: torch.Tensor, normalized: bool = True, beta: float = 1.0) -> torch.Tensor:
    """(N, K, H, W) logits -> (N, K, 2) expected ``(x, y)`` under the flat softmax of ``beta * logits``."""
    return dsnt(flat_softmax(heatmaps, beta), normalized=normalized)


def normalized_gaussians(mu: torch.Tensor, size: tuple[int, int], sigma_t: float) -> torch.Tensor:
    """Gaussians on the pixel grid, each summing to 1.

    mu: (N, K, 2) centres in normalised coordinates. size: ``(h, w)``. sigma_t: standard deviation in
    heatmap pixels. Returns (N, K, h, w).
    """
    h, w = size
    kw = dict(dtype=mu.dtype, device=mu.device)
    cx = (mu[..., 0:1] + 0.5) * w  # normalised -> heatmap pixels
    cy = (mu[..., 1:2] + 0.5) * h
    gx = torch.exp(-(torch.arange(w, **kw) - cx) ** 2 / (2 * sigma_t ** 2))  # (N, K, w)
    gy = torch.exp(-(torch.arange(h, **kw) - cy) ** 2 / (2 * sigma_t ** 2))  # (N, K, h)
    gauss = gy[..., :, None] * gx[..., None, :]
    return gauss / (gauss.sum(dim=(-2, -1), keepdim=True) + 1e-24)


def js_regulariser(heatmaps: torch.Tensor, mu: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """DSNT's divergence regulariser: Jensen-Shannon divergence (natural log) of each map to a Gaussian.

    heatmaps: (N, K, H, W) normalised maps. mu: (N, K, 2) target locations, normalised coordinates.
    sigma_t: target standard deviation in heatmap pixels (dsntnn's unit too).
    Returns (N, K) divergences in ``[0, ln 2]``; reduce them (e.g. a weighted mean) in the loss.
    """
    _check_maps(heatmaps)
    if mu.shape != heatmaps.shape[:2] + (2,):
        raise ValueError(f"mu must be {tuple(heatmaps.shape[:2]) + (2,)}, got {tuple(mu.shape)}")
    if not sigma_t > 0:
        raise ValueError(f"sigma_t must be positive, got {sigma_t!r}")
    target = normalized_gaussians(mu.to(heatmaps.dtype), tuple(heatmaps.shape[2:]), sigma_t)
    mixture = 0.5 * (heatmaps + target)

    def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        eps = 1e-24  # 0 log 0 = 0 without NaN gradients
        return (p * ((p + eps).log() - (q + eps).log())).sum(dim=(-2, -1))

    return 0.5 * kl(heatmaps, mixture) + 0.5 * kl(target, mixture)


@CODECS.register
class IntegralCodec(Codec):
    """Keypoints <-> normalised coordinates; model outputs are heatmap logits decoded by expectation.

    Training targets are those of :class:`RegressionCodec` (``coords`` in ``i / w - 0.5``-consistent
    units plus ``weights``); train with a coordinate loss on :meth:`normalized_coords` plus, optionally,
    :func:`js_regulariser`.

    Args:
        input_size: ``(W, H)`` model input. heatmap_size: ``(w, h)``, default ``(W // 4, H // 4)``.
        normalization: see :func:`normalize_heatmaps`. beta: logit scale before normalising.
    """

    def __init__(self, input_size=(192, 256), heatmap_size=None, normalization: str = "softmax",
                 beta: float = 1.0, ignore_outside: bool = True):
        self.input_size = _as_size(input_size, "input_size")
        width, height = self.input_size
        self.heatmap_size = (_as_size(heatmap_size, "heatmap_size") if heatmap_size is not None
                             else (width // 4, height // 4))
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.normalization = normalization
        self.beta = float(beta)
        self._regression = RegressionCodec(self.input_size, ignore_outside=ignore_outside)

    @property
    def ignore_outside(self) -> bool:
        return self._regression.ignore_outside

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Same targets as :meth:`RegressionCodec.encode`: ``coords`` (K, 2), ``weights`` (K,)."""
        return self._regression.encode(keypoints, visible)

    def normalized_maps(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) logits -> (N, K, h, w) maps summing to one (this codec's normalisation), differentiable;
        what :func:`js_regulariser` compares with a Gaussian."""
        _check_maps(heatmaps)
        w, h = self.heatmap_size
        if tuple(heatmaps.shape[2:]) != (h, w):
            raise ValueError(f"heatmaps are {heatmaps.shape[3]}x{heatmaps.shape[2]} (w x h) but this "
                             f"codec expects {w}x{h}")
        return normalize_heatmaps(heatmaps, self.normalization, self.beta)

    def normalized_coords(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) logits -> (N, K, 2) normalised coordinates, differentiable (for the loss)."""
        return dsnt(self.normalized_maps(heatmaps))

    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) logits (ndarray or Tensor) -> ``coords (N, K, 2)`` float32 model-input pixels and
        ``scores (N, K)`` float32 = sigmoid of each map's largest logit (an uncalibrated peak strength:
        expectation decoding itself yields no confidence)."""
        tensor = torch.as_tensor(heatmaps).detach().to("cpu", torch.float32)
        with torch.no_grad():
            uv = self.normalized_coords(tensor)
            scores = torch.sigmoid(tensor.flatten(2).amax(dim=2))
        coords, _ = self._regression.decode(uv.numpy())
        return coords, scores.numpy().astype(np.float32)
