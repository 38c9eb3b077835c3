"""Gaussian heatmap codec: keypoints in the model-input frame <-> (K, h, w) heatmaps.

Coordinate frames (pixel centres at integer coordinates in both):

* default (``unbiased=False``, SimpleBaseline / MSRA): ``x_hm = x_in / stride`` with
  ``stride = W / w`` (and ``H / h`` for y), and the Gaussian centre is rounded to the nearest heatmap
  pixel, so the target carries up to half a heatmap pixel of quantisation error;
* ``unbiased=True`` (UDP, Huang et al. CVPR 2020, with DARK's sub-pixel Gaussian):
  ``x_hm = x_in * (w - 1) / (W - 1)`` -- the first and last pixel centres of the input and the heatmap
  coincide -- and the Gaussian is centred on the exact sub-pixel location.

Decoding maps back with the inverse of the same rule, so an encode -> decode round trip is unbiased in
both modes up to the decoder's own error.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import CODECS, Codec, check_person
from .dark import _to_numpy, dark_decode, heatmap_peaks

__all__ = ["HeatmapCodec", "argmax_decode", "render_gaussians", "gaussian_profile", "integer_centre_patch",
           "paste_patches"]

_DECODERS = ("dark", "argmax")


def _as_size(value, name: str) -> tuple[int, int]:
    try:
        w, h = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (width, height), got {value!r}") from None
    if int(w) != w or int(h) != h or w < 1 or h < 1:
        raise ValueError(f"{name} must hold two positive integers, got {value!r}")
    return int(w), int(h)


def gaussian_profile(offsets: np.ndarray, sigma: float) -> np.ndarray:
    """The 1-D Gaussian ``exp(-d^2 / (2 sigma^2))`` of float64 ``offsets`` (any shape), float64."""
    return np.exp(-offsets ** 2 / (2 * sigma ** 2))


@functools.lru_cache(maxsize=16)
def integer_centre_patch(sigma: float, window: float) -> np.ndarray:
    """(2r + 1, 2r + 1) float32, read-only and cached, ``r = floor(window)``: what :func:`render_gaussians` draws
    around an integer centre inside its ``window`` -- the same float64 profiles, the same float64 product rounded
    once to float32. Every integer centre gets these same values, so a biased target pastes this patch instead of
    rendering the whole map."""
    reach = int(np.floor(window))
    profile = gaussian_profile(np.arange(-reach, reach + 1, dtype=np.float64), sigma)
    patch = (profile[:, None] * profile[None, :]).astype(np.float32)
    patch.flags.writeable = False
    return patch


def paste_patches(heatmaps: np.ndarray, centers: np.ndarray, patch: np.ndarray, joints) -> None:
    """Write ``patch`` (2r + 1, 2r + 1) centred on integer ``centers[k]`` ``(x, y)`` into ``heatmaps[k]`` (h, w) for
    each k in ``joints``, cut at the map's edges; every such patch must overlap its map. The cut bounds of all
    joints are computed in one go; only the slice copies run per joint (faster than one scatter of all patches,
    whose index arrays cost more than the copies)."""
    joints = np.asarray(joints, dtype=np.int64).reshape(-1)
    reach = patch.shape[0] // 2
    _, h, w = heatmaps.shape
    at = np.asarray(centers)[joints].astype(np.int64)  # (J, 2) x, y, truncated as int() would
    low = np.maximum(at - reach, 0)
    high = np.minimum(at + reach + 1, [w, h])
    bounds = np.concatenate([low, high, low - at + reach, high - at + reach], axis=1).tolist()
    for k, (x0, y0, x1, y1, px0, py0, px1, py1) in zip(joints.tolist(), bounds):
        heatmaps[k, y0:y1, x0:x1] = patch[py0:py1, px0:px1]


def render_gaussians(centers: np.ndarray, heatmap_size: tuple[int, int], sigma: float,
                     window: float | None = None) -> np.ndarray:
    """Unnormalised Gaussians ``exp(-((x - cx)^2 + (y - cy)^2) / (2 sigma^2))`` on the pixel grid.

    centers: (K, 2) ``(x, y)`` in heatmap pixels. heatmap_size: ``(w, h)``.
    window: if given, zero outside the square ``|x - cx| <= window and |y - cy| <= window`` (SimpleBaseline
    draws only a ``6 sigma + 1`` patch). Returns (K, h, w) float32; the peak is 1 at integer centres.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    w, h = heatmap_size
    dx = np.arange(w, dtype=np.float64)[None, :] - centers[:, :1]  # (K, w)
    dy = np.arange(h, dtype=np.float64)[None, :] - centers[:, 1:]  # (K, h)
    gx = gaussian_profile(dx, sigma)
    gy = gaussian_profile(dy, sigma)
    if window is not None:
        gx[np.abs(dx) > window] = 0.0
        gy[np.abs(dy) > window] = 0.0
    # The 2-D Gaussian is separable: an outer product is much cheaper than exp over the whole grid.
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def argmax_decode(heatmaps):
    """Integer argmax plus a quarter-pixel shift toward the higher neighbour (SimpleBaseline).

    heatmaps: (N, K, H, W) ndarray or Tensor. Each axis is shifted by ``0.25 * sign(right - left)`` when the
    peak has both neighbours on that axis (``0 < px < W - 1``), independently of the other axis.
    Returns ``coords (N, K, 2)`` float32 in HEATMAP pixels and ``scores (N, K)`` float32 (the peak value);
    numpy in, numpy out; Tensor in, Tensor out.
    """
    array, restore = _to_numpy(heatmaps)
    px, py, maxvals = heatmap_peaks(array)
    _, _, h, w = array.shape
    coords = np.stack([px, py], axis=-1).astype(np.float32)

    ni, ki = np.indices(px.shape)
    has_x = (px > 0) & (px < w - 1)
    has_y = (py > 0) & (py < h - 1)
    right = array[ni, ki, py, np.minimum(px + 1, w - 1)]
    left = array[ni, ki, py, np.maximum(px - 1, 0)]
    below = array[ni, ki, np.minimum(py + 1, h - 1), px]
    above = array[ni, ki, np.maximum(py - 1, 0), px]
    coords[..., 0] += np.where(has_x, 0.25 * np.sign(right - left), 0.0).astype(np.float32)
    coords[..., 1] += np.where(has_y, 0.25 * np.sign(below - above), 0.0).astype(np.float32)
    return restore(coords), restore(maxvals.astype(np.float32))


@CODECS.register
class HeatmapCodec(Codec):
    """Keypoints (model-input pixels) <-> Gaussian heatmaps; heads never see Gaussians.

    Args:
        input_size: ``(W, H)`` of the model input crop.
        heatmap_size: ``(w, h)``; default ``(W // 4, H // 4)`` (output stride 4).
        sigma: Gaussian standard deviation in heatmap pixels.
        unbiased: ``False`` -- SimpleBaseline targets (``x / stride``, centre rounded to a pixel, Gaussian
            cut to a ``|dx|, |dy| <= 3 sigma`` square); ``True`` -- UDP mapping with an exact sub-pixel,
            untruncated Gaussian (what DARK decoding expects).
        decode: ``"dark"`` (:func:`dark_decode`) or ``"argmax"`` (:func:`argmax_decode`).
        blur_kernel: odd DARK blur kernel size.
    """

    config_attributes = {"decode": "decode_method"}  # ``decode`` is the method

    def __init__(self, input_size=(192, 256), heatmap_size=None, sigma: float = 2.0,
                 unbiased: bool = False, decode: str = "dark", blur_kernel: int = 11):
        self.input_size = _as_size(input_size, "input_size")
        width, height = self.input_size
        self.heatmap_size = (_as_size(heatmap_size, "heatmap_size") if heatmap_size is not None
                             else (width // 4, height // 4))
        if min(self.heatmap_size) < 1:
            raise ValueError(f"input_size {self.input_size} is too small for a stride-4 heatmap")
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        if decode not in _DECODERS:
            raise ValueError(f"decode must be one of {_DECODERS}, got {decode!r}")
        if not isinstance(blur_kernel, (int, np.integer)) or blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be a positive odd integer, got {blur_kernel!r}")
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.decode_method = decode
        self.blur_kernel = int(blur_kernel)
        w, h = self.heatmap_size
        if self.unbiased:
            if min(width, height, w, h) < 2:
                raise ValueError("unbiased (UDP) mapping needs input and heatmap sizes of at least 2")
            self._scale = np.array([(w - 1) / (width - 1), (h - 1) / (height - 1)])
        else:
            self._scale = np.array([w / width, h / height])

    # ----------------------------------------------------------------------------------------- frames
    def input_to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) model-input pixels -> heatmap pixels (float64)."""
        return np.asarray(xy, dtype=np.float64) * self._scale

    def heatmap_to_input(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) heatmap pixels -> model-input pixels (float64)."""
        return np.asarray(xy, dtype=np.float64) / self._scale

    # ----------------------------------------------------------------------------------------- encode
    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Training targets for one person.

        keypoints: (K, 2) ``(x, y)`` in model-input pixels. visible: (K,); joints with ``visible <= 0`` are
        ignored (their coordinates may be anything, NaN included).
        Returns ``heatmaps`` (K, h, w) float32 (peak 1) and ``weights`` (K,) float32: 0 for ignored joints
        and for joints whose ``3 sigma`` box around the centre holds no heatmap pixel (their map is all
        zeros), 1 otherwise.
        """
        keypoints, labelled = check_person(keypoints, visible)
        return {name: value[0] for name, value in self._targets(keypoints[None], labelled[None]).items()}

    def encode_batch(self, keypoints: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Training targets for N people at once: keypoints (N, K, 2), visible (N, K) -> ``heatmaps`` (N, K, h, w) and
        ``weights`` (N, K), each person's exactly as :meth:`encode` gives them."""
        return self._targets(*check_person(keypoints, visible, batch=True))

    def _targets(self, keypoints: np.ndarray, labelled: np.ndarray) -> dict[str, np.ndarray]:
        """float64 keypoints (N, K, 2), labelled (N, K) bool -> heatmaps (N, K, h, w), weights (N, K). Elementwise
        arithmetic, so a person's targets do not depend on the others in the batch."""
        w, h = self.heatmap_size
        centers = np.where(labelled[..., None], self.input_to_heatmap(np.nan_to_num(keypoints)), 0.0)
        if not self.unbiased:
            centers = np.floor(centers + 0.5)
        reach = 3 * self.sigma
        inside = ((centers + reach >= 0) & (centers - reach <= np.array([w - 1, h - 1]))).all(axis=-1)
        weights = (labelled & inside).astype(np.float32)
        heatmaps = np.zeros((*weights.shape, h, w), dtype=np.float32)
        keep = weights > 0
        if not self.unbiased:  # integer centres: the rendered window is the same patch for every joint
            paste_patches(heatmaps.reshape(-1, h, w), centers.reshape(-1, 2), integer_centre_patch(self.sigma, reach),
                          np.flatnonzero(keep).tolist())
        elif keep.any():
            heatmaps[keep] = render_gaussians(centers[keep], self.heatmap_size, self.sigma)
        return {"heatmaps": heatmaps, "weights": weights}

    # ----------------------------------------------------------------------------------------- decode
    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs -> keypoints.

        heatmaps: (N, K, h, w) ndarray or Tensor of this codec's heatmap size.
        Returns ``coords (N, K, 2)`` float32 in model-input pixels and ``scores (N, K)`` float32 (peak
        values), both numpy.
        """
        array, _ = _to_numpy(heatmaps)
        if array.ndim != 4:
            raise ValueError(f"heatmaps must be (N, K, h, w), got shape {tuple(array.shape)}; "
                             "add a batch dimension for a single person")
        w, h = self.heatmap_size
        if array.shape[2:] != (h, w):
            raise ValueError(f"heatmaps are {array.shape[3]}x{array.shape[2]} (w x h) but this codec "
                             f"expects {w}x{h}")
        if self.decode_method == "dark":
            coords, scores = dark_decode(array, self.blur_kernel)
        else:
            coords, scores = argmax_decode(array)
        return self.heatmap_to_input(coords).astype(np.float32), scores
