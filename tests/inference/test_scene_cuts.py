"""Scene cuts: a known cut in a synthetic clip is found at its frame; a slowly moving clip has none."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.inference.scene_cuts import SceneCutDetector, colour_histogram, histogram_distance


def scene(seed: int, tint=(1.0, 1.0, 1.0), size=(240, 320)) -> np.ndarray:
    """A textured scene: smooth random colour blobs (a blurred noise image) in a ``tint`` (RGB weights), (H, W, 3)
    uint8 RGB."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3)) * np.asarray(tint)
    return cv2.resize(noise.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)

GREEN, ORANGE = (0.3, 1.0, 0.6), (1.0, 0.5, 0.2)


def moving(image: np.ndarray, frames: int, px_per_frame: float = 2.0) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [cv2.warpAffine(image, np.float32([[1, 0, px_per_frame * t], [0, 1, 0.5 * t]]), (w, h),
                           borderMode=cv2.BORDER_REFLECT) for t in range(frames)]


def cut_frames(frames) -> list[int]:
    detector = SceneCutDetector()
    return [t for t, frame in enumerate(frames) if detector.is_cut(frame)]


def test_a_known_cut_is_found_at_its_frame_and_nowhere_else():
    clip = moving(scene(1, GREEN), 12) + moving(scene(2, ORANGE), 18)
    assert cut_frames(clip) == [12]


def test_a_cut_between_two_shots_of_the_same_colours_is_not_seen():
    """The documented limit of a colour histogram: two textures of the same colour mix look alike."""
    assert cut_frames(moving(scene(1), 12) + moving(scene(2), 18)) == []


def test_a_slowly_moving_clip_has_no_cut():
    assert cut_frames(moving(scene(3, ORANGE), 40, px_per_frame=3.0)) == []


def test_histogram_distance_is_zero_for_equal_frames_and_one_for_disjoint_colours():
    red, blue = np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    assert colour_histogram(red).sum() == pytest.approx(1.0)
    assert histogram_distance(colour_histogram(red), colour_histogram(red)) == 0.0
    assert histogram_distance(colour_histogram(red), colour_histogram(blue)) == pytest.approx(1.0)


def test_no_threshold_means_no_cut_detection():
    detector = SceneCutDetector(None)
    assert not any(detector.is_cut(frame) for frame in moving(scene(1, GREEN), 3) + moving(scene(2, ORANGE), 3))
    with pytest.raises(ValueError, match="cut threshold"):
        SceneCutDetector(1.5)
