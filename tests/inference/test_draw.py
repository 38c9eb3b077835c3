"""Drawings: the left / right legend in the corner, low-score joints left out, track ids next to people."""
from __future__ import annotations

import numpy as np

from posekit.inference.draw import DEFAULT_JOINT_THRESHOLD, LEFT, RIGHT, draw_legend, draw_people, draw_pose
from posekit.skeletons import get_skeleton


def grey(h=200, w=300) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ."""
    return (a != b).any(axis=2)


def test_legend_is_drawn_in_the_top_left_corner_only_with_both_colours():
    image = grey()
    out = draw_legend(image)
    diff = changed(image, out)
    ys, xs = np.nonzero(diff)
    assert diff.any() and ys.max() < 60 and xs.max() < 80  # a small key in the corner
    assert (image == 128).all()  # a copy, the input is left alone
    colours = {tuple(c) for c in out[:60, :80].reshape(-1, 3)}
    assert tuple(LEFT) in colours and tuple(RIGHT) in colours


def test_joints_scoring_at_or_under_the_threshold_are_not_drawn():
    keypoints = np.array([[50, 50, 0.9], [150, 120, DEFAULT_JOINT_THRESHOLD - 0.05], [250, 150, 0.15]], np.float32)
    out = draw_pose(grey(), keypoints, None)
    diff = changed(grey(), out)
    assert diff[45:56, 45:56].any()
    assert not diff[110:131, 140:161].any() and not diff[140:161, 240:261].any()
    shown = draw_pose(grey(), keypoints, None, threshold=0.1)  # the option lowers it
    assert changed(grey(), shown)[110:131, 140:161].any()


def test_a_limb_needs_both_of_its_joints():
    skeleton = get_skeleton("lsp")
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[0], keypoints[1] = [60, 150, 0.9], [200, 150, 0.05]  # right ankle kept, right knee hidden
    diff = changed(grey(), draw_pose(grey(), keypoints, skeleton))
    assert diff[145:156, 55:66].any() and not diff[145:156, 100:160].any()


def test_people_get_their_track_id_above_them_and_the_legend():
    image = grey(240, 320)
    person = {"track_id": 7, "box": [150, 100, 60, 120], "keypoints": np.array([[180, 110, 0.9], [180, 200, 0.9]])}
    with_label = draw_people(image, [person], None)
    without = draw_people(image, [person], None, track_labels=False)
    label = changed(without, with_label)
    ys, xs = np.nonzero(label)
    assert label.any() and ys.max() < 110 and 150 <= xs.min() and xs.max() < 230  # just above the person
    assert changed(image, without)[:30, :40].any()  # legend
