"""Video inference, frame by frame: the person box follows the previous frame's keypoints, and an
online filter (EMA or One-Euro) smooths each keypoint."""
from __future__ import annotations

import cv2
import numpy as np

from posekit.inference.smoothing import make_filter


def box_from_keypoints(keypoints: np.ndarray, frame_size: tuple[int, int], min_score: float = 0.2) -> np.ndarray | None:
    """(K, 3) -> (4,) xywh box around confident keypoints (clipped to the frame), or None if too few."""
    good = keypoints[keypoints[:, 2] > min_score, :2]
    if len(good) < 4:
        return None
    x0, y0 = good.min(axis=0)
    x1, y1 = good.max(axis=0)
    w, h = frame_size
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w - 1, x1), min(h - 1, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return np.array([x0, y0, x1 - x0, y1 - y0], np.float32)


def predict_video(predictor, video_path, *, smooth: str = "none", smooth_params: dict | None = None,
                  draw_path=None, box_passes: int = 1) -> list[dict]:
    """One record per frame: ``{"frame", "time", "keypoints": [[x, y, s], ...], "box"}``; optionally an annotated mp4.

    The person box of a frame is the box of the previous frame's raw keypoints (the whole frame at first or
    when too few keypoints are confident). box_passes > 1 predicts again from the box of this frame's own
    keypoints, that many passes in all: a model pulls its keypoints towards the box it is given, so a box
    one frame late makes the raw track lag the motion (benchmarks/smoothing.py measures it); each pass
    costs one more network run.
    """
    if box_passes < 1:
        raise ValueError(f"box_passes must be >= 1, got {box_passes}")
    from posekit.inference.draw import draw_pose
    from posekit.skeletons import SKELETONS

    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise ValueError(f"{video_path}: cannot open video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    params = dict(smooth_params or {})
    if smooth == "one-euro":
        params.setdefault("fps", fps)
    filt = make_filter(smooth, **params)
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    writer, records, previous, index = None, [], None, 0
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                break
            frame = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
            h, w = frame.shape[:2]
            box = box_from_keypoints(previous, (w, h)) if previous is not None else None
            if box is None:
                box = np.array([0, 0, w, h], np.float32)
            raw = predictor.predict(frame, box[None])[0]
            for _ in range(box_passes - 1):
                refined = box_from_keypoints(raw, (w, h))
                if refined is None:
                    break
                box, raw = refined, predictor.predict(frame, refined[None])[0]
            previous = raw
            keypoints = filt(raw.copy(), index / fps) if filt is not None else raw
            records.append({"frame": index, "time": round(index / fps, 4), "box": [float(v) for v in box],
                            "keypoints": [[round(float(x), 3), round(float(y), 3), round(float(s), 5)]
                                          for x, y, s in keypoints]})
            if draw_path:
                if writer is None:
                    writer = cv2.VideoWriter(str(draw_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(cv2.cvtColor(draw_pose(frame, keypoints, skeleton, threshold=0.05), cv2.COLOR_RGB2BGR))
            index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return records
