"""What `posekit predict` accepts: one image, a folder, a glob, a video; and one sample per detected person."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.inference.sources import detected_samples, image_paths, source_kind


@pytest.fixture()
def photos(tmp_path):
    for name in ("b.jpg", "a.png"):
        cv2.imwrite(str(tmp_path / name), np.full((40, 60, 3), 90, np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "clip.mp4").write_bytes(b"")
    return tmp_path


def test_each_kind_of_source_and_the_reason_when_none_fits(photos):
    assert source_kind(str(photos / "b.jpg")) == "image"
    assert source_kind(str(photos)) == "folder"
    assert source_kind(str(photos / "*.jpg")) == "glob"
    assert source_kind(str(photos / "clip.mp4")) == "video"
    assert [p.name for p in image_paths(str(photos))] == ["a.png", "b.jpg"]
    assert [p.name for p in image_paths(str(photos / "*.jpg"))] == ["b.jpg"]
    with pytest.raises(ValueError, match=r"notes.txt: a file, but neither an image"):
        source_kind(str(photos / "notes.txt"))
    with pytest.raises(ValueError, match=r"missing.jpg: no such image, folder or video"):
        image_paths(str(photos / "missing.jpg"))
    with pytest.raises(ValueError, match=r"\*.gif: glob without any image"):
        image_paths(str(photos / "*.gif"))


class TwoPeopleInA:
    """A stand-in detector: two people in a.png, nobody elsewhere."""

    def detect(self, image):
        if image.shape[1] == 61:
            return np.array([[1, 2, 10, 20], [30, 5, 8, 9]], np.float32), np.array([0.9, 0.4], np.float32)
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def test_one_sample_per_detected_person_with_its_score(photos):
    cv2.imwrite(str(photos / "a.png"), np.full((40, 61, 3), 90, np.uint8))
    counts = {}
    samples = list(detected_samples(image_paths(str(photos)), TwoPeopleInA(), 14, "lsp", counts))
    assert [(s.file_name, s.box.tolist(), s.extra["score"]) for s in samples] == [
        ("a.png", [1, 2, 10, 20], pytest.approx(0.9)), ("a.png", [30, 5, 8, 9], pytest.approx(0.4))]
    assert samples[0].keypoints.shape == (14, 3) and samples[1].ann_id == 1
    assert counts == {"images": 2, "people": 2, "empty": 1, "unreadable": 0}


def test_the_detected_image_is_handed_on_not_decoded_again(photos):
    from posekit.inference.sources import LastImage

    cv2.imwrite(str(photos / "a.png"), np.full((40, 61, 3), 90, np.uint8))
    last = LastImage()
    first = next(detected_samples(image_paths(str(photos)), TwoPeopleInA(), 14, "lsp", last=last))
    assert last.read(first) is last.image and last.image.shape == (40, 61, 3)
    other = first.__class__(**{**first.__dict__, "image_path": str(photos / "b.jpg")})
    assert last.read(other).shape == (40, 60, 3)  # any other image is read from its file
