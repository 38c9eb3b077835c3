"""Direct coordinate regression codec (DeepPose, RLE).

Normalised coordinates: ``u = x / W - 0.5``, ``v = y / H - 0.5`` with ``(x, y)`` in model-input pixels
(pixel centres at integers), so the crop's pixel centres span ``[-0.5, 0.5 - 1/W]``; the same convention
as RLE's ``target_uv``. :mod:`posekit.codecs.integral` uses the matching convention on heatmaps.

Model outputs it decodes: ``(N, K, 2)`` coordinates (a regression head), or ``(N, K, 4)`` = coordinates
followed by the two RAW sigma logits of an RLE head (the sigmoid with floor of
:func:`posekit.codecs.rle.rle_sigma` is applied here; score = ``mean(1 - sigma)``).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import CODECS, Codec, check_person
from .heatmap import _as_size
from .rle import rle_sigma

__all__ = ["RegressionCodec"]


def _to_numpy_f32(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu").numpy()
    return np.asarray(value, dtype=np.float32)


@CODECS.register
class RegressionCodec(Codec):
    """Keypoints (model-input pixels) <-> normalised coordinates in about ``(-0.5, 0.5)``.

    Args:
        input_size: ``(W, H)`` of the model input crop.
        ignore_outside: give weight 0 to joints outside the crop's pixel range ``[0, W-1] x [0, H-1]``
            (as mmpose's regression label does), so every codec trains on the joints that are in view.
        normalized: ``True`` (default) -- targets and outputs are normalised coordinates; ``False`` -- they
            are model-input pixels (the "no coordinate normalisation" ablation; RLE needs ``True``).
            :meth:`normalize` / :meth:`denormalize` always convert to / from normalised coordinates.
    """

    def __init__(self, input_size=(192, 256), ignore_outside: bool = True, normalized: bool = True):
        self.input_size = _as_size(input_size, "input_size")
        self.ignore_outside = bool(ignore_outside)
        self.normalized = bool(normalized)
        self._size = np.array(self.input_size, dtype=np.float64)

    def normalize(self, xy):
        """(..., 2) model-input pixels -> normalised coordinates (same kind as the input)."""
        size = torch.as_tensor(self._size, dtype=xy.dtype, device=xy.device) if isinstance(xy, torch.Tensor) \
            else self._size
        return xy / size - 0.5

    def denormalize(self, uv):
        """(..., 2) normalised coordinates -> model-input pixels (same kind as the input)."""
        size = torch.as_tensor(self._size, dtype=uv.dtype, device=uv.device) if isinstance(uv, torch.Tensor) \
            else self._size
        return (uv + 0.5) * size

    def to_target(self, xy):
        """(..., 2) model-input pixels -> this codec's target units (normalised unless ``normalized=False``)."""
        return self.normalize(xy) if self.normalized else xy

    def from_target(self, uv):
        """(..., 2) target units -> model-input pixels (the inverse of :meth:`to_target`)."""
        return self.denormalize(uv) if self.normalized else uv

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """keypoints: (K, 2) model-input pixels; visible: (K,).

        Returns ``coords`` (K, 2) float32 in target units (normalised by default; 0 for ignored joints)
        and ``weights`` (K,) float32.
        """
        keypoints, valid = check_person(keypoints, visible)
        if self.ignore_outside:
            valid &= ((keypoints >= 0) & (keypoints <= self._size - 1)).all(axis=1)
        coords = np.where(valid[:, None], self.to_target(np.nan_to_num(keypoints)), 0.0)
        return {"coords": coords.astype(np.float32), "weights": valid.astype(np.float32)}

    def decode(self, coords, sigma=None) -> tuple[np.ndarray, np.ndarray]:
        """coords: (N, K, 2) in target units, or (N, K, 4) raw RLE head output (coordinates, then raw sigma
        logits); sigma: optional (N, K, 2) predicted standard deviations in normalised units (RLE, after
        the sigmoid: see :func:`posekit.codecs.rle.rle_sigma`).

        Returns ``coords (N, K, 2)`` float32 in model-input pixels and ``scores (N, K)`` float32:
        ``mean(1 - sigma)`` over x and y (RLE's confidence), or ones without sigma. numpy, whatever the input.
        """
        coords = _to_numpy_f32(coords)
        if coords.ndim == 3 and coords.shape[2] == 4 and sigma is None:
            coords, raw = coords[..., :2], coords[..., 2:]
            sigma = _sigma_from_raw(raw)
        if coords.ndim != 3 or coords.shape[2] != 2:
            raise ValueError(f"coords must be (N, K, 2) (or (N, K, 4) raw RLE outputs), got shape {coords.shape}")
        if sigma is None:
            scores = np.ones(coords.shape[:2], dtype=np.float32)
        else:
            sigma = _to_numpy_f32(sigma)
            if sigma.shape != coords.shape:
                raise ValueError(f"sigma must have the shape of coords {coords.shape}, got {sigma.shape}")
            scores = (1.0 - sigma).mean(axis=2).astype(np.float32)
        return self.from_target(coords.astype(np.float64)).astype(np.float32), scores


def _sigma_from_raw(raw: np.ndarray) -> np.ndarray:
    """Raw RLE sigma logits (numpy) -> sigma with :func:`posekit.codecs.rle.rle_sigma`'s default floor."""
    return rle_sigma(torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))).numpy()
