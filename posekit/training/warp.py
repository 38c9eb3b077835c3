"""A second view of a crop batch: random known affine maps, batched warps, and heatmaps brought back.

Matrices are 2x3 pixel maps in posekit's convention (pixel centres at integer coordinates), as
:func:`posekit.data.transforms.crop_matrix` makes them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from posekit.data.transforms import crop_matrix
from posekit.training.checks import check_tensor

__all__ = ["sample_view_transforms", "warp", "heatmap_matrices", "map_to_reference"]


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
    check_tensor("tensor", tensor, 4, "(N, C, H, W)")
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
    check_tensor("heatmaps", heatmaps, 4, "(N, K, h, w)")
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
