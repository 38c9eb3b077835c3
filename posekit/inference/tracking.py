"""People in video: tracks that the person detector starts and corrects, that follow their own poses between
detections, and that coast on their motion where two people meet.

Each track keeps a constant-velocity motion of its pose centre (an alpha-beta filter, :meth:`Track.correct`) and
a box of the detector's size around it. What happens in a frame (:class:`Tracker`;
:func:`posekit.inference.video.predict_video` drives it):

* **detection frames** (the first frame, the frame after a scene cut, then every ``detect_every`` frames): the
  detections are matched one-to-one to the live tracks (shown or hidden) by IoU with each track's *predicted*
  box, maximising the summed IoU (Hungarian, ``scipy.optimize.linear_sum_assignment``; a pair under ``min_iou``
  is no match), in two rounds as ByteTrack does: confident detections (the detector's threshold) first, then weak
  ones (down to 0.05) for the tracks left, since MultiPose's score for a person drops to 0.1 for a frame or two
  when someone walks past. A matched track is posed from the detection's box; a confident detection left over
  starts a new track (new id, new smoothing filter). A track missed by the detector twice in a row, or missed
  next to another person, is hidden. The detector is the only witness that a person is there: the compact
  pose models score background joints as high as a person's (0.2-0.5), so a pose alone never starts or revives
  a track.
* **other frames**: a shown track that is *clear* of the others (no other track's predicted box overlaps its
  own by more than ``clear_overlap`` of the smaller) is posed from the box of its previous raw keypoints
  (:func:`box_from_keypoints`, as one person without a detector); next to another person its box is the
  predicted one, since a box from its pose may already hold the other person. A hidden track coasts (no pose)
  until a detection matches it again, or ends after ``max_lost`` hidden frames.
* after the pose: a clear track corrects its motion with its pose centre (and on a detection frame takes the
  detection's size and the offset between the detection's centre and its pose's); a track next to another person
  does not, it coasts. Two shown tracks with the same pose (:func:`same_person`) keep the one whose motion
  predicted that pose better; the other is hidden (unless both were matched to detections).

Why coasting: following the previous pose alone (the single-person rule) lets the box of the person behind slide
onto the person in front as they cross, and the track then carries on with the wrong person
(benchmarks/tracking.py compares both).

Each track smooths its own keypoints with its own filter (``make_filter``), started fresh for a new track; a
scene cut (:meth:`Tracker.reset`) ends every track, so nothing from the previous shot is drawn after it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["box_iou", "match_boxes", "box_from_keypoints", "same_person", "Track", "Tracker", "SinglePersonTracker",
           "DEFAULT_DETECT_EVERY", "DEFAULT_MAX_LOST", "DEFAULT_MIN_IOU", "DEFAULT_CLEAR_OVERLAP"]

#: frames between two detector runs (the detector takes 0.43 s a frame on one thread, a compact model's pose with
#: flip test 11 ms a person on two: benchmarks/results/detector.md, speed.md); 1, 5, 10 and 30 are compared in
#: benchmarks/results/tracking.md
DEFAULT_DETECT_EVERY = 10
#: hidden frames after which a track ends (1 s at 30 fps: three chances for a detection to find it again)
DEFAULT_MAX_LOST = 30
#: the smallest IoU between a detection and a track's predicted box that counts as the same person
DEFAULT_MIN_IOU = 0.3
#: boxes overlapping by more than this fraction of the smaller one are "next to each other" (the crop the pose model
#: sees is 1.25 times the box, so by then it holds part of the other person)
DEFAULT_CLEAR_OVERLAP = 0.2


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (M, 4), b (N, 4) x, y, w, h -> (M, N) intersection over union (0 for empty boxes)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None])
    y1 = np.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(tracks: np.ndarray, detections: np.ndarray, min_iou: float = DEFAULT_MIN_IOU) -> list[tuple[int, int]]:
    """tracks (M, 4), detections (N, 4) xywh -> [(track index, detection index)], one-to-one, maximising the summed
    IoU (Hungarian); pairs with IoU < ``min_iou`` are dropped. Sorted by track index."""
    iou = box_iou(tracks, detections)
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return sorted((int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou)


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


def same_person(a: np.ndarray, b: np.ndarray, tolerance: float = 0.1) -> bool:
    """a, b (K, 3) poses -> True when the mean distance of their joints is under ``tolerance`` times the larger
    diagonal of their joint boxes: two boxes that slid onto one person give (nearly) the same pose, while two
    people side by side, even overlapping, differ by far more."""
    xy_a, xy_b = np.asarray(a, np.float64)[:, :2], np.asarray(b, np.float64)[:, :2]
    diagonal = max(np.linalg.norm(np.ptp(xy_a, axis=0)), np.linalg.norm(np.ptp(xy_b, axis=0)), 1.0)
    return float(np.linalg.norm(xy_a - xy_b, axis=1).mean()) < tolerance * diagonal


def _centre(box) -> np.ndarray:
    return np.asarray(box[:2], np.float64) + 0.5 * np.asarray(box[2:4], np.float64)


def pose_centre(keypoints: np.ndarray) -> np.ndarray:
    """(K, 3) -> (2,) the score-weighted mean of the joints (the plain mean when every score is 0)."""
    kp = np.asarray(keypoints, np.float64)
    weights = np.clip(kp[:, 2], 0, None)
    return (weights @ kp[:, :2]) / weights.sum() if weights.sum() > 0 else kp[:, :2].mean(axis=0)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """(4,), (4,) xywh -> intersection over the smaller box's area (1 when one holds the other)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    smaller = min(a[2] * a[3], b[2] * b[3])
    return float(max(w, 0) * max(h, 0) / smaller) if smaller > 0 else 0.0


@dataclass
class Track:
    """One person's track: its pose centre moving at constant velocity (an alpha-beta filter on the centres of its
    own poses), and the box it is posed from: the last detection's size, at the pose centre plus ``offset``.

    centre, velocity (2,): px and px per frame, as of frame ``updated``; size (2,) w, h and offset (2,) (detection
    box centre minus pose centre): measured on the last detection frame on which the track was clear of the others;
    box (4,) xywh: what it is posed from in this frame; keypoints (K, 3): its last raw pose.
    """
    track_id: int
    started: int
    centre: np.ndarray
    size: np.ndarray
    smoother: object
    updated: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2))
    box: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    detection_score: float = 1.0
    last_shown: int = 0
    shown: bool = True
    matched: bool = False     # matched by a detection in this frame
    clear: bool = True        # no other track's box overlaps its box in this frame
    candidate: np.ndarray | None = None
    measurements: int = 1     # pose centres taken in (the first one places the track)
    misses: int = 0           # detection frames in a row that did not find it

    def predicted_centre(self, frame: int) -> np.ndarray:
        return self.centre + self.velocity * (frame - self.updated)

    def predicted_box(self, frame: int) -> np.ndarray:
        """(4,) xywh float32: the box around the pose centre predicted for ``frame``."""
        centre = self.predicted_centre(frame) + self.offset
        return np.concatenate([centre - self.size / 2, self.size]).astype(np.float32)

    def correct(self, frame: int, measured: np.ndarray, alpha: float, beta: float) -> None:
        """Alpha-beta update with a measured pose centre (2,) in ``frame``. The n-th measurement uses at least the
        gains of a least-squares line through the first n (``2 (2n - 1) / (n (n + 1))``, ``6 / (n (n + 1))``), so a
        new track's velocity is right after a few frames instead of creeping up from 0."""
        self.measurements += 1
        n = self.measurements
        alpha, beta = max(alpha, 2 * (2 * n - 1) / (n * (n + 1))), max(beta, 6 / (n * (n + 1)))
        dt = max(frame - self.updated, 1)
        predicted = self.predicted_centre(frame)
        residual = np.asarray(measured, np.float64) - predicted
        self.centre, self.velocity, self.updated = predicted + alpha * residual, self.velocity + beta * residual / dt, frame


class Tracker:
    """Tracks of detected people (the rules are in the module docstring).

    new_filter: () -> a fresh smoothing filter (``make_filter``), one per track.
    Per frame: :meth:`prepare` (with the detector's boxes on a detection frame, see :meth:`needs_detection`),
    pose the shown tracks' boxes, then :meth:`observe` with those poses. :meth:`reset` at a scene cut.
    ``started`` counts every track begun; ``most_at_once`` the most people shown in one frame.
    """
    #: the alpha-beta filter's gains (position, velocity) for a pose centre: a pose centre jitters by a few pixels
    #: from frame to frame, so the velocity takes about 1 / BETA = 20 frames to settle and then barely wavers
    ALPHA, BETA = 0.5, 0.05

    def __init__(self, new_filter: Callable[[], object], *, detect_every: int = DEFAULT_DETECT_EVERY,
                 max_lost: int = DEFAULT_MAX_LOST, min_iou: float = DEFAULT_MIN_IOU, start_score: float = 0.0,
                 clear_overlap: float = DEFAULT_CLEAR_OVERLAP):
        if detect_every < 1 or max_lost < 0:
            raise ValueError(f"need detect_every >= 1 and max_lost >= 0, got {detect_every}, {max_lost}")
        self.new_filter, self.detect_every, self.max_lost, self.min_iou = new_filter, detect_every, max_lost, min_iou
        #: two tracks' boxes overlapping by more than this (of the smaller) are not clear (1: always clear)
        self.clear_overlap = float(clear_overlap)
        #: detections scoring less only confirm tracks (the detector's own threshold, with weaker ones handed in)
        self.start_score = float(start_score)
        self.tracks: list[Track] = []
        self.started = self.most_at_once = 0
        self._last_detection: int | None = None

    def reset(self) -> None:
        """A scene cut: every track ends; the next frame is a detection frame."""
        self.tracks, self._last_detection = [], None

    def needs_detection(self, frame: int) -> bool:
        return self._last_detection is None or frame - self._last_detection >= self.detect_every

    def _start(self, frame: int, box: np.ndarray, score: float = 1.0) -> Track:
        """A new track at a detection box; its centre and offset are set by its first pose (updated = -1)."""
        box = np.asarray(box, np.float64)
        track = Track(self.started, frame, _centre(box), box[2:4].copy(), self.new_filter(), -1,
                      box=box.astype(np.float32), detection_score=float(score), last_shown=frame, matched=True)
        self.started += 1
        self.tracks.append(track)
        return track

    def prepare(self, frame: int, frame_size: tuple[int, int], detections=None) -> list[Track]:
        """The tracks to pose in this frame, each with its ``box`` set. detections: None (not a detection frame)
        or (boxes (N, 4) xywh, scores (N,)) from the detector."""
        predicted = {id(t): t.predicted_box(frame) for t in self.tracks}
        for track in self.tracks:  # a hidden track's box counts: its person may still be there, unseen
            track.matched, track.box = False, predicted[id(track)]
            track.clear = all(overlap(predicted[id(track)], predicted[id(other)]) <= self.clear_overlap
                              for other in self.tracks if other is not track)
        if detections is not None:
            self._assign(frame, *detections)
        for track in self.tracks:
            if track.shown and track.clear and not track.matched:  # clear of the others: follow the pose
                follow = box_from_keypoints(track.keypoints, frame_size) if track.keypoints is not None else None
                track.box = follow if follow is not None else track.box
        return [t for t in self.tracks if t.shown]

    def _assign(self, frame: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        """Match the detections to the tracks in two rounds (ByteTrack's): the confident ones (score >=
        ``start_score``) to every track, then the weak ones to the tracks still unmatched. Confident detections
        left over start tracks; weak ones never do. A track missed twice in a row, or missed next to another
        person, is hidden; missed once and clear of the others, it keeps following its pose."""
        self._last_detection = frame
        boxes, scores = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)
        strong = np.flatnonzero(scores >= self.start_score)
        taken, left = self._match_round(strong, list(range(len(self.tracks))), boxes, scores)
        _, left = self._match_round(np.flatnonzero(scores < self.start_score), left, boxes, scores)
        for i in left:
            track = self.tracks[i]
            track.misses += 1
            track.shown = track.shown and track.clear and track.misses < 2
        for d in strong:
            if d not in taken:
                self._start(frame, boxes[d], scores[d])

    def _match_round(self, candidates: np.ndarray, left: list[int], boxes: np.ndarray,
                     scores: np.ndarray) -> tuple[set[int], list[int]]:
        """Match detections ``candidates`` (indices into boxes (N, 4) and scores (N,)) to the tracks ``left``
        (indices): the matched ones take their detection's box. Returns (detections taken, tracks still left)."""
        pairs = match_boxes(np.array([self.tracks[i].box for i in left]).reshape(-1, 4), boxes[candidates], self.min_iou)
        for ti, di in pairs:
            track, d = self.tracks[left[ti]], candidates[di]
            track.box, track.detection_score, track.misses = boxes[d], float(scores[d]), 0
            track.shown = track.matched = True
        matched = {ti for ti, _ in pairs}
        return {int(candidates[di]) for _, di in pairs}, [i for k, i in enumerate(left) if k not in matched]

    def observe(self, posed: list[Track], raw: np.ndarray, frame: int, time: float) -> list[dict]:
        """posed: the tracks :meth:`prepare` returned; raw (M, K, 3) their poses -> the people shown in this
        frame, ``[{"track_id", "box", "score", "keypoints" (K, 3) smoothed}]`` by track id. Ends the tracks
        hidden for more than ``max_lost`` frames."""
        for track, pose in zip(posed, raw):
            track.candidate = np.asarray(pose, np.float32)
        self._hide_duplicates(posed, frame)
        people = []
        for track in posed:
            if track.shown:
                self._commit_pose(track, frame)
                people.append(_person(track, track.smoother(track.keypoints.copy(), time)))
        self.tracks = [t for t in self.tracks if t.shown or frame - t.last_shown <= self.max_lost]
        self.most_at_once = max(self.most_at_once, len(people))
        return sorted(people, key=lambda p: p["track_id"])

    def _commit_pose(self, track: Track, frame: int) -> None:
        """A shown track keeps this frame's raw pose. Clear of the others, it corrects its motion with the pose's
        centre (and, when matched, takes the detection's size and re-measures the offset); next to another person
        it coasts, since its pose (and a detection box, which may hold both people) may be the other's."""
        centre = pose_centre(track.candidate)
        if track.updated < 0:  # a new track: its first pose places it
            track.centre, track.updated = centre, frame
            track.offset = _centre(track.box) - centre
        elif track.clear:
            track.correct(frame, centre, self.ALPHA, self.BETA)
            if track.matched:
                track.size, track.offset = np.asarray(track.box[2:4], np.float64), _centre(track.box) - track.centre
        track.keypoints, track.last_shown = track.candidate, frame

    def _hide_duplicates(self, posed: list[Track], frame: int) -> None:
        """Two shown tracks with the same pose: hide the one whose predicted centre is further from that pose
        (relative to its size; ties: the younger track)."""
        def misfit(track: Track) -> float:
            if track.updated < 0:
                return np.inf  # a track that has no motion yet yields to one that has
            moved = track.predicted_centre(frame)
            return float(np.linalg.norm(pose_centre(track.candidate) - moved) / max(track.size.max(), 1.0))

        for i, a in enumerate(posed):
            for b in posed[i + 1:]:
                if a.shown and b.shown and not (a.matched and b.matched) and same_person(a.candidate, b.candidate):
                    (b if (misfit(a), a.track_id) <= (misfit(b), b.track_id) else a).shown = False


def _person(track: Track, keypoints: np.ndarray) -> dict:
    """One person of a frame record (the prediction contract's keypoints and score, plus track id and box);
    score = mean joint score x the person score of the track's last detection."""
    return {"track_id": track.track_id, "box": [round(float(v), 2) for v in track.box],
            "score": round(float(np.mean(track.keypoints[:, 2])) * track.detection_score, 5),
            "keypoints": np.asarray(keypoints, np.float32)}


class SinglePersonTracker(Tracker):
    """``--detector none``: one person, the whole frame at first; then the box of the previous frame's raw keypoints
    (the whole frame again when too few are confident). Never hidden; a scene cut starts a new track (new id,
    fresh filter)."""

    def __init__(self, new_filter: Callable[[], object]):
        super().__init__(new_filter)

    def needs_detection(self, frame: int) -> bool:
        return False

    def prepare(self, frame: int, frame_size: tuple[int, int], detections=None) -> list[Track]:
        whole = np.array([0, 0, *frame_size], np.float32)
        if not self.tracks:
            self._start(frame, whole)
        track = self.tracks[0]
        follow = box_from_keypoints(track.keypoints, frame_size) if track.keypoints is not None else None
        track.box, track.shown = (follow if follow is not None else whole), True
        return [track]
