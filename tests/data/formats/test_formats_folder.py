import json
import logging
import os
import pathlib
import types

import numpy as np
import pytest
from PIL import Image

from posekit.data.formats import load_samples
from posekit.data.formats.folder import DEFAULT_NUM_KEYPOINTS, DEFAULT_SKELETON, read_image_folder
from posekit.data.sample import DataError

DATASETS = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
COCO_SAMPLES = DATASETS / "format-samples" / "coco"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(root / "0007.jpg")
    Image.new("L", (20, 50)).save(root / "b.png")
    Image.new("RGB", (10, 10)).save(root / "sub" / "c.jpg")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"")
    return root


def test_streams_whole_images(folder):
    stream = read_image_folder(folder)
    assert isinstance(stream, types.GeneratorType)
    samples = sorted(stream, key=lambda s: s.file_name)
    assert [s.file_name for s in samples] == ["0007.jpg", "b.png"]
    first, second = samples
    np.testing.assert_array_equal(first.box, [0, 0, 40, 30])
    np.testing.assert_array_equal(second.box, [0, 0, 20, 50])
    assert first.box.dtype == np.float32
    assert first.image_id == 7  # numeric stem
    assert first.keypoints.shape == (DEFAULT_NUM_KEYPOINTS, 3) and not first.keypoints.any()
    assert first.skeleton == DEFAULT_SKELETON
    assert first.image_path == str((folder / "0007.jpg").resolve())
    assert first.extra["image_size"] == (40, 30)


def test_recursive(folder):
    names = sorted(s.file_name for s in read_image_folder(folder, recursive=True))
    assert names == ["0007.jpg", "b.png", "sub/c.jpg"]


def test_stream_is_lazy(folder):
    stream = read_image_folder(folder)
    Image.new("RGB", (5, 6)).save(folder / "late.jpg")  # added after the call, before iterating
    assert "late.jpg" in {s.file_name for s in stream}


def test_unreadable_images_are_skipped_with_a_warning(folder, caplog):
    (folder / "broken.jpg").write_text("not a jpeg")
    with caplog.at_level(logging.WARNING):
        names = {s.file_name for s in read_image_folder(folder)}
    assert names == {"0007.jpg", "b.png"}
    assert "broken.jpg" in caplog.text


def test_symlink_out_of_the_folder_is_skipped(folder, tmp_path):
    Image.new("RGB", (5, 5)).save(tmp_path / "outside.jpg")
    os.symlink(tmp_path / "outside.jpg", folder / "link.jpg")
    assert "link.jpg" not in {s.file_name for s in read_image_folder(folder)}


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nothing: image folder not found"):
        read_image_folder(tmp_path / "nothing")


def test_boxes_by_numeric_stem(folder, tmp_path):
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([
        {"image_id": 7, "category_id": 1, "bbox": [1, 2, 10, 10], "score": 0.3},
        {"image_id": 7, "category_id": 1, "bbox": [30, 20, 20, 20], "score": 0.9},  # clipped to 40x30
        {"image_id": 8, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},  # no such image
    ]))
    samples = list(read_image_folder(folder, boxes_file=det_file))
    assert [s.extra["score"] for s in samples] == [0.9, 0.3]  # only 0007.jpg has boxes, best first
    np.testing.assert_allclose(samples[0].box, [30, 20, 10, 10])
    np.testing.assert_allclose(samples[1].box, [1, 2, 10, 10])
    assert [s.ann_id for s in samples] == [0, 1]
    assert len(list(read_image_folder(folder, boxes_file=det_file, score_threshold=0.5))) == 1


def test_boxes_by_file_name(folder, tmp_path):
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([
        {"file_name": "b.png", "bbox": [2, 3, 4, 5], "score": 0.7},
        {"file_name": "sub/c.jpg", "image_id": 0, "bbox": [0, 0, 5, 5], "score": 0.8},
    ]))
    samples = sorted(read_image_folder(folder, boxes_file=det_file, recursive=True), key=lambda s: s.file_name)
    assert [s.file_name for s in samples] == ["b.png", "sub/c.jpg"]
    np.testing.assert_allclose(samples[0].box, [2, 3, 4, 5])


def test_bad_boxes_file_fails_at_the_call(folder, tmp_path):
    det_file = tmp_path / "dets.json"
    det_file.write_text('[{"image_id": 7, "bbox": [1, 2')
    with pytest.raises(DataError, match="dets.json: invalid or truncated JSON"):
        read_image_folder(folder, boxes_file=det_file)


def test_load_samples_folder(folder):
    samples = load_samples(f"folder:{folder}")
    assert isinstance(samples, list) and len(samples) == 2
    with pytest.raises(ValueError, match="no splits"):
        load_samples(f"folder:{folder}@train")


@pytest.mark.shared_data
def test_real_detections_matched_by_image_id():
    det_file = COCO_SAMPLES / "test_coco_det_AP_H_56.json"
    if not det_file.exists():
        pytest.skip(f"shared data not available: {det_file}")
    raw = json.loads(det_file.read_text())
    samples = list(read_image_folder(COCO_SAMPLES, boxes_file=det_file, score_threshold=0.5))
    expected = sum(1 for d in raw if d["score"] >= 0.5 and d["category_id"] == 1)
    assert len(samples) == expected > 0
    for sample in samples:
        assert sample.image_id == int(pathlib.Path(sample.file_name).stem)
        width, height = sample.extra["image_size"]
        x, y, w, h = sample.box
        assert x >= 0 and y >= 0 and x + w <= width + 1e-3 and y + h <= height + 1e-3
