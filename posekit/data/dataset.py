"""Top-down training/evaluation dataset: Samples -> (image tensor, codec targets, crop metadata), item by item
or a whole batch at once."""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posekit.config import DEFAULT_PADDING
from posekit.data.io import read_image
from posekit.data.sample import DataError, Sample
from posekit.data.transforms import (UNIFORMS, AugmentConfig, PixelScratch, affine_points, augmentation_draws,
                                     augmented_crop_matrices, draw_uniforms, draws_from_uniforms, jittered_planes,
                                     normalize_planes, warp_image)

log = logging.getLogger(__name__)

__all__ = ["TopDownDataset", "BatchedView", "check_crop_cache"]


def check_crop_cache(cache, samples: list[Sample], input_size, padding: float, augment: AugmentConfig | None) -> None:
    """ValueError unless ``cache`` holds ``samples`` and every crop this input size, padding and augmentation
    (None: none) can draw."""
    from posekit.data.crop_cache import CropSettings
    wanted = CropSettings.for_training(input_size, padding, augment)
    if len(cache) != len(samples) or not cache.settings.covers(wanted):
        raise ValueError(f"the crop cache {cache.directory} ({len(cache)} samples, {cache.settings}) does not cover "
                         f"{len(samples)} samples with {wanted}")


#: (process id, threads) -> the thread pool :meth:`TopDownDataset.images` uses in that process (a forked DataLoader
#: worker has none of its parent's threads, so it must not reuse the parent's pool)
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="posekit-crops")
    return _POOLS[key]


class _Laps:
    """Adds the CPU seconds since the previous lap to ``profile[name]`` (nothing when ``profile`` is None)."""

    def __init__(self, profile: dict | None):
        self.profile, self.start = profile, time.process_time()

    def __call__(self, name: str) -> None:
        if self.profile is not None:
            now = time.process_time()
            self.profile[name] = self.profile.get(name, 0.0) + now - self.start
            self.start = now


class TopDownDataset(Dataset):
    """Crops each person box to ``input_size`` and encodes its keypoints with ``codec``.

    Items are dicts: ``image`` (3, H, W) float32, the codec's targets (``heatmaps`` (K, h, w) + ``weights``
    (K,) from a HeatmapCodec; ``coords`` (K, 2) in the codec's target units + ``weights`` (K,) from a
    RegressionCodec or IntegralCodec), ``keypoints`` (K, 3) in crop pixels, ``matrix`` (2, 3) image -> crop, ``index``,
    and ``ok`` (0 when the image could not be read: the item is then black with zero weights, so one
    bad file costs one sample, not the epoch; the trainer reports it by name).
    Randomness comes from (seed, epoch, index): the same seed replays the same augmentations.
    :meth:`batch` makes the collated items of many indices at once (what the trainer loads); an item is a batch of one.

    ``crop_cache`` (a :class:`~posekit.data.crop_cache.CropCache` of these samples, made with this dataset's
    input size, padding and augmentation) replaces decoding the image with warping its cached person crop:
    the random draws, keypoints, targets and matrices stay the same, only the pixels are resampled once more.
    ``threads``: how many threads make a batch's crops (None: as many as torch's intra-op threads; DataLoader
    workers run with one).
    """

    def __init__(self, samples: list[Sample], codec, input_size: tuple[int, int], *, flip_index: np.ndarray,
                 train: bool = False, augment: AugmentConfig | None = None, seed: int = 0,
                 padding: float = DEFAULT_PADDING, crop_cache=None, threads: int | None = None):
        self.samples = samples
        #: threads that make a batch's crops (:meth:`images`); None: torch's intra-op threads at the time
        self.threads = threads
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
        """Crop parameters for one sample, drawing only the geometric augmentation from ``rng`` (None: none):
        returns (matrix (2, 3), flip)."""
        draws = None if rng is None else augmentation_draws(rng, self.augment, color=False)[None]
        matrices, flips = augmented_crop_matrices(np.asarray(sample.box)[None], draws, self.input_size, self.padding)
        return matrices[0], bool(flips[0])

    def source_image(self, index: int) -> np.ndarray:
        """The uint8 pixels sample ``index`` is warped from: its cached crop (S, S, 4) RGBA when there is a crop
        cache, else the decoded image (H, W, 3); DataError when the image cannot be read."""
        if self.crop_cache is not None:
            return self.crop_cache.crop(index)
        return read_image(self.samples[index].image_path)

    def source_matrices(self, indices, matrices: np.ndarray) -> np.ndarray:
        """(N, 2, 3) image -> crop matrices of ``indices`` -> source -> crop matrices (:meth:`source_image`'s
        pixels): composed with the crop cache's own, when there is one."""
        if self.crop_cache is None:
            return matrices
        from posekit.data.crop_cache import compose
        return compose(matrices, self.crop_cache.to_image[list(indices)])

    def warped_crop(self, index: int, matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 crop of sample ``index`` through ``matrix`` (2, 3) image -> crop pixels (into ``out`` when
        given), from the crop cache when there is one; DataError when the image cannot be read."""
        return warp_image(self.source_image(index), self.source_matrices([index], matrix[None])[0], self.input_size,
                          out=out)

    def __getitem__(self, index: int) -> dict:
        batch = self.batch([index])
        return {name: int(value[0]) if name in ("index", "ok") else value[0] for name, value in batch.items()}

    # -- a whole batch, stage by stage ------------------------------------------------------------
    def batch(self, indices, profile: dict | None = None) -> dict:
        """The items of ``indices`` collated: the tensors ``default_collate([self[i] for i in indices])`` would give
        (``image`` (N, 3, H, W), ``keypoints`` (N, K, 3), ``matrix`` (N, 2, 3), ``index`` and ``ok`` (N,) int64, the
        codec's targets with a leading N), bit for bit.

        Made one stage at a time for the whole batch rather than item by item: the geometry, keypoints and targets
        are a few array operations for all N, the per-crop work (warp, colour jitter, normalisation) reuses one set
        of buffers and writes straight into the batch (on :attr:`threads` threads), and each stage's code and tables
        stay hot in the CPU's caches. Every sample still draws from its own generator in the old order (crop,
        jitter, AID). ``profile``: a dict that gets the CPU seconds of each stage added (benchmarks/loader_speed.py).
        """
        lap = _Laps(profile)
        indices = [int(i) for i in indices]
        samples = [self.samples[i] for i in indices]
        rngs = [np.random.default_rng([self.seed, self.epoch, i]) for i in indices] if self.train else None
        lap("random generator")
        draws = None
        if rngs:
            uniforms = np.zeros((len(indices), UNIFORMS))
            for rng, row in zip(rngs, uniforms):
                draw_uniforms(rng, self.augment, row)
            draws = draws_from_uniforms(uniforms, self.augment)
        matrices, flips = augmented_crop_matrices(np.stack([s.box for s in samples]), draws, self.input_size,
                                                  self.padding)
        lap("crop parameters")
        keypoints = np.stack([s.keypoints for s in samples]).astype(np.float32)
        keypoints[:, :, :2] = affine_points(keypoints[:, :, :2], matrices)
        keypoints[flips] = keypoints[flips][:, self.flip_index]
        lap("keypoints")
        images, ok = self.images(indices, matrices, draws, rngs, keypoints, lap)
        visible = (keypoints[:, :, 2] > 0) & ok[:, None]
        targets = self.codec.encode_batch(keypoints[:, :, :2], visible.astype(np.float32))
        lap("heatmap targets")
        batch = {"image": images, "keypoints": torch.from_numpy(keypoints),
                 "matrix": torch.from_numpy(matrices.astype(np.float32)),
                 "index": torch.tensor(indices, dtype=torch.int64), "ok": torch.from_numpy(ok.astype(np.int64))}
        batch.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
        lap("batch tensors")
        return batch

    def images(self, indices: list[int], matrices: np.ndarray, draws: np.ndarray | None, rngs, keypoints: np.ndarray,
               lap) -> tuple[torch.Tensor, np.ndarray]:
        """The model input of a batch: (N, 3, H, W) float32 images and ok (N,) bool (False, and a black crop,
        where the image cannot be read), from ``matrices`` (N, 2, 3) image -> crop, the ``draws`` (None without
        ``rngs``) and the crop-pixel ``keypoints`` (N, K, 3) (for AID).

        With more than one :attr:`threads` the samples are split into that many contiguous runs done in parallel:
        OpenCV and NumPy release the GIL in their loops, and in the training process (workers 0) torch's own
        threads are idle while a batch is made. Every sample gets its own draws and buffers' worth of work, so
        the bits do not depend on the split."""
        w, h = self.input_size
        images = torch.empty((len(indices), 3, h, w), dtype=torch.float32)
        out, ok = images.numpy(), np.ones(len(indices), bool)
        sources = self.source_matrices(indices, matrices)
        threads = max(1, min(len(indices), self.threads or torch.get_num_threads()))

        def run(rows, laps):
            self.images_into(out, ok, rows, [indices[j] for j in rows], sources[rows], draws, rngs, keypoints, laps)

        if threads == 1:
            run(np.arange(len(indices)), lap)
            return images, ok
        for future in [_pool(threads).submit(run, rows, _Laps(None))
                       for rows in np.array_split(np.arange(len(indices)), threads)]:
            future.result()
        lap(f"warp + colour jitter + normalisation ({threads} threads)")
        return images, ok

    def images_into(self, out: np.ndarray, ok: np.ndarray, rows: np.ndarray, indices: list[int], sources: np.ndarray,
                    draws: np.ndarray | None, rngs, keypoints: np.ndarray, lap) -> None:
        """Rows ``rows`` of a batch: warp samples ``indices`` through ``sources`` (one (2, 3) source -> crop matrix
        each), jitter them with their ``draws`` (columns 5-7), AID when its coin (drawn now from the sample's
        generator) says so, normalise into ``out[rows]`` (N, 3, H, W) float32, and clear ``ok`` where the image
        cannot be read."""
        w, h = self.input_size
        crops, rgba = np.empty((len(rows), h, w, 3), np.uint8), np.empty((h, w, 4), np.uint8)
        scratch = PixelScratch(h, w)
        for crop, index, source, j in zip(crops, indices, sources, rows):
            try:
                warp_image(self.source_image(index), source, self.input_size, out=crop, rgba=rgba)
            except DataError as err:
                log.warning("skipping unreadable image: %s", err)
                crop[:], ok[j] = 0, False
        lap("cache read + warp")
        jitter = rngs is not None and self.augment.color > 0
        aid = rngs is not None and self.augment.aid_prob > 0
        for crop, j in zip(crops, rows):
            planes = jittered_planes(crop, draws[j, 5:8], scratch) if jitter else scratch.split(crop)
            if aid and rngs[j].random() < self.augment.aid_prob:
                visible = (keypoints[j, :, 2] > 0) & ok[j]
                planes = scratch.split(self.drop_information(planes, keypoints[j], visible, rngs[j]))
            normalize_planes(planes, out=out[j])
        lap("colour jitter + normalisation")

    def drop_information(self, planes: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, rng) -> np.ndarray:
        """AID on one jittered crop: (3, H, W) uint8 planes -> (H, W, 3) uint8, around its visible joints that lie
        inside the crop (keypoints (K, 3) crop pixels, visible (K,) bool)."""
        from posekit.data.augment import information_dropping
        inside = ((keypoints[:, 0] >= 0) & (keypoints[:, 0] <= self.input_size[0] - 1)
                  & (keypoints[:, 1] >= 0) & (keypoints[:, 1] <= self.input_size[1] - 1))
        return information_dropping(cv2.merge(list(planes)), np.where((visible & inside)[:, None], keypoints, 0), rng,
                                    prob=1.0)


class BatchedView(Dataset):
    """``dataset`` indexed by lists of indices: ``view[indices]`` is ``dataset.batch(indices)``. For a DataLoader with
    ``batch_size=None`` and a BatchSampler: one call per batch, and no collate."""

    def __init__(self, dataset: TopDownDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices) -> dict:
        return self.dataset.batch(indices)
