"""Codecs: keypoints in the model-input frame <-> training targets and model outputs.

A codec owns the whole target representation (Gaussians, normalised coordinates, ...), so heads and
losses never need to know it. Every codec is a :class:`~posekit.codecs.base.Codec`:
``encode(keypoints (K, 2), visible (K,)) -> dict``, ``decode(outputs) -> (coords (N, K, 2) input px,
scores (N, K))`` and ``to_config`` / ``from_config``, registered in :data:`CODECS`; :func:`build_codec`
rebuilds any of them from its config (e.g. from a checkpoint).
"""
from __future__ import annotations

from .base import CODECS, Codec, build_codec
from .dark import blur_heatmaps, dark_decode, gaussian_kernel_1d, heatmap_peaks
from .heatmap import HeatmapCodec, argmax_decode, render_gaussians
from .movenet import MoveNetCodec
from .integral import (IntegralCodec, dsnt, flat_softmax, js_regulariser, normalize_heatmaps,
                       normalized_gaussians, normalized_grid, soft_argmax)
from .regression import RegressionCodec
from .rle import RealNVP, RLELoss, rle_sigma

__all__ = [
    "Codec", "CODECS", "HeatmapCodec", "RegressionCodec", "IntegralCodec", "build_codec",
    "dark_decode", "argmax_decode", "heatmap_peaks", "blur_heatmaps", "gaussian_kernel_1d", "render_gaussians",
    "soft_argmax", "dsnt", "flat_softmax", "normalize_heatmaps", "normalized_grid", "normalized_gaussians",
    "js_regulariser", "RealNVP", "RLELoss", "rle_sigma",
]
