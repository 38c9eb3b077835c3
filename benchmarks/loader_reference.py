"""The training item as posekit built it before the input-pipeline work of issue #17 (commit 388e206): the
"before" that ``loader_speed.py`` times and checks the package against. Not part of the package, not used by it.

Copied from that commit's ``posekit/data/transforms.py`` (colour jitter, normalisation, and the crop geometry: box ->
centre and size, the random crop parameters, the crop matrix, keypoints through it), ``posekit/data/crop_cache.py``
(composing with the cache's matrix), ``posekit/codecs/heatmap.py`` (biased targets rendered over the whole map) and
``posekit/data/dataset.py`` (``TopDownDataset.crop``, ``warped_crop`` and ``__getitem__``), with only the names
changed; ``reference_item(dataset, index)`` is that ``__getitem__`` on a current dataset, reading only its settings,
samples and crop cache.
"""
from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from posekit.codecs.base import check_person
from posekit.data.sample import DataError
from posekit.data.io import read_image
from posekit.data.transforms import _NORMALIZED_LEVELS, IMAGE_MEAN, IMAGE_STD

log = logging.getLogger(__name__)


def reference_box_to_center_scale(box, aspect_ratio, padding):
    x, y, w, h = (float(v) for v in box)
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise ValueError(f"person box must be finite with positive size, got {box}")
    center = np.array([x + w / 2, y + h / 2], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w * padding, h * padding], dtype=np.float32)


def reference_crop_matrix(center, size, output_size, rotation=0.0, flip=False) -> np.ndarray:
    out_w, out_h = output_size
    sx, sy = out_w / float(size[0]), out_h / float(size[1])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    linear = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]], dtype=np.float64)
    out_center = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = linear
    matrix[:, 2] = out_center - linear @ np.asarray(center, dtype=np.float64)
    if flip:
        mirror = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (mirror @ np.vstack([matrix, [0, 0, 1]]))[:2]
    return matrix


def reference_affine_points(points, matrix) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def reference_random_crop_params(rng, cfg) -> dict:
    scale = float(rng.uniform(1 - cfg.scale, 1 + cfg.scale))
    rotation = float(rng.uniform(-cfg.rotation, cfg.rotation)) if rng.random() < cfg.rotation_prob else 0.0
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2)
    flip = bool(rng.random() < cfg.flip_prob)
    return {"scale": scale, "rotation": rotation, "shift": shift, "flip": flip}


def reference_crop(dataset, sample, rng):
    """``TopDownDataset.crop`` as it was: (matrix (2, 3), flip)."""
    w, h = dataset.input_size
    center, size = reference_box_to_center_scale(sample.box, w / h, dataset.padding)
    rotation, flip = 0.0, False
    if rng is not None:
        p = reference_random_crop_params(rng, dataset.augment)
        center = center + p["shift"] * size
        size = size * p["scale"]
        rotation, flip = p["rotation"], p["flip"]
    return reference_crop_matrix(center, size, dataset.input_size, rotation, flip), flip


def reference_warp(image, matrix, output_size) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def cached_rgb(cache, index) -> np.ndarray:
    """The (S, S, 3) RGB crop 388e206's cache stored for ``index``: the RGB bytes of today's RGBA crop (cache version
    2 stores a fourth byte). Not part of 388e206: ``loader_speed.py`` times this conversion apart."""
    return cv2.cvtColor(np.asarray(cache.crop(index)), cv2.COLOR_RGBA2RGB)


def reference_warped_crop(dataset, index, matrix, source=None) -> np.ndarray:
    """``TopDownDataset.warped_crop`` as it was (``CropCache.warp`` with its ``compose``); ``source``: the cached
    RGB crop (:func:`cached_rgb`) when already at hand."""
    cache = dataset.crop_cache
    if cache is not None:
        inner = cache.to_image[index]
        composed = matrix[:, :2] @ inner + np.array([[0.0, 0.0, matrix[0, 2]], [0.0, 0.0, matrix[1, 2]]])
        return reference_warp(cached_rgb(cache, index) if source is None else source, composed, dataset.input_size)
    return reference_warp(read_image(dataset.samples[index].image_path), matrix, dataset.input_size)


def reference_color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    if amount <= 0:
        return image
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, size=3)
    img = image.astype(np.float32)
    np.multiply(img, brightness, out=img, casting="same_kind")
    mean = img.mean()
    img -= mean
    out = np.multiply(img, contrast)  # float64 from here on
    out += mean
    gray = out[..., 0] + out[..., 1]
    gray += out[..., 2]
    gray /= 3
    gray = gray[..., None]
    out -= gray
    out *= saturation
    out += gray
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def reference_normalize_image(crop: np.ndarray) -> np.ndarray:
    if crop.dtype != np.uint8:
        return ((crop.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()
    height, width = crop.shape[:2]
    out = np.empty((3, height, width), np.float32)
    for channel in range(3):
        np.take(_NORMALIZED_LEVELS[channel], crop[..., channel], out=out[channel])
    return out


def reference_render_gaussians(centers, heatmap_size, sigma, window=None) -> np.ndarray:
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    w, h = heatmap_size
    dx = np.arange(w, dtype=np.float64)[None, :] - centers[:, :1]
    dy = np.arange(h, dtype=np.float64)[None, :] - centers[:, 1:]
    gx = np.exp(-dx ** 2 / (2 * sigma ** 2))
    gy = np.exp(-dy ** 2 / (2 * sigma ** 2))
    if window is not None:
        gx[np.abs(dx) > window] = 0.0
        gy[np.abs(dy) > window] = 0.0
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def reference_encode(codec, keypoints: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
    """``HeatmapCodec.encode`` as it was: every kept joint rendered over the whole map."""
    keypoints, labelled = check_person(keypoints, visible)
    w, h = codec.heatmap_size
    centers = np.where(labelled[:, None], codec.input_to_heatmap(np.nan_to_num(keypoints)), 0.0)
    if not codec.unbiased:
        centers = np.floor(centers + 0.5)
    reach = 3 * codec.sigma
    inside = ((centers + reach >= 0) & (centers - reach <= np.array([w - 1, h - 1]))).all(axis=1)
    weights = (labelled & inside).astype(np.float32)
    heatmaps = np.zeros((len(keypoints), h, w), dtype=np.float32)
    keep = weights > 0
    if keep.any():
        heatmaps[keep] = reference_render_gaussians(centers[keep], codec.heatmap_size, codec.sigma,
                                                    window=None if codec.unbiased else reach)
    return {"heatmaps": heatmaps, "weights": weights}


def reference_item(dataset, index: int) -> dict:
    """``TopDownDataset.__getitem__`` as it was, on ``dataset`` (a current TopDownDataset with a HeatmapCodec)."""
    self = dataset
    sample = self.samples[index]
    rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
    matrix, flip = reference_crop(self, sample, rng)
    ok = 1
    try:
        crop = reference_warped_crop(self, index, matrix)
    except DataError as err:
        log.warning("skipping unreadable image: %s", err)
        crop, ok = np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8), 0
    keypoints = sample.keypoints.astype(np.float32).copy()
    keypoints[:, :2] = reference_affine_points(keypoints[:, :2], matrix)
    if flip:
        keypoints = keypoints[self.flip_index]
    visible = (keypoints[:, 2] > 0) & (ok == 1)
    inside = ((keypoints[:, 0] >= 0) & (keypoints[:, 0] <= self.input_size[0] - 1)
              & (keypoints[:, 1] >= 0) & (keypoints[:, 1] <= self.input_size[1] - 1))
    if rng is not None:
        crop = reference_color_jitter(crop, rng, self.augment.color)
        if self.augment.aid_prob > 0 and rng.random() < self.augment.aid_prob:
            from posekit.data.augment import information_dropping
            crop = information_dropping(crop, np.where((visible & inside)[:, None], keypoints, 0), rng, prob=1.0)
    targets = reference_encode(self.codec, keypoints[:, :2], visible.astype(np.float32))
    item = {"image": torch.from_numpy(reference_normalize_image(crop)),
            "keypoints": torch.from_numpy(keypoints),
            "matrix": torch.from_numpy(matrix.astype(np.float32)),
            "index": index, "ok": ok}
    item.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
    return item


def reference_collate(items: list[dict]) -> dict:
    """The trainer's collate as it was."""
    return torch.utils.data.default_collate(items)
