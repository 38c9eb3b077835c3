"""Person crops with margin, decoded once: a memory-mapped uint8 cache that training warps its crops from.

Decoding a JPEG costs more than everything else a training item needs, and every epoch decodes every image
again. The cache stores, per sample, the square image region that holds **every** crop the augmentation can
draw for it (largest scale, largest shift, any rotation up to the largest: :func:`covering_half_side`), black
outside the image as :func:`~posekit.data.transforms.warp_image` makes it, resampled so that the unaugmented
crop maps to ``oversample`` x the model's input size (area interpolation when that shrinks the region, native
resolution otherwise: never enlarged). A training item then warps that small crop with the same matrix
composed with the cache's own (:meth:`~posekit.data.dataset.TopDownDataset.source_matrices`); the random draws
are untouched, so keypoints, targets and matrices are the same as without the cache and only the pixels differ
by resampling. Crops are stored RGBA (the fourth byte 0): OpenCV warps 4-channel images about 1.6x faster than
3-channel ones, with the same RGB bytes (:func:`~posekit.data.transforms.warp_image` takes either), for a third
more bytes.

Layout: ``CACHE_DIR/<key>/`` with ``crops.u8`` (every crop's bytes back to back, read through ``np.memmap``:
the page cache holds what is used, the process never loads the file), ``index.npz`` (per sample: byte offset,
stored side, region origin and side in image pixels) and ``meta.json`` (version, settings, sample count,
unreadable images and the data in short: image count, first image; caches built before that field lack it).
``key`` (:func:`cache_key`) hashes the data (image paths, file sizes and mtimes, boxes) and the crop settings
(:class:`CropSettings`), so a change of either makes a new cache; the old one is left for whoever still uses
it (``posekit cache list`` shows the caches, ``posekit cache prune`` reclaims the space:
:mod:`posekit.data.cache_admin`). ``CACHE_DIR`` is ``cache_dir``, else ``$POSEKIT_CACHE``, else
``~/.cache/posekit/crops``. A cache is built in a temporary folder and renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from posekit.config import DEFAULT_PADDING
from posekit.data.io import read_image
from posekit.data.sample import DataError, Sample
from posekit.data.transforms import AugmentConfig, box_to_center_scale

log = logging.getLogger(__name__)

__all__ = ["CropSettings", "CropCache", "open_crop_cache", "training_crop_cache", "build_crop_cache", "cache_key", "default_cache_dir", "resolve_cache_dir",
           "covering_half_side", "cache_region", "OVERSAMPLE", "CACHE_VERSION"]

#: hex digits of a cache key (:func:`cache_key`), the name of its folder
KEY_CHARS = 24
#: bump when the layout or the resampling changes: old caches then stop matching (2: RGBA crops)
CACHE_VERSION = 2
#: bytes per cached pixel: RGB and an unused fourth byte, for OpenCV's faster 4-channel warp
CHANNELS = 4
#: the unaugmented crop is stored at this multiple of the input size (capped at the image's own resolution)
OVERSAMPLE = 1.5
#: cache pixels of margin around the covering square, for the bilinear footprint of the final warp
MARGIN_PX = 2


@dataclass(frozen=True)
class CropSettings:
    """What decides the cached pixels: input size (W, H), box padding, the augmentation's largest extents."""

    input_size: tuple[int, int]
    padding: float = DEFAULT_PADDING
    max_scale: float = 1.0        # largest crop size factor (1 + AugmentConfig.scale)
    max_shift: float = 0.0        # largest centre shift, a fraction of the crop size
    max_rotation: float = 0.0     # largest rotation, degrees (0 when rotations are never drawn)
    oversample: float = OVERSAMPLE

    @classmethod
    def for_training(cls, input_size, padding: float, augment: AugmentConfig | None, *,
                     oversample: float = OVERSAMPLE) -> "CropSettings":
        """The settings of a training dataset with ``augment`` (None: no augmentation)."""
        a = augment
        return cls(input_size=(int(input_size[0]), int(input_size[1])), padding=float(padding),
                   max_scale=1.0 + max(0.0, a.scale) if a else 1.0, max_shift=abs(a.shift) if a else 0.0,
                   max_rotation=min(abs(a.rotation), 180.0) if a and a.rotation_prob > 0 else 0.0,
                   oversample=float(oversample))

    def covers(self, other: "CropSettings") -> bool:
        """True when a cache made with these settings holds every crop ``other`` can draw."""
        return (tuple(self.input_size) == tuple(other.input_size) and self.padding == other.padding
                and self.max_scale >= other.max_scale and self.max_shift >= other.max_shift
                and self.max_rotation >= other.max_rotation)


def _largest_projection(a: float, b: float, max_angle_deg: float) -> float:
    """max over |t| <= max_angle of a |cos t| + b |sin t| (a, b >= 0): the extent of a rotated side pair."""
    peak = math.atan2(b, a)  # where a cos t + b sin t is largest
    t = min(math.radians(max_angle_deg), peak)
    return a * math.cos(t) + b * math.sin(t)


def covering_half_side(size: np.ndarray, settings: CropSettings) -> float:
    """Half the side (image px) of the square around the box centre that holds every crop the augmentation
    can draw for a box whose unaugmented crop is ``size`` (2,) ``(w, h)``: shifted by up to ``max_shift`` x
    size, scaled by up to ``max_scale``, rotated by up to ``max_rotation``."""
    w, h = float(size[0]), float(size[1])
    s, r = settings.max_scale, settings.max_rotation
    half_x = settings.max_shift * w + 0.5 * s * _largest_projection(w, h, r)
    half_y = settings.max_shift * h + 0.5 * s * _largest_projection(h, w, r)
    return max(half_x, half_y)


def cache_region(box: np.ndarray, settings: CropSettings) -> tuple[np.ndarray, int, int]:
    """Where a sample's cached crop comes from: (origin (2,) int x0, y0 of the square region in image pixels,
    region side in image pixels, stored side in cache pixels). Needs the box only, not the image."""
    w, h = settings.input_size
    center, size = box_to_center_scale(box, w / h, settings.padding)
    # never enlarge: an image smaller than the oversampled crop is stored at its own resolution
    scale = min(1.0, settings.oversample * w / float(size[0]))
    half = covering_half_side(size, settings) + MARGIN_PX / scale
    origin = np.floor(center - half).astype(np.int64)
    side = int(math.ceil(2 * half)) + 1
    stored = max(1, int(round(side * scale)))
    return origin, side, stored


def cache_to_image_matrix(origin: np.ndarray, side: int, stored: int) -> np.ndarray:
    """(2, 3) cache pixels -> image pixels, in cv2.resize's pixel-centre convention (the inverse of
    ``u = (x - x0 + 0.5) * k - 0.5``, ``k = stored / side``): ``x = (u + 0.5) / k + x0 - 0.5``."""
    k = stored / side
    return np.array([[1 / k, 0.0, 0.5 / k + origin[0] - 0.5], [0.0, 1 / k, 0.5 / k + origin[1] - 0.5]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``outer`` after (2, 3) ``inner`` -> (2, 3); or (N, 2, 3) after (N, 2, 3) -> (N, 2, 3), slice by
    slice (each pair gets the bits it gets alone)."""
    shift = np.zeros(np.broadcast_shapes(outer.shape, inner.shape))
    shift[..., 2] = outer[..., 2]
    return np.matmul(outer[..., :2], inner) + shift


def cut_region(image: np.ndarray, origin: np.ndarray, side: int, stored: int) -> np.ndarray:
    """(H, W, 3) uint8 image -> (stored, stored, :data:`CHANNELS`): the square ``side`` region at ``origin`` (black
    outside the image, the fourth byte 0), shrunk with area interpolation when ``stored < side`` (per channel:
    the RGB bytes are those of a 3-channel resize)."""
    region = np.zeros((side, side, CHANNELS), np.uint8)
    height, width = image.shape[:2]
    x0, y0 = int(origin[0]), int(origin[1])
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx0 < sx1 and sy0 < sy1:
        region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0, :3] = image[sy0:sy1, sx0:sx1]
    if stored == side:
        return region
    return cv2.resize(region, (stored, stored), interpolation=cv2.INTER_AREA)


def _file_fingerprint(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def cache_key(samples: list[Sample], settings: CropSettings) -> str:
    """A hex digest of the cache version, ``settings`` and, per sample, its image path, file size and mtime
    and box: two datasets share a cache only when all of these agree."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, **asdict(settings)}, sort_keys=True).encode())
    for sample in samples:
        digest.update(f"{sample.image_path}\0{_file_fingerprint(sample.image_path)}\0".encode())
        digest.update(np.asarray(sample.box, dtype=np.float64).tobytes())
    return digest.hexdigest()[:KEY_CHARS]


def default_cache_dir() -> Path:
    """``$POSEKIT_CACHE`` when set, else ``~/.cache/posekit/crops``."""
    return Path(os.environ.get("POSEKIT_CACHE") or Path.home() / ".cache" / "posekit" / "crops")


def resolve_cache_dir(cache_dir=None) -> Path:
    """``cache_dir`` when given, else :func:`default_cache_dir`."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def _fill(samples: list[Sample], indices: list[int], index: dict, crops: np.memmap) -> dict[int, str]:
    """Decode one image (every index shares its path) and write each of its samples' crops into ``crops``;
    returns {index: why} for an unreadable image."""
    try:
        image = read_image(samples[indices[0]].image_path)
    except DataError as err:
        return {i: err.what for i in indices}
    for i in indices:
        side, stored = int(index["sides"][i]), int(index["stored"][i])
        start = int(index["offsets"][i])
        crop = cut_region(image, index["origins"][i], side, stored)
        crops[start:start + crop.size] = crop.reshape(-1)
    return {}


def build_crop_cache(samples: list[Sample], settings: CropSettings, directory, *, threads: int = 2) -> Path:
    """Write the cache of ``samples`` to ``directory`` (made here, atomically: built next to it, then renamed).
    Each image is decoded once, however many people it holds; ``threads`` decode in parallel (PIL and
    OpenCV release the GIL). Unreadable images are recorded, not raised. Returns ``directory``."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    regions = [cache_region(s.box, settings) for s in samples]
    stored = np.array([r[2] for r in regions], np.int64)
    index = {"origins": np.stack([r[0] for r in regions]).astype(np.int64) if regions else np.zeros((0, 2), np.int64),
             "sides": np.array([r[1] for r in regions], np.int64), "stored": stored,
             "offsets": np.concatenate([[0], np.cumsum(stored * stored * CHANNELS)[:-1]]).astype(np.int64)}
    total = int((stored * stored * CHANNELS).sum())
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        crops = np.memmap(tmp / "crops.u8", dtype=np.uint8, mode="w+", shape=(max(1, total),))
        by_image: dict[str, list[int]] = {}
        for i, sample in enumerate(samples):
            by_image.setdefault(sample.image_path, []).append(i)
        unreadable: dict[int, str] = {}
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for bad in pool.map(lambda group: _fill(samples, group, index, crops), by_image.values()):
                unreadable.update(bad)
        crops.flush()
        del crops
        np.savez(tmp / "index.npz", **index)
        meta = {"version": CACHE_VERSION, "settings": asdict(settings), "samples": len(samples), "bytes": total,
                "unreadable": {str(i): why for i, why in sorted(unreadable.items())},
                "data": {"images": len(by_image), "first_image": samples[0].image_path if samples else None}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, directory)
        except OSError:  # another process finished the same cache first: keep theirs
            if not (directory / "meta.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


class CropCache:
    """A built cache, opened read-only. Pickles without its memory map (DataLoader workers reopen it)."""

    def __init__(self, directory, samples: list[Sample]):
        self.directory = Path(directory)
        self.image_paths = [s.image_path for s in samples]
        meta = json.loads((self.directory / "meta.json").read_text())
        if meta["samples"] != len(samples):
            raise ValueError(f"crop cache {self.directory} holds {meta['samples']} samples, not {len(samples)}")
        self.settings = CropSettings(**{**meta["settings"], "input_size": tuple(meta["settings"]["input_size"])})
        self.unreadable = {int(i): why for i, why in meta["unreadable"].items()}
        with np.load(self.directory / "index.npz") as index:
            self.offsets, self.stored = index["offsets"], index["stored"]
            self.to_image = np.stack([cache_to_image_matrix(o, s, t) for o, s, t in
                                      zip(index["origins"], index["sides"], index["stored"])]) \
                if len(self.offsets) else np.zeros((0, 2, 3))  # (N, 2, 3) cache -> image pixels
        self._crops = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_crops": None}

    @property
    def crops(self) -> np.memmap:
        if self._crops is None:  # opened on first use, in whichever process reads
            self._crops = np.memmap(self.directory / "crops.u8", dtype=np.uint8, mode="r")
        return self._crops

    def crop(self, index: int) -> np.ndarray:
        """Sample ``index``'s stored crop: (S, S, :data:`CHANNELS`) uint8 RGBA, a view of the memory map. DataError
        (naming the image) when the image could not be read while the cache was built."""
        if index in self.unreadable:
            raise DataError(self.image_paths[index], self.unreadable[index])
        side, start = int(self.stored[index]), int(self.offsets[index])
        return self.crops[start:start + side * side * CHANNELS].reshape(side, side, CHANNELS)


def open_crop_cache(samples: list[Sample], settings: CropSettings, cache_dir=None) -> CropCache:
    """The cache of ``samples`` under ``settings`` in ``cache_dir`` (default :func:`default_cache_dir`),
    built first when no cache with their key exists."""
    directory = resolve_cache_dir(cache_dir)
    path = directory / cache_key(samples, settings)
    if not (path / "meta.json").exists():
        log.info("building the crop cache of %d samples in %s", len(samples), path)
        build_crop_cache(samples, settings, path, threads=min(2, os.cpu_count() or 1))
    return CropCache(path, samples)


def training_crop_cache(samples: list[Sample], input_size, padding: float, augment: AugmentConfig | None,
                        cache_dir=None) -> CropCache:
    """:func:`open_crop_cache` with the settings of a training dataset (:meth:`CropSettings.for_training`)."""
    return open_crop_cache(samples, CropSettings.for_training(input_size, padding, augment), cache_dir)
