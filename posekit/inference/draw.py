"""Draw skeletons on images (predictions and ground truth): limbs and joints, a left / right legend in the
top-left corner, and in video a track id next to each person."""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from posekit.skeletons import Skeleton

__all__ = ["LEFT", "RIGHT", "CENTRE", "DEFAULT_JOINT_THRESHOLD", "joint_colour", "draw_pose", "draw_legend",
           "draw_track_label", "draw_people"]

LEFT, RIGHT, CENTRE = (0, 170, 255), (255, 85, 0), (60, 220, 60)

#: joints scoring at or below this are not drawn. The compact LSPET models score a labelled visible joint 0.5 at
#: the median and 0.26 at the 10th percentile (first 60 LSPET val people), so 0.2 hides few real joints and
#: most of the stray ones.
DEFAULT_JOINT_THRESHOLD = 0.2

_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: label colours, one per track id in turn (RGB), none of them a limb colour
_TRACK_COLOURS = ((255, 255, 255), (255, 230, 0), (230, 0, 230), (0, 230, 230), (255, 120, 160), (170, 255, 120))


def joint_colour(name: str) -> tuple[int, int, int]:
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else CENTRE


def _scale(image: np.ndarray) -> float:
    return max(image.shape[:2]) / 256


def _pose_into(out: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton | None, threshold: float,
               radius: int | None, thickness: int | None) -> None:
    """Draw one pose on ``out`` (H, W, 3) in place; keypoints (K, 3) x, y, score."""
    radius = radius or max(2, int(round(3 * _scale(out))))
    thickness = thickness or max(1, int(round(2 * _scale(out))))
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


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton | None, *,
              threshold: float = DEFAULT_JOINT_THRESHOLD, radius: int | None = None, thickness: int | None = None,
              legend: bool = False) -> np.ndarray:
    """image: (H, W, 3) uint8 RGB; keypoints: (K, 3) x, y, score -> a copy with limbs and joints drawn.

    Joints with score <= threshold are not drawn (nor their limbs); left limbs blue, right limbs orange (RGB
    :data:`LEFT`, :data:`RIGHT`); ``legend`` adds the left / right key (:func:`draw_legend`).
    """
    out = np.ascontiguousarray(image.copy())
    _pose_into(out, keypoints, skeleton, threshold, radius, thickness)
    return draw_legend(out, in_place=True) if legend else out


def _text_size(image: np.ndarray) -> tuple[float, int]:
    """(font scale, line thickness) for labels: readable from 96 px to 4K frames."""
    scale = float(np.clip(max(image.shape[:2]) / 900, 0.3, 1.5))
    return scale, max(1, int(round(2 * scale)))


def _label(out: np.ndarray, text: str, origin: tuple[int, int], colour) -> None:
    """``text`` at ``origin`` (its top-left, clipped into the image) on a dark box, in place."""
    font_scale, weight = _text_size(out)
    (tw, th), base = cv2.getTextSize(text, _FONT, font_scale, weight)
    h, w = out.shape[:2]
    x = int(np.clip(origin[0], 0, max(0, w - tw - 2)))
    y = int(np.clip(origin[1], 0, max(0, h - th - base - 2)))
    cv2.rectangle(out, (x, y), (x + tw + 2, y + th + base + 2), (0, 0, 0), -1)
    cv2.putText(out, text, (x + 1, y + th + 1), _FONT, font_scale, colour, weight, cv2.LINE_AA)


def draw_legend(image: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the image with a small key in its top-left corner: a blue swatch "left" and an orange
    swatch "right" on a dark box (a copy unless ``in_place``)."""
    out = image if in_place else np.ascontiguousarray(image.copy())
    font_scale, weight = _text_size(out)
    (tw, th), base = cv2.getTextSize("right", _FONT, font_scale, weight)
    pad, swatch = 3, th
    line = th + base + pad
    cv2.rectangle(out, (0, 0), (3 * pad + swatch + tw, 2 * line + pad), (0, 0, 0), -1)
    for row, (text, colour) in enumerate((("left", LEFT), ("right", RIGHT))):
        top = pad + row * line
        cv2.rectangle(out, (pad, top), (pad + swatch, top + th), colour, -1)
        cv2.putText(out, text, (2 * pad + swatch, top + th), _FONT, font_scale, (255, 255, 255), weight, cv2.LINE_AA)
    return out


def draw_track_label(image: np.ndarray, track_id: int, keypoints: np.ndarray, box, *,
                     threshold: float = DEFAULT_JOINT_THRESHOLD) -> None:
    """Write ``#track_id`` just above the person, in place: above its highest drawn joint (else its box's top-left
    corner); the colour cycles with the id."""
    kp = np.asarray(keypoints, np.float32)
    ok = np.isfinite(kp[:, :2]).all(axis=1) & (kp[:, 2] > threshold)
    font_scale, weight = _text_size(image)
    (_, th), base = cv2.getTextSize("#0", _FONT, font_scale, weight)
    if ok.any():
        x, y = kp[ok, 0].min(), kp[ok, 1].min()
    else:
        x, y = box[0], box[1]
    _label(image, f"#{track_id}", (int(x), int(y) - th - base - 6), _TRACK_COLOURS[track_id % len(_TRACK_COLOURS)])


def draw_people(image: np.ndarray, people: Iterable[dict], skeleton: Skeleton | None, *,
                threshold: float = DEFAULT_JOINT_THRESHOLD, track_labels: bool = True) -> np.ndarray:
    """A video frame: (H, W, 3) uint8 RGB and its people (``{"track_id", "box", "keypoints" (K, 3)}``) -> a copy
    with every pose, each person's track id (``track_labels``) and the left / right legend."""
    out = np.ascontiguousarray(image.copy())
    people = list(people)
    for person in people:
        _pose_into(out, person["keypoints"], skeleton, threshold, None, None)
    if track_labels:
        for person in people:
            draw_track_label(out, person["track_id"], person["keypoints"], person["box"], threshold=threshold)
    return draw_legend(out, in_place=True)
