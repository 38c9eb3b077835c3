"""Top-down training/evaluation dataset: one Sample -> (image tensor, codec targets, crop metadata)."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posekit.config import DEFAULT_PADDING
from posekit.data.io import read_image
from posekit.data.sample import DataError, Sample
from posekit.data.transforms import (AugmentConfig, affine_points, box_to_center_scale, color_jitter_planes, crop_matrix,
                                     normalize_planes, random_crop_params, warp_image)

log = logging.getLogger(__name__)


def check_crop_cache(cache, samples: list[Sample], input_size, padding: float, augment: AugmentConfig | None) -> None:
    """ValueError unless ``cache`` holds ``samples`` and every crop this input size, padding and augmentation
    (None: none) can draw."""
    from posekit.data.crop_cache import CropSettings
    wanted = CropSettings.for_training(input_size, padding, augment)
    if len(cache) != len(samples) or not cache.settings.covers(wanted):
        raise ValueError(f"the crop cache {cache.directory} ({len(cache)} samples, {cache.settings}) does not cover "
                         f"{len(samples)} samples with {wanted}")


class TopDownDataset(Dataset):
    """Crops each person box to ``input_size`` and encodes its keypoints with ``codec``.

    Items are dicts: ``image`` (3, H, W) float32, the codec's targets (``heatmaps`` (K, h, w) + ``weights``
    (K,) from a HeatmapCodec; ``coords`` (K, 2) in the codec's target units + ``weights`` (K,) from a
    RegressionCodec or IntegralCodec), ``keypoints`` (K, 3) in crop pixels, ``matrix`` (2, 3) image -> crop, ``index``,
    and ``ok`` (0 when the image could not be read: the item is then black with zero weights, so one
    bad file costs one sample, not the epoch; the trainer reports it by name).
    Randomness comes from (seed, epoch, index): the same seed replays the same augmentations.

    ``crop_cache`` (a :class:`~posekit.data.crop_cache.CropCache` of these samples, made with this dataset's
    input size, padding and augmentation) replaces decoding the image with warping its cached person crop:
    the random draws, keypoints, targets and matrices stay the same, only the pixels are resampled once more.
    """

    def __init__(self, samples: list[Sample], codec, input_size: tuple[int, int], *, flip_index: np.ndarray,
                 train: bool = False, augment: AugmentConfig | None = None, seed: int = 0,
                 padding: float = DEFAULT_PADDING, crop_cache=None):
        self.samples = samples
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.flip_index = np.asarray(flip_index)
        self.train = train
        self.augment = augment or AugmentConfig()
        self.seed = seed
        self.padding = padding
        self.epoch = 0
        if crop_cache is not None:
            check_crop_cache(crop_cache, samples, self.input_size, padding, self.augment if train else None)
        self.crop_cache = crop_cache

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def crop(self, sample: Sample, rng: np.random.Generator | None):
        """Crop parameters for one sample: returns (matrix (2, 3), flip)."""
        w, h = self.input_size
        center, size = box_to_center_scale(sample.box, w / h, self.padding)
        rotation, flip = 0.0, False
        if rng is not None:
            p = random_crop_params(rng, self.augment)
            center = center + p["shift"] * size
            size = size * p["scale"]
            rotation, flip = p["rotation"], p["flip"]
        return crop_matrix(center, size, self.input_size, rotation, flip), flip

    def warped_crop(self, index: int, matrix: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 crop of sample ``index`` through ``matrix`` (2, 3) image -> crop pixels, from the
        crop cache when there is one; DataError when the image cannot be read."""
        if self.crop_cache is not None:
            return self.crop_cache.warp(index, matrix, self.input_size)
        return warp_image(read_image(self.samples[index].image_path), matrix, self.input_size)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        matrix, flip = self.crop(sample, rng)
        ok = 1
        try:
            crop = self.warped_crop(index, matrix)
        except DataError as err:
            log.warning("skipping unreadable image: %s", err)
            crop, ok = np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8), 0

        keypoints = sample.keypoints.astype(np.float32).copy()
        keypoints[:, :2] = affine_points(keypoints[:, :2], matrix)
        if flip:
            keypoints = keypoints[self.flip_index]
        visible = (keypoints[:, 2] > 0) & (ok == 1)
        inside = ((keypoints[:, 0] >= 0) & (keypoints[:, 0] <= self.input_size[0] - 1)
                  & (keypoints[:, 1] >= 0) & (keypoints[:, 1] <= self.input_size[1] - 1))
        # the colour jitter hands over channel planes, which normalisation reads without interleaving them again
        planes = color_jitter_planes(crop, rng, self.augment.color) if rng is not None else cv2.split(crop)
        if rng is not None and self.augment.aid_prob > 0 and rng.random() < self.augment.aid_prob:
            from posekit.data.augment import information_dropping
            crop = information_dropping(cv2.merge(planes), np.where((visible & inside)[:, None], keypoints, 0), rng,
                                        prob=1.0)
            planes = cv2.split(crop)
        targets = self.codec.encode(keypoints[:, :2], visible.astype(np.float32))
        item = {"image": torch.from_numpy(normalize_planes(planes)),
                "keypoints": torch.from_numpy(keypoints),
                "matrix": torch.from_numpy(matrix.astype(np.float32)),
                "index": index, "ok": ok}
        item.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
        return item
