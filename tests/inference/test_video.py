"""Video frames: a damaged mp4 is read past its bad stretch with the right frame numbers and counts; the
per-frame records of predict_video (people with track ids) with stand-in models."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.inference.video import VideoCounts, predict_video, read_frames

FRAMES = 30  # the clips of tests/conftest.py (intact_clip, damaged_clip)


def frame_number(frame: np.ndarray) -> int:
    """The number a frame of the numbered clips carries (its background grey level / 8)."""
    return int(round(float(np.median(frame[40:, :, 1])) / 8))


def test_a_damaged_video_is_read_past_its_bad_frames_with_their_numbers(intact_clip, damaged_clip):
    counts = VideoCounts()
    capture = cv2.VideoCapture(str(intact_clip))
    assert [i for i, _ in read_frames(capture, counts)] == list(range(FRAMES))
    assert (counts.in_file, counts.read, counts.skipped, counts.not_decoded_at_end) == (FRAMES, FRAMES, 0, 0)

    counts = VideoCounts()
    capture = cv2.VideoCapture(str(damaged_clip))
    frames = list(read_frames(capture, counts))
    numbers = [i for i, _ in frames]
    assert counts.in_file == FRAMES and counts.read == len(frames)
    assert counts.skipped >= 1 and counts.read + counts.skipped + counts.not_decoded_at_end == FRAMES
    assert numbers[-1] > numbers[0] + len(numbers) - 1  # a gap: frames after the damage were still read
    # every decoded frame carries its own number (within one: the codec blurs grey levels a little)
    assert all(abs(frame_number(frame) - i) <= 1 for i, frame in frames)


def test_a_bounded_run_of_bad_frames_stops_reading(damaged_clip):
    counts = VideoCounts()
    frames = list(read_frames(cv2.VideoCapture(str(damaged_clip)), counts, max_bad_run=1))
    assert counts.skipped == 0 and counts.not_decoded_at_end == FRAMES - len(frames) > 0


class BoxPoser:
    """A stand-in predictor: every person's 14 joints spread over the box it is given, scoring 0.8."""
    config = {"skeleton": "lsp"}
    num_keypoints = 14

    def predict(self, image, boxes):
        out = []
        for x, y, w, h in np.asarray(boxes, np.float32).reshape(-1, 4):
            t = np.linspace(0.1, 0.9, 14)
            out.append(np.stack([x + w * t, y + h * t[::-1], np.full(14, 0.8)], axis=1))
        return np.array(out, np.float32).reshape(-1, 14, 3)


class TwoPeople:
    """A stand-in detector: two fixed people on every frame."""
    score_threshold = 0.15

    def __init__(self):
        self.calls = 0

    def detect(self, image, min_score=None):
        self.calls += 1
        return np.array([[2, 2, 20, 40], [36, 4, 20, 40]], np.float32), np.array([0.9, 0.6], np.float32)


def test_records_carry_each_person_with_track_id_box_score_and_keypoints(tmp_path, damaged_clip):
    detector, counts = TwoPeople(), VideoCounts()
    drawn = tmp_path / "drawn.mp4"
    # no cut detection: the numbered clip brightens by 8 grey levels a frame, and by 80 over its damaged
    # stretch, which is a cut by colour
    records = predict_video(BoxPoser(), damaged_clip, detector=detector, detect_every=5, draw_path=drawn,
                            counts=counts, cut_threshold=None)
    decoded = [i for i, _ in read_frames(cv2.VideoCapture(str(damaged_clip)), VideoCounts())]
    assert [r["frame"] for r in records] == decoded and counts.written == len(records)
    assert all(r["time"] == round(r["frame"] / 30, 4) for r in records)
    for record in records:
        assert [p["track_id"] for p in record["people"]] == [0, 1]
        first = record["people"][0]
        assert set(first) == {"track_id", "box", "score", "keypoints"} and np.shape(first["keypoints"]) == (14, 3)
    assert records[0]["people"][0]["box"] == [2, 2, 20, 40]
    assert records[0]["people"][0]["score"] == pytest.approx(0.8 * 0.9)  # mean joint score x detection score
    assert counts.tracks_started == 2 and counts.most_people == 2
    # the detector ran on the first frame and then every 5 frames that were read (the frame numbers jump)
    assert detector.calls == counts.detector_frames < len(records)
    assert int(cv2.VideoCapture(str(drawn)).get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)


def test_without_a_detector_it_is_one_person_on_the_whole_first_frame(damaged_clip):
    records = predict_video(BoxPoser(), damaged_clip, cut_threshold=None)  # no cuts: see above
    assert all([p["track_id"] for p in r["people"]] == [0] for r in records)
    assert records[0]["people"][0]["box"] == [0, 0, 64, 48]


def test_a_video_of_which_no_frame_decodes_is_an_error(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="noise.mp4: (cannot open video|no frame could be decoded)"):
        predict_video(BoxPoser(), path)
