"""Draw skeletons on images (predictions and ground truth)."""
from __future__ import annotations

import cv2
import numpy as np

from posekit.skeletons import Skeleton

LEFT, RIGHT, CENTRE = (0, 170, 255), (255, 85, 0), (60, 220, 60)


def joint_colour(name: str) -> tuple[int, int, int]:
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else CENTRE


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton | None, *, threshold: float = 0.0,
              radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """image: (H, W, 3) uint8 RGB; keypoints: (K, 3) x, y, score -> a copy with limbs and joints drawn.

    Joints with score <= threshold are not drawn; left limbs orange, right limbs blue (RGB).
    """
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 256
    radius = radius or max(2, int(round(3 * scale)))
    thickness = thickness or max(1, int(round(2 * scale)))
    kp = np.asarray(keypoints, dtype=np.float32)
    ok = np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] > threshold)
    names = skeleton.keypoints if skeleton else [""] * len(kp)
    if skeleton:
        for a, b in skeleton.limbs:
            if ok[a] and ok[b]:
                colour = joint_colour(names[b]) if joint_colour(names[a]) == CENTRE else joint_colour(names[a])
                cv2.line(out, tuple(int(round(v)) for v in kp[a, :2]), tuple(int(round(v)) for v in kp[b, :2]),
                         colour, thickness, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(out, (int(round(kp[k, 0])), int(round(kp[k, 1]))), radius, joint_colour(names[k]), -1, cv2.LINE_AA)
    return out
