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


#: the 256 uint8 levels as float32: colour jitter's brightness and contrast are functions of a pixel's own level
_LEVELS = np.arange(256, dtype=np.float32)


def color_jitter_planes(image: np.ndarray, rng: np.random.Generator, amount: float) -> list[np.ndarray]:
    """image: (H, W, 3) uint8 -> the three (H, W) uint8 channel planes of its jittered copy (brightness, contrast and
    saturation factors in [1 - amount, 1 + amount]); the planes are what :func:`normalize_planes` reads.

    The result is bit for bit the plain expression ``((x * b - m) * c + m - g) * s + g`` (clipped to [0, 255],
    truncated to uint8) in its original precision: ``x * b`` rounded to float32, ``m`` the float32 mean of that
    image as NumPy sums an (H, W, 3) float32 array, the rest in float64 (NumPy 2 promotes float32 arrays times
    the float64 factors), ``g`` the channel mean ``((c0 + c1) + c2) / 3``. Brightness and contrast depend on a
    pixel's own level only, so two 256-entry tables replace that per-pixel work; saturation mixes the channels
    and runs per plane, where no operation broadcasts over a 3-long axis (NumPy's slowest case).
    """
    image = np.ascontiguousarray(image)
    if amount <= 0:
        return list(cv2.split(image))
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, size=3)
    bright = np.multiply(_LEVELS, brightness).astype(np.float32)  # float32(float64(x) * b), as the image was
    mean = cv2.LUT(image, bright).mean()  # the float32 image, summed exactly as before
    contrasted = np.multiply(bright - mean, contrast)  # float32 difference, float64 product
    contrasted += mean
    channels = [cv2.LUT(plane, contrasted) for plane in cv2.split(image)]  # three (H, W) float64
    gray = channels[0] + channels[1]
    gray += channels[2]
    gray /= 3
    planes = []
    for channel in channels:
        channel -= gray
        channel *= saturation
        channel += gray
        np.maximum(channel, 0, out=channel)  # np.clip's bounds, without its Python wrapper
        np.minimum(channel, 255, out=channel)
        planes.append(channel.astype(np.uint8))
    return planes


def color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """image: (H, W, 3) uint8 -> jittered copy: brightness, contrast and saturation factors in [1 - amount, 1 + amount]
    (:func:`color_jitter_planes`, interleaved again); ``amount <= 0`` returns ``image`` itself and draws nothing."""
    if amount <= 0:
        return image
    return cv2.merge(color_jitter_planes(image, rng, amount))


IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


#: (3, 256) float32: the normalised value of every uint8 level per channel, computed as the elementwise formula
#: ``(x - mean) / std`` would, so a table look-up gives the same bits
_NORMALIZED_LEVELS = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - IMAGE_MEAN) / IMAGE_STD).T)


def normalize_planes(planes) -> np.ndarray:
    """Three (H, W) uint8 channel planes (R, G, B) -> (3, H, W) float32, ImageNet mean/std normalised: one table
    look-up per plane (:data:`_NORMALIZED_LEVELS`, OpenCV's LUT) writes each channel of the result in place."""
    height, width = planes[0].shape
    out = np.empty((3, height, width), np.float32)
    for channel, plane in enumerate(planes):
        cv2.LUT(np.ascontiguousarray(plane), _NORMALIZED_LEVELS[channel], dst=out[channel])
    return out


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet mean/std normalised (the models' input), by
    :func:`normalize_planes` of its channel planes."""
    if crop.dtype != np.uint8 or crop.size == 0:  # the table holds uint8 levels only
        return ((crop.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()
    return normalize_planes(cv2.split(np.ascontiguousarray(crop)))
