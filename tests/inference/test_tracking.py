"""Tracking people in video: box matching on literal boxes, tracks that start, coast, come back and end, and a
fresh smoothing filter for every new track and after a cut."""
from __future__ import annotations

import numpy as np
import pytest

from posekit.inference.smoothing import EMAFilter, make_filter
from posekit.inference.tracking import (SinglePersonTracker, Tracker, box_from_keypoints, box_iou, match_boxes,
                                        same_person)

FRAME = (640, 360)


def pose_in(box, score: float = 0.9) -> np.ndarray:
    """(14, 3): a stand-in pose filling the box (x, y, w, h) on a 2 x 7 grid, every joint scoring ``score``."""
    x, y, w, h = box
    xs, ys = np.meshgrid(np.linspace(x + 0.2 * w, x + 0.8 * w, 2), np.linspace(y + 0.1 * h, y + 0.9 * h, 7))
    return np.stack([xs.ravel(), ys.ravel(), np.full(14, score)], axis=1).astype(np.float32)


def step(tracker, frame, detections=None):
    """One frame: prepare, pose every box with :func:`pose_in`, observe -> the people shown."""
    posed = tracker.prepare(frame, FRAME, detections)
    raw = np.array([pose_in(t.box) for t in posed]).reshape(-1, 14, 3)
    return tracker.observe(posed, raw, frame, frame / 30)


def detections(*boxes, score=0.9):
    return np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32)


def test_iou_and_one_to_one_matching_on_literal_boxes():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 10, 10], [0, 0, 10, 10], [50, 50, 4, 4]])
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0]])
    tracks = [[0, 0, 10, 10], [20, 0, 10, 10], [200, 200, 10, 10]]
    found = [[21, 1, 10, 10], [1, 0, 10, 10], [100, 100, 5, 5]]
    assert match_boxes(np.array(tracks), np.array(found)) == [(0, 1), (1, 0)]  # the far ones match nothing
    # the assignment maximises the summed IoU: greedy would give track 0 its best box (IoU 0.82) and leave track
    # 1 only a box under min_iou (0.25); the Hungarian assignment pairs 0.67 + 0.54
    tracks = np.array([[0, 0, 10, 10], [4, 0, 10, 10]], np.float32)
    found = np.array([[1, 0, 10, 10], [-2, 0, 10, 10]], np.float32)
    assert match_boxes(tracks, found) == [(0, 1), (1, 0)]
    assert match_boxes(np.zeros((0, 4)), found) == [] and match_boxes(tracks, np.zeros((0, 4))) == []


def test_same_person_tells_one_pose_twice_from_two_people_side_by_side():
    a = pose_in([100, 50, 60, 150])
    assert same_person(a, a + [[2, -1, 0]])
    assert not same_person(a, pose_in([130, 50, 60, 150]))  # overlapping boxes, 30 px apart


def test_box_from_keypoints_keeps_only_confident_joints():
    kp = pose_in([10, 20, 40, 80])
    kp[:10, 2] = 0.1
    box = box_from_keypoints(kp, FRAME)
    np.testing.assert_allclose(box, [kp[10:, 0].min(), kp[10:, 1].min(), np.ptp(kp[10:, 0]), np.ptp(kp[10:, 1])])
    kp[:, 2] = 0.1
    assert box_from_keypoints(kp, FRAME) is None


def test_tracks_start_keep_their_ids_then_end_after_max_lost_frames():
    tracker = Tracker(lambda: make_filter("none"), detect_every=1, max_lost=3, start_score=0.5)
    a, b = [100, 100, 60, 150], [400, 100, 60, 150]
    people = step(tracker, 0, detections(a, b))
    assert [p["track_id"] for p in people] == [0, 1] and tracker.started == 2
    assert [p["box"] for p in people] == [a, b]
    assert [p["track_id"] for p in step(tracker, 1, detections(b, a))] == [0, 1]
    # b missed once: clear of a, it keeps following its pose; missed twice: hidden
    assert [p["track_id"] for p in step(tracker, 2, detections(a))] == [0, 1]
    assert [p["track_id"] for p in step(tracker, 3, detections(a))] == [0]
    for frame in (4, 5, 6):
        step(tracker, frame, detections(a))
    assert [t.track_id for t in tracker.tracks] == [0]  # hidden since frame 3, ended after 3 more frames
    people = step(tracker, 7, detections(a, b))
    assert [p["track_id"] for p in people] == [0, 2] and tracker.started == 3 and tracker.most_at_once == 2


def test_a_weak_detection_confirms_a_track_but_never_starts_one():
    tracker = Tracker(lambda: make_filter("none"), detect_every=1, start_score=0.5)
    step(tracker, 0, detections([100, 100, 60, 150]))
    weak = (np.array([[102, 100, 60, 150], [400, 100, 60, 150]], np.float32), np.array([0.1, 0.1], np.float32))
    people = step(tracker, 1, weak)
    assert [p["track_id"] for p in people] == [0] and tracker.started == 1
    assert people[0]["box"] == [102, 100, 60, 150]
    assert tracker.tracks[0].misses == 0


def test_a_hidden_track_coasts_at_its_velocity_and_is_found_again():
    """A person moving 6 px per frame, missed by the detector for 12 frames, is found again 72 px on under its id;
    with the velocity forgotten the same detection would start a new track."""
    def run(forget_velocity: bool):
        tracker = Tracker(lambda: make_filter("none"), detect_every=1, max_lost=30)
        for frame in range(10):
            step(tracker, frame, detections([100 + 6 * frame, 100, 40, 150]))
        for frame in range(10, 22):
            step(tracker, frame, detections())
        if forget_velocity:
            tracker.tracks[0].velocity[:] = 0
        return step(tracker, 22, detections([100 + 6 * 22, 100, 40, 150]))

    assert [p["track_id"] for p in run(False)] == [0]
    assert [p["track_id"] for p in run(True)] == [1]


def test_every_new_track_and_every_cut_starts_a_fresh_filter():
    tracker = Tracker(lambda: EMAFilter(0.3), detect_every=1)
    box = [100, 100, 60, 150]
    step(tracker, 0, detections(box))
    moved = step(tracker, 1, detections([130, 100, 60, 150]))[0]
    raw = pose_in([130, 100, 60, 150])
    assert not np.allclose(moved["keypoints"][:, :2], raw[:, :2])  # smoothed with frame 0
    tracker.reset()  # a scene cut
    assert tracker.tracks == [] and tracker.needs_detection(2)
    first = step(tracker, 2, detections([130, 100, 60, 150]))[0]
    assert first["track_id"] == 1
    np.testing.assert_allclose(first["keypoints"], raw)  # nothing of the old track's filter


def test_single_person_tracker_follows_its_pose_and_restarts_after_a_cut():
    tracker = SinglePersonTracker(lambda: make_filter("none"))
    assert not tracker.needs_detection(0)
    first = tracker.prepare(0, FRAME)
    np.testing.assert_array_equal(first[0].box, [0, 0, 640, 360])
    tracker.observe(first, pose_in([100, 50, 60, 150])[None], 0, 0.0)
    np.testing.assert_allclose(tracker.prepare(1, FRAME)[0].box, box_from_keypoints(pose_in([100, 50, 60, 150]), FRAME))
    tracker.reset()
    again = tracker.prepare(2, FRAME)
    assert again[0].track_id == 1 and list(again[0].box) == [0, 0, 640, 360]


def test_tracker_refuses_bad_options():
    with pytest.raises(ValueError, match="detect_every >= 1"):
        Tracker(lambda: make_filter("none"), detect_every=0)
