"""Scene cuts in video, cheaply: the colour histogram of each frame against the previous frame's.

A frame is shrunk to 64 px on its long side and binned in HSV (12 hues x 3 saturations x 3 values, 108 bins);
the cut score of a frame is the total-variation distance ``0.5 * sum |h_t - h_{t-1}|`` in [0, 1] between its
normalised histogram and the previous frame's. People moving over a scene barely change it; a new shot
replaces it.

Threshold :data:`DEFAULT_CUT_THRESHOLD` = 0.35, measured on the first 200 LSPET val photos
(benchmarks/scene_cuts.py): consecutive photos (a cut between two sports scenes) score 0.401 at the least (0.477 at
the 1st percentile), while a photo against itself moved 20 px right and 8 px down scores 0.172 at most. A sudden
brightness jump of 15 grey levels in one frame scores up to 0.480 (95th percentile 0.344; 8 of the 200 count as a
cut): the tracks restart, nothing worse. A cut between two
shots of the same colours is not seen (the tracks then go on, matched to the new shot's detections by IoU).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["DEFAULT_CUT_THRESHOLD", "colour_histogram", "histogram_distance", "SceneCutDetector"]

DEFAULT_CUT_THRESHOLD = 0.35
_BINS = (12, 3, 3)
_SIDE = 64


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (108,) float64 HSV histogram summing to 1, of the frame shrunk to 64 px."""
    h, w = frame.shape[:2]
    scale = _SIDE / max(h, w)
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1, 2], None, list(_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return counts.astype(np.float64) / max(float(counts.sum()), 1.0)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of two normalised histograms: 0 (equal) to 1 (disjoint)."""
    return float(0.5 * np.abs(np.asarray(a) - np.asarray(b)).sum())


class SceneCutDetector:
    """``is_cut(frame)`` per frame, in order: True when the frame's cut score exceeds ``threshold`` (never for the
    first frame). threshold None: never a cut. ``last_score`` holds the latest score (0 for the first frame)."""

    def __init__(self, threshold: float | None = DEFAULT_CUT_THRESHOLD):
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"cut threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._previous: np.ndarray | None = None
        self.last_score = 0.0

    def is_cut(self, frame: np.ndarray) -> bool:
        if self.threshold is None:
            return False
        histogram = colour_histogram(frame)
        previous, self._previous = self._previous, histogram
        self.last_score = 0.0 if previous is None else histogram_distance(histogram, previous)
        return previous is not None and self.last_score > self.threshold
