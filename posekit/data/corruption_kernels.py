"""Array helpers of the ImageNet-C corruptions (:mod:`posekit.data.corruptions`): float conversion, blur
kernels, zoom and the plasma fractal behind fog. Pure functions of numpy arrays."""
from __future__ import annotations

__all__ = ['to_float', 'to_uint8', 'gaussian_blur', 'disk_kernel', 'motion_kernel', 'motion_blur_array', 'central_zoom', 'plasma_fractal', 'next_power_of_two']

import math

import cv2
import numpy as np


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return image.astype(np.float32) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] (or already uint8) -> uint8."""
    if x.dtype == np.uint8:
        return x
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def gaussian_blur(x: np.ndarray, sigma: float, truncate: float = 4.0,
                   border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Gaussian blur with the kernel support ``truncate * sigma`` (scipy/skimage convention)."""
    ksize = 2 * math.ceil(truncate * sigma) + 1
    return cv2.GaussianBlur(x, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=border)


def disk_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    """Normalised filled disk of ``radius`` px, slightly blurred to soften its aliased rim.

    Returns (S, S) float32 with S = 2 * max(8, radius) + 1 (the reference's support).
    """
    half = max(8, math.ceil(radius))
    coords = np.arange(-half, half + 1, dtype=np.float32)
    disk = ((coords[None, :] ** 2 + coords[:, None] ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    ksize = 3 if radius <= 8 else 5
    disk = cv2.GaussianBlur(disk, (ksize, ksize), sigmaX=alias_sigma)
    # renormalise: where the disk touches the support's edge the blur's reflected border adds mass
    # (the reference skips this and brightens the image by up to 1 %)
    return disk / disk.sum()


def motion_kernel(radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """Line kernel of a one-sided Gaussian trail: weight exp(-i^2 / 2 sigma^2) at i px along ``angle``.

    For ``cv2.filter2D`` (a correlation): output(p) = sum_i w_i * input(p + i * direction), i.e. each
    pixel averages the scene behind it along the motion direction. Returns (S, S) float32, sums to 1.
    """
    length = 2 * radius + 1
    steps = np.arange(length, dtype=np.float64)
    weights = np.exp(-steps ** 2 / (2.0 * sigma ** 2))
    weights /= weights.sum()
    theta = math.radians(angle_deg)
    # ceil(v - 0.5) rounds half down, matching the reference's pixel offsets.
    dx = np.ceil(steps * math.cos(theta) - 0.5).astype(int)
    dy = np.ceil(steps * math.sin(theta) - 0.5).astype(int)
    size = 2 * (length - 1) + 1
    kernel = np.zeros((size, size), np.float64)
    np.add.at(kernel, (length - 1 + dy, length - 1 + dx), weights)
    return kernel.astype(np.float32)


def motion_blur_array(x: np.ndarray, radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """Motion-blur an (H, W) or (H, W, C) float32 array; borders replicate the edge pixels."""
    kernel = motion_kernel(radius, sigma, angle_deg)
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def central_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` >= 1, keeping the array's (H, W)."""
    h, w = x.shape[:2]
    ch, cw = max(1, math.ceil(h / factor)), max(1, math.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[top:top + ch, left:left + cw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map on a (size, size) torus, normalised to [0, 1].

    size: a power of two. The random perturbation at each finer level is divided by ``decay ** 2``
    (the reference shrinks both the range and the scale of its uniform noise by ``decay``), so a
    smaller decay gives rougher, patchier fog. Returns (size, size) float32.
    """
    if size < 1 or size & (size - 1):
        raise ValueError(f"plasma size must be a power of two, got {size}")
    height = np.zeros((size, size), np.float64)
    step, amplitude = size, 1.0
    while step >= 2:
        half = step // 2
        corners = height[0::step, 0::step]
        # square step: cell centres = mean of the four corners + noise
        centres = (corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1)
                   + np.roll(np.roll(corners, -1, 0), -1, 1)) / 4.0
        centres += amplitude * rng.uniform(-1.0, 1.0, centres.shape)
        height[half::step, half::step] = centres
        # diamond step: edge midpoints = mean of the two corners and the two centres beside them
        top_mid = (corners + np.roll(corners, -1, 1) + centres + np.roll(centres, 1, 0)) / 4.0
        left_mid = (corners + np.roll(corners, -1, 0) + centres + np.roll(centres, 1, 1)) / 4.0
        height[0::step, half::step] = top_mid + amplitude * rng.uniform(-1.0, 1.0, top_mid.shape)
        height[half::step, 0::step] = left_mid + amplitude * rng.uniform(-1.0, 1.0, left_mid.shape)
        step = half
        amplitude /= decay ** 2
    height -= height.min()
    peak = height.max()
    return (height / peak if peak > 0 else height).astype(np.float32)


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())
