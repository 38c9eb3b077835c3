"""Where a person can be: labelled keypoints and person boxes near their image.

A finite number is not always a plausible one. A hip at x = 1e30 stretches the torso so far that every joint
counts as correct under PCK; a visible joint at -1e6, an MPII centre at 1e30 or a box of 5000 x 5000 on a
64 x 64 image describe no person in that image. Every reader asks this one module, with the image size read
from the image's header, so the rule is the same for COCO, MPII and LSP.

Annotators do place joints a little beyond the frame (LSPET: up to 0.7 % of the image side, PoseTrack: 2.3 %):
those stay. Only what lies more than :data:`FAR_OUTSIDE` of the image's side beyond its edge is "far".
"""
from __future__ import annotations

import numpy as np

from posekit.data.sample import DataError

__all__ = ["FAR_OUTSIDE", "MIN_BOX_SIDE", "MIN_AREA", "far_from_image", "check_keypoints_near_image",
           "check_box_near_image", "max_plausible_area"]

#: how far beyond its image's edge a labelled keypoint or a box edge may lie, as a fraction of the image side
FAR_OUTSIDE = 0.5
#: a person box narrower or lower than this many pixels holds no person (MPII scale 1e-30 gives 2e-28 px)
MIN_BOX_SIDE = 1.0
#: a person's area (COCO ``area``, the OKS scale) below one square pixel makes every OKS zero
MIN_AREA = 1.0


def _allowed_range(size) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of the image grown by :data:`FAR_OUTSIDE` of its side on every edge."""
    side = np.asarray(size, dtype=np.float64)
    return -FAR_OUTSIDE * side, (1.0 + FAR_OUTSIDE) * side


def far_from_image(points, size) -> np.ndarray:
    """(N,) bool: which ``(N, 2)`` x, y points lie far outside a ``(width, height)`` image."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    low, high = _allowed_range(size)
    return np.any((points < low) | (points > high), axis=1)


def _image_text(size) -> str:
    return f"{float(size[0]):g}x{float(size[1]):g} image"


def check_keypoints_near_image(keypoints, size, path, record) -> None:
    """DataError naming the first labelled (v > 0) keypoint of ``(K, 3)`` that lies far outside the image."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    far = far_from_image(keypoints[:, :2], size) & (keypoints[:, 2] > 0)
    if far.any():
        joint = int(np.flatnonzero(far)[0])
        x, y = keypoints[joint, :2]
        raise DataError(path, f"labelled keypoint {joint} at ({x:g}, {y:g}) lies far outside the {_image_text(size)} "
                              f"({int(far.sum())} such keypoint(s))", record)


def check_box_near_image(box_xywh, size, path, record, what: str = "bbox") -> None:
    """DataError when an ``x, y, w, h`` box is smaller than :data:`MIN_BOX_SIDE` or reaches far outside the image."""
    x, y, w, h = (float(v) for v in box_xywh)
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise DataError(path, f"{what} [{x:g}, {y:g}, {w:g}, {h:g}] is smaller than {MIN_BOX_SIDE:g} pixel", record)
    if far_from_image([[x, y], [x + w, y + h]], size).any():
        raise DataError(path, f"{what} [{x:g}, {y:g}, {w:g}, {h:g}] reaches far outside the {_image_text(size)}",
                        record)


def max_plausible_area(size) -> float:
    """The area of the largest box :func:`check_box_near_image` accepts on a ``(width, height)`` image."""
    width, height = (float(v) for v in size)
    return (1.0 + 2.0 * FAR_OUTSIDE) ** 2 * width * height
