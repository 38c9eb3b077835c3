"""Top-down geometry: person box -> affine crop at the model's aspect ratio, and the augmentations that
change coordinate frames (scale, rotation, shift, flip) plus colour jitter.

Every crop is one 2x3 affine matrix ``M`` mapping image pixels to crop pixels; keypoints go through the
same matrix, and its inverse maps predictions back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posekit.config import DEFAULT_PADDING


def box_to_center_scale(box: np.ndarray, aspect_ratio: float,
                        padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Person box -> crop centre and crop size in image pixels.

    box: (4,) ``x, y, w, h``. aspect_ratio: crop width / height of the model input.
    Returns center (2,), size (2,) ``(w, h)``: the box grown to the model's aspect ratio, then by ``padding``.
    """
    x, y, w, h = (float(v) for v in box)
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise ValueError(f"person box must be finite with positive size, got {box}")
    center = np.array([x + w / 2, y + h / 2], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w * padding, h * padding], dtype=np.float32)


def crop_matrix(center: np.ndarray, size: np.ndarray, output_size: tuple[int, int],
                rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """(2, 3) affine matrix taking image pixels to crop pixels.

    The region of ``size`` (w, h) around ``center``, rotated by ``rotation`` degrees (counter-clockwise in
    the image), fills the ``output_size`` (W, H) crop; ``flip`` mirrors the crop horizontally.
    """
    out_w, out_h = output_size
    sx, sy = out_w / float(size[0]), out_h / float(size[1])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    # crop = T_out . S . R . T(-center): the crop centre lands on the output centre (pixel centres at integers).
    linear = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]], dtype=np.float64)
    out_center = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = linear
    matrix[:, 2] = out_center - linear @ np.asarray(center, dtype=np.float64)
    if flip:
        mirror = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (mirror @ np.vstack([matrix, [0, 0, 1]]))[:2]
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) -> (2, 3) inverse affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points: (..., 2) -> (..., 2) through the (2, 3) affine ``matrix``."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """image: (H, W, 3) uint8 -> (out_h, out_w, 3) crop; outside the image is black."""
    return cv2.warpAffine(image, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def flip_keypoints_order(keypoints: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """After mirroring, the joint called 'left' is the old 'right': keypoints (K, C) -> reordered (K, C)."""
    return keypoints[flip_index]


@dataclass
class AugmentConfig:
    """Random top-down augmentation, as in SimpleBaseline/HRNet recipes."""

    scale: float = 0.30          # crop size factor drawn from [1 - scale, 1 + scale]
    rotation: float = 30.0       # degrees, drawn from [-rotation, rotation] ...
    rotation_prob: float = 0.6   # ... with this probability
    shift: float = 0.10          # centre shift as a fraction of the crop size
    flip_prob: float = 0.5
    color: float = 0.25          # brightness / contrast / saturation jitter amplitude
    aid_prob: float = 0.0        # AID information dropping (posekit.data.augment), off by default


def random_crop_params(rng: np.random.Generator, cfg: AugmentConfig) -> dict:
    """Draw one set of geometric augmentation parameters."""
    scale = float(rng.uniform(1 - cfg.scale, 1 + cfg.scale))
    rotation = float(rng.uniform(-cfg.rotation, cfg.rotation)) if rng.random() < cfg.rotation_prob else 0.0
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2)
    flip = bool(rng.random() < cfg.flip_prob)
    return {"scale": scale, "rotation": rotation, "shift": shift, "flip": flip}


def color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """image: (H, W, 3) uint8 -> jittered copy: brightness, contrast and saturation factors in [1 - amount, 1 + amount].

    Brightness scales a float32 copy; contrast pulls towards the image mean and saturation towards each pixel's
    grey (channel mean), both in float64 (NumPy 2 promotes float32 arrays times the float64 factors). The
    operations run in place, in the order and precision of the plain expression
    ``((x * b - m) * c + m - g) * s + g``, so the result is bit for bit the same, about 3x faster.
    """
    if amount <= 0:
        return image
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, size=3)
    img = image.astype(np.float32)
    np.multiply(img, brightness, out=img, casting="same_kind")
    mean = img.mean()
    img -= mean
    out = np.multiply(img, contrast)  # float64 from here on
    out += mean
    # the channel mean as NumPy's mean(axis=2) computes it for three values: (c0 + c1) + c2, then / 3
    gray = out[..., 0] + out[..., 1]
    gray += out[..., 2]
    gray /= 3
    gray = gray[..., None]
    out -= gray
    out *= saturation
    out += gray
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


#: (3, 256) float32: the normalised value of every uint8 level per channel, computed as the elementwise formula
#: ``(x - mean) / std`` would, so a table look-up gives the same bits
_NORMALIZED_LEVELS = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - IMAGE_MEAN) / IMAGE_STD).T)


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet mean/std normalised (the models' input).

    One table look-up per channel (:data:`_NORMALIZED_LEVELS`) writes the channel-first result directly.
    """
    if crop.dtype != np.uint8:  # the table holds uint8 levels only
        return ((crop.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()
    height, width = crop.shape[:2]
    out = np.empty((3, height, width), np.float32)
    for channel in range(3):
        np.take(_NORMALIZED_LEVELS[channel], crop[..., channel], out=out[channel])
    return out
