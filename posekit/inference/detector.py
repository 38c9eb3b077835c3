"""Find the people in a photo: MoveNet MultiPose (imported into posekit) as a person detector.

The detector's boxes and person scores feed the top-down pose model; its own keypoints are not the output.
An image is resized so that its long side is ``long_side`` (256, as MultiPose is usually run), padded with
black at the bottom / right to multiples of 32, run through the native network, and decoded with the
released graph's own MultiPose decoding (:func:`posekit.codecs.movenet.movenet_multipose_decode`). People
scoring below ``score_threshold`` are dropped; at most ``max_people`` (MultiPose finds up to 6) are kept.

>>> detector = PersonDetector.load("zoo/movenet_multipose.pt")
>>> boxes, scores = detector.detect(image)     # (M, 4) x, y, w, h image pixels, (M,) person scores
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from posekit.checkpoint import load_model
from posekit.codecs.movenet import MAX_PEOPLE, movenet_multipose_decode
from posekit.data.transforms import normalize_image

__all__ = ["PersonDetector", "DEFAULT_SCORE_THRESHOLD", "letterbox"]

#: person score below which a detection is dropped (chosen on COCO-MINI train, see benchmarks/detector.py)
DEFAULT_SCORE_THRESHOLD = 0.15


def letterbox(image: np.ndarray, long_side: int = 256, multiple: int = 32) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 -> (image resized so max(H, W) = ``long_side``, padded with black at the bottom and
    right to multiples of ``multiple``; the scale factor: input px = image px * scale)."""
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_h, pad_w = -new_h % multiple, -new_w % multiple
    return np.pad(resized, ((0, pad_h), (0, pad_w), (0, 0))), scale


class PersonDetector:
    """Person boxes and scores from a MoveNet MultiPose checkpoint (``heads="all"``)."""

    def __init__(self, model, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD, max_people: int = MAX_PEOPLE,
                 long_side: int = 256):
        if not getattr(model, "multipose", False) or "box_scale" not in getattr(model, "heads", {}):
            raise ValueError("the detector needs a MoveNet MultiPose model with its box heads "
                             "(python -m posekit.models.movenet_import movenet-multipose.onnx --out ...)")
        if not 1 <= max_people <= MAX_PEOPLE:
            raise ValueError(f"max_people must be 1..{MAX_PEOPLE}, got {max_people}")
        if long_side % 32:
            raise ValueError(f"long_side must be a multiple of 32, got {long_side}")
        self.model = model.eval()
        self.score_threshold = float(score_threshold)
        self.max_people = int(max_people)
        self.long_side = int(long_side)

    @classmethod
    def load(cls, path, **kwargs) -> "PersonDetector":
        model, _ = load_model(path)
        return cls(model.float(), **kwargs)

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every one of MultiPose's 6 candidates: boxes (6, 4) x1, y1, x2, y2 image px, scores (6,),
        keypoints (6, 17, 3) image px (the detector's own, for diagnostics)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        padded, scale = letterbox(image, self.long_side)
        x = torch.from_numpy(normalize_image(padded))[None]
        with torch.inference_mode():
            heads = {k: v.float().numpy() for k, v in self.model.forward_heads(x).items()}
        people, boxes, scores = movenet_multipose_decode(heads, (padded.shape[1], padded.shape[0]))
        h, w = image.shape[:2]
        boxes = boxes[0] / scale
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        people = people[0].copy()
        people[..., :2] /= scale
        return boxes, scores[0], people

    def detect(self, image: np.ndarray, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """image (H, W, 3) uint8 RGB -> boxes (M, 4) ``x, y, w, h`` image px and scores (M,), best first;
        M = 0 when nobody scores ``min_score`` (default ``score_threshold``) or more."""
        threshold = self.score_threshold if min_score is None else float(min_score)
        boxes, scores, _ = self.raw(image)
        order = np.argsort(-scores, kind="stable")
        order = [i for i in order if scores[i] >= threshold and
                 boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]][:self.max_people]
        xyxy = boxes[order].reshape(-1, 4)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return xywh.astype(np.float32), scores[order].astype(np.float32)
