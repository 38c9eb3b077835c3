"""DARK decoding (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation",
CVPR 2020), vectorised over people and joints.

Algorithm (as DarkPose's inference code does it, per heatmap):

1. integer peak ``(px, py)`` = argmax of the *original* map; score = its value;
2. blur: zero-pad the map by ``r = (k - 1) // 2``, apply OpenCV's ``k x k`` Gaussian with sigma derived from
   the kernel size (``cv2.getGaussianKernel(k, 0)``: ``sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8``, 2.0 for
   ``k = 11``; fixed tables for ``k <= 7``), crop back, then rescale so the blurred map keeps the original
   maximum (``b * max(map) / max(b)``);
3. ``log(max(b, 1e-10))``;
4. one Newton step ``-H^-1 g`` with central differences at the integer peak (the second derivatives use a
   step of two pixels), only where ``1 < px < W - 2`` and ``1 < py < H - 2`` and ``det(H) != 0``.

Speed: the Taylor step needs the blurred map only on the 5x5 neighbourhood of the peak, which is the
blur of a ``(k + 4) x (k + 4)`` patch -- two tiny matrix products per joint instead of a full-map blur.
The rescale factor ``c = max(map) / max(b)`` cancels in the log-derivatives
(``log(c b) = log c + log b``) unless the ``1e-10`` floor clips a neighbourhood value. When
``max(map) > 0`` the zero-padded blur of a kernel summing to one satisfies ``max(b) <= max(map)``, so
``c >= 1`` and nothing is clipped as long as every neighbourhood value exceeds the floor; only the
joints that fail that test (non-positive peaks, negative or vanishing blur near the peak) get the full
blur, so the coordinates match the per-joint algorithm exactly.

Two guards the reference lacks: a map whose blur is zero everywhere uses ``c = 1`` (the reference
divides by zero), and a non-finite Newton step is dropped (the joint keeps its integer peak).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

__all__ = ["dark_decode", "gaussian_kernel_1d", "blur_heatmaps", "heatmap_peaks"]

#: DarkPose clips the blurred map at this value before the log.
LOG_FLOOR = 1e-10


def _to_numpy(heatmaps) -> tuple[np.ndarray, Callable[[np.ndarray], object]]:
    """ndarray or Tensor -> (ndarray, function turning a result back into the input's kind)."""
    if isinstance(heatmaps, torch.Tensor):
        device = heatmaps.device
        array = heatmaps.detach().to("cpu", copy=False).numpy()
        return array, lambda out: torch.from_numpy(np.ascontiguousarray(out)).to(device)
    if isinstance(heatmaps, np.ndarray):
        return heatmaps, lambda out: out
    raise TypeError(f"heatmaps must be a numpy array or a torch tensor, got {type(heatmaps).__name__}")


def _check_heatmaps(heatmaps: np.ndarray) -> None:
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got shape {tuple(heatmaps.shape)}")
    if min(heatmaps.shape[2:]) < 1:
        raise ValueError(f"heatmaps must have a non-empty spatial size, got shape {tuple(heatmaps.shape)}")
    if not np.issubdtype(heatmaps.dtype, np.floating):
        raise TypeError(f"heatmaps must be floating point, got {heatmaps.dtype}")


def heatmap_peaks(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer argmax of every map.

    heatmaps: (N, K, H, W) ndarray. Returns ``px (N, K)``, ``py (N, K)`` int64 and ``maxvals (N, K)``.
    Ties go to the first pixel in row-major order. Raises ``ValueError`` on NaN or +inf maps.
    """
    _check_heatmaps(heatmaps)
    n, k, h, w = heatmaps.shape
    if n * k == 0:
        empty = np.zeros((n, k), dtype=np.int64)
        return empty, empty.copy(), np.zeros((n, k), dtype=heatmaps.dtype)
    flat = heatmaps.reshape(n, k, h * w)
    index = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    # argmax picks the first NaN (and any +inf), so checking the (N, K) peak values is enough.
    if not np.isfinite(maxvals).all():
        raise ValueError("heatmaps contain NaN or infinite values")
    return index % w, index // w, maxvals


def gaussian_kernel_1d(kernel_size: int) -> np.ndarray:
    """(kernel_size,) float64 Gaussian summing to one, exactly what ``cv2.GaussianBlur(.., (k, k), 0)`` uses."""
    if not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd integer, got {kernel_size!r}")
    return cv2.getGaussianKernel(int(kernel_size), 0, ktype=cv2.CV_64F).ravel()


def blur_heatmaps(heatmaps: np.ndarray, kernel_size: int = 11) -> np.ndarray:
    """Zero-padded separable Gaussian blur of every map, in float64.

    heatmaps: (M, H, W). Returns (M, H, W) float64. Equivalent to DarkPose's pad-blur-crop: the maps are
    stacked into one tall image with ``r`` zero rows between them so a single OpenCV call blurs them all.
    """
    kernel = gaussian_kernel_1d(kernel_size)
    r = kernel_size // 2
    m, h, w = heatmaps.shape
    if m == 0:
        return np.zeros((0, h, w), dtype=np.float64)
    stacked = np.zeros((m, h + 2 * r, w), dtype=np.float64)
    stacked[:, r:r + h] = heatmaps
    blurred = cv2.sepFilter2D(stacked.reshape(m * (h + 2 * r), w), cv2.CV_64F, kernel, kernel,
                              borderType=cv2.BORDER_CONSTANT)
    return blurred.reshape(m, h + 2 * r, w)[:, r:r + h]


def _band_matrix(kernel: np.ndarray, out_size: int) -> np.ndarray:
    """(out_size, out_size + len(kernel) - 1) matrix whose row i holds the kernel at columns i..i+k-1."""
    k = len(kernel)
    band = np.zeros((out_size, out_size + k - 1), dtype=np.float64)
    for i in range(out_size):
        band[i, i:i + k] = kernel
    return band


def _gather_patches(maps: np.ndarray, which: np.ndarray, px: np.ndarray, py: np.ndarray,
                    half: int) -> np.ndarray:
    """(M, H, W) maps, (n,) map indices and centres -> (n, 2 half + 1, 2 half + 1) float64 patches, zeros
    outside the map. Indexes in place: copying the selected maps first would cost more than the rest."""
    _, h, w = maps.shape
    offsets = np.arange(-half, half + 1)
    rows = py[:, None] + offsets
    cols = px[:, None] + offsets
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    patch = maps[which[:, None, None],
                 np.clip(rows, 0, h - 1)[:, :, None],
                 np.clip(cols, 0, w - 1)[:, None, :]].astype(np.float64)
    patch[~inside] = 0.0
    return patch


# The 13 taps of the 5x5 neighbourhood that the finite differences read (row, col around the centre 2, 2).
_TAPS = np.zeros((5, 5), dtype=bool)
_TAPS[2, :] = True
_TAPS[:, 2] = True
_TAPS[1, 1] = _TAPS[1, 3] = _TAPS[3, 1] = _TAPS[3, 3] = True


def _newton_offsets(logmap: np.ndarray) -> np.ndarray:
    """(n, 5, 5) log-map neighbourhoods centred on the peak -> (n, 2) offsets ``-H^-1 g`` (0 where singular)."""
    c = logmap[:, 2, 2]
    dx = 0.5 * (logmap[:, 2, 3] - logmap[:, 2, 1])
    dy = 0.5 * (logmap[:, 3, 2] - logmap[:, 1, 2])
    dxx = 0.25 * (logmap[:, 2, 4] - 2 * c + logmap[:, 2, 0])
    dyy = 0.25 * (logmap[:, 4, 2] - 2 * c + logmap[:, 0, 2])
    dxy = 0.25 * (logmap[:, 3, 3] - logmap[:, 1, 3] - logmap[:, 3, 1] + logmap[:, 1, 1])
    det = dxx * dyy - dxy ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        offsets = np.stack([-(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det], axis=1)
    usable = (det != 0) & np.isfinite(offsets).all(axis=1)
    offsets[~usable] = 0.0
    return offsets


def dark_decode(heatmaps, blur_kernel: int = 11):
    """DARK sub-pixel decoding of a batch of heatmaps.

    heatmaps: (N, K, H, W) ndarray or Tensor. blur_kernel: odd Gaussian kernel size (DarkPose uses 11 for
    64x48 maps, 17 for 96x72).
    Returns ``coords (N, K, 2)`` float32 ``(x, y)`` in HEATMAP pixels (pixel centres at integers) and
    ``scores (N, K)`` float32 = maximum of the original map; numpy in, numpy out; Tensor in, Tensor out.
    """
    array, restore = _to_numpy(heatmaps)
    kernel = gaussian_kernel_1d(blur_kernel)
    px, py, maxvals = heatmap_peaks(array)
    n, k, h, w = array.shape
    coords = np.stack([px, py], axis=-1).astype(np.float64).reshape(n * k, 2)

    px, py, peak = px.reshape(-1), py.reshape(-1), maxvals.reshape(-1).astype(np.float64)
    maps = array.reshape(n * k, h, w)
    refine = np.flatnonzero((px > 1) & (px < w - 2) & (py > 1) & (py < h - 2))
    if refine.size:
        r = blur_kernel // 2
        patches = _gather_patches(maps, refine, px[refine], py[refine], half=r + 2)
        band = _band_matrix(kernel, 5)
        local = band @ patches @ band.T  # (n, 5, 5) blurred neighbourhood
        # Fast path is exact when the floor cannot clip (see module docstring); 2x margin for rounding.
        fast = (peak[refine] > 0) & (local[:, _TAPS].min(axis=1) > 2 * LOG_FLOOR)
        logmap = np.empty_like(local)
        logmap[fast] = np.log(np.maximum(local[fast], LOG_FLOOR))  # floor only touches unused corners
        slow = np.flatnonzero(~fast)
        if slow.size:
            logmap[slow] = _full_blur_logmaps(maps[refine[slow]], px[refine[slow]], py[refine[slow]],
                                              peak[refine[slow]], blur_kernel)
        coords[refine] += _newton_offsets(logmap)

    return (restore(coords.reshape(n, k, 2).astype(np.float32)),
            restore(maxvals.astype(np.float32)))


def _full_blur_logmaps(maps: np.ndarray, px: np.ndarray, py: np.ndarray, peak: np.ndarray,
                       blur_kernel: int) -> np.ndarray:
    """The reference path for the few joints the fast path cannot prove equal: (n, 5, 5) log neighbourhoods."""
    blurred = blur_heatmaps(maps, blur_kernel)
    blur_max = blurred.reshape(len(maps), -1).max(axis=1)
    scale = np.where(blur_max != 0, peak / np.where(blur_max != 0, blur_max, 1.0), 1.0)
    offsets = np.arange(-2, 3)
    rows = (py[:, None] + offsets)[:, :, None]
    cols = (px[:, None] + offsets)[:, None, :]
    neighbourhood = blurred[np.arange(len(maps))[:, None, None], rows, cols]
    return np.log(np.maximum(neighbourhood * scale[:, None, None], LOG_FLOOR))
