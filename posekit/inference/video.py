"""Video inference, frame by frame: people found by the detector and tracked (:mod:`posekit.inference.tracking`),
scene cuts (:mod:`posekit.inference.scene_cuts`), each track's keypoints smoothed online by its own filter (EMA or
One-Euro, :mod:`posekit.inference.smoothing`), and a damaged file read past its bad frames.

Without a detector it is one person: the whole frame at first, then the box of the previous frame's keypoints
(:class:`~posekit.inference.tracking.SinglePersonTracker`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from posekit.inference.draw import DEFAULT_JOINT_THRESHOLD
from posekit.inference.scene_cuts import DEFAULT_CUT_THRESHOLD, SceneCutDetector
from posekit.inference.smoothing import make_filter
from posekit.inference.tracking import (DEFAULT_DETECT_EVERY, DEFAULT_MAX_LOST, SinglePersonTracker, Tracker,
                                        box_from_keypoints)

__all__ = ["predict_video", "read_frames", "VideoCounts", "box_from_keypoints", "MAX_BAD_RUN"]

#: undecodable frames in a row after which reading stops (2 s at 30 fps): a damaged stretch shorter than this is
#: passed over (each failed read consumes that frame's packet, so the frame numbers stay right)
MAX_BAD_RUN = 60
#: detections down to this score may confirm a track (not start one): next to another person MultiPose's score for
#: someone it found at 0.3-0.4 can drop under its threshold of 0.15 (benchmarks/tracking.py, "no weak round")
WEAK_DETECTION = 0.05


@dataclass
class VideoCounts:
    """What happened to a video's frames: ``in_file`` (the container's frame count; 0 when it does not say),
    ``read`` (decoded), ``skipped`` (undecodable, passed over), ``not_decoded_at_end`` (frames the container
    announces after the last one decoded), ``written`` (records, and drawn frames with ``draw_path``); the tracking:
    ``detector_frames``, ``cuts``, ``tracks_started``, ``most_people`` (the most shown in one frame)."""
    in_file: int = 0
    read: int = 0
    skipped: int = 0
    not_decoded_at_end: int = 0
    written: int = 0
    detector_frames: int = 0
    cuts: int = 0
    tracks_started: int = 0
    most_people: int = 0

    def summary(self, name: str) -> str:
        """Two lines for the user: the frames, then the people."""
        frames = f"{name}: {self.read} frames read"
        if self.skipped:
            frames += f", {self.skipped} skipped (undecodable)"
        frames += f", {self.written} written" + (f" of {self.in_file} in the file" if self.in_file else "")
        if self.not_decoded_at_end:
            frames += f"; decoding stopped {self.not_decoded_at_end} frames before the file's end"
        people = (f"people: {self.tracks_started} tracks started, at most {self.most_people} people in a frame; "
                  f"detector ran on {self.detector_frames} frames; {self.cuts} scene cuts")
        return frames + "\n" + people

    @property
    def damaged(self) -> bool:
        return bool(self.skipped or self.not_decoded_at_end)


def read_frames(capture, counts: VideoCounts, max_bad_run: int = MAX_BAD_RUN) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, (H, W, 3) uint8 RGB) of every decodable frame of an opened ``cv2.VideoCapture``.

    A frame that does not decode is counted in ``counts.skipped`` and reading goes on; it stops at the
    container's last frame, or after ``max_bad_run`` undecodable frames in a row (what remains of the announced
    frames is ``counts.not_decoded_at_end``). Frame numbers count every packet read, decodable or not, so a
    frame's number is its position in the file.
    """
    counts.in_file = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    index, bad_run, last_good = 0, 0, -1
    while True:
        try:
            ok, frame = capture.read()
        except cv2.error:
            ok, frame = False, None
        if ok and frame is not None:
            counts.skipped += bad_run
            bad_run, last_good = 0, index
            counts.read += 1
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        else:
            bad_run += 1
            if (counts.in_file and index + 1 >= counts.in_file) or bad_run >= max_bad_run:
                break
        index += 1
    counts.not_decoded_at_end = max(0, counts.in_file - (last_good + 1))


def _pose(predictor, frame: np.ndarray, tracks, box_passes: int) -> np.ndarray:
    """Pose every track from its box (M, K, 3); each further pass re-poses a track from the box of its last pass's
    confident keypoints (a model pulls its keypoints towards the box it is given, so the box of the previous
    frame lags the motion: benchmarks/smoothing.py measures it)."""
    if not tracks:
        return np.zeros((0, predictor.num_keypoints, 3), np.float32)
    raw = predictor.predict(frame, np.stack([t.box for t in tracks]))
    size = (frame.shape[1], frame.shape[0])
    for _ in range(box_passes - 1):
        refined = [(i, box) for i, pose in enumerate(raw) if (box := box_from_keypoints(pose, size)) is not None]
        if not refined:
            break
        again = predictor.predict(frame, np.stack([box for _, box in refined]))
        for (i, box), pose in zip(refined, again):
            tracks[i].box, raw[i] = box, pose
    return raw


def _record(index: int, fps: float, people: list[dict]) -> dict:
    """A frame record: ``{"frame", "time", "people": [{"track_id", "box", "score", "keypoints"}]}``."""
    return {"frame": index, "time": round(index / fps, 4), "people": [
        {**person, "keypoints": [[round(float(x), 3), round(float(y), 3), round(float(s), 5)]
                                 for x, y, s in person["keypoints"]]} for person in people]}


def predict_video(predictor, video_path, *, detector=None, detect_every: int = DEFAULT_DETECT_EVERY,
                  max_lost: int = DEFAULT_MAX_LOST, cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
                  smooth: str = "none", smooth_params: dict | None = None, draw_path=None, box_passes: int = 1,
                  draw_threshold: float = DEFAULT_JOINT_THRESHOLD, weak_detection: float | None = WEAK_DETECTION,
                  tracker_options: dict | None = None, counts: VideoCounts | None = None) -> list[dict]:
    """One record per decoded frame, ``{"frame", "time", "people": [{"track_id", "box", "score", "keypoints":
    [[x, y, s], ...]}]}`` (keypoints and score as in the prediction contract, smoothed per track); optionally an
    annotated mp4 at ``draw_path`` (poses, track ids, left / right legend; joints scoring <= draw_threshold hidden).

    detector: a :class:`~posekit.inference.detector.PersonDetector` (people tracked: detection on the first frame,
    after a scene cut and every ``detect_every`` frames; a track hidden ``max_lost`` frames ends), or None (one
    person, the whole frame first). cut_threshold: :class:`~posekit.inference.scene_cuts.SceneCutDetector`'s,
    None for no cut detection. box_passes: network passes per person and frame (see :func:`_pose`).
    weak_detection: detections down to this score may confirm a track (None: only the detector's threshold);
    tracker_options: more :class:`~posekit.inference.tracking.Tracker` options (``min_iou``, ``clear_overlap``).
    counts: filled with what happened (:class:`VideoCounts`). A video of which no frame decodes is a ValueError.
    """
    if box_passes < 1:
        raise ValueError(f"box_passes must be >= 1, got {box_passes}")
    from posekit.inference.draw import draw_people
    from posekit.skeletons import SKELETONS

    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise ValueError(f"{video_path}: cannot open video")
    counts = counts if counts is not None else VideoCounts()
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    params = dict(smooth_params or {})
    if smooth == "one-euro":
        params.setdefault("fps", fps)
    make_filter(smooth, **params)  # a bad filter name or parameter fails before any frame is read

    def new_filter():
        return make_filter(smooth, **params)

    tracker = SinglePersonTracker(new_filter) if detector is None else \
        Tracker(new_filter, detect_every=detect_every, max_lost=max_lost, start_score=detector.score_threshold,
                **(tracker_options or {}))
    weakest = None if detector is None or weak_detection is None else min(weak_detection, detector.score_threshold)
    cuts = SceneCutDetector(cut_threshold)
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    writer, records = None, []
    try:
        for index, frame in read_frames(capture, counts):
            size = (frame.shape[1], frame.shape[0])
            if cuts.is_cut(frame):
                counts.cuts += 1
                tracker.reset()
            detections = None
            if tracker.needs_detection(index):
                detections = detector.detect(frame, min_score=weakest)
                counts.detector_frames += 1
            posed = tracker.prepare(index, size, detections)
            people = tracker.observe(posed, _pose(predictor, frame, posed, box_passes), index, index / fps)
            records.append(_record(index, fps, people))
            if draw_path:
                if writer is None:
                    writer = cv2.VideoWriter(str(draw_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                drawn = draw_people(frame, people, skeleton, threshold=draw_threshold)
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            counts.written += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    counts.tracks_started, counts.most_people = tracker.started, tracker.most_at_once
    if not records:
        raise ValueError(f"{Path(video_path).name}: no frame could be decoded"
                         + (f" (the file says {counts.in_file} frames)" if counts.in_file else ""))
    return records
