"""Malformed detection-box files (read_coco_detections, `posekit predict FOLDER --boxes`), fuzzed and hand-made:
the contract of reader_contract.py."""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from posekit.data.formats import read_coco_detections, read_image_folder
from posekit.data.sample import DataError

from reader_contract import (FUZZ, JSON_VALUES, NAN, assert_names_file, assert_valid_samples, number_lists,
                             write_image, write_json)

# -- detection boxes (read_coco_detections and `posekit predict FOLDER --boxes`) ----------------------------
@pytest.fixture(scope="module")
def det_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dets")
    (root / "images").mkdir()
    write_image(root / "images" / "000001.jpg", 40, 30)
    write_image(root / "images" / "street.jpg", 50, 50)
    return root


def base_detections():
    return [{"image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 20], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.95},
            {"image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "score": 0.99}]


def assert_valid_detections(by_image) -> None:
    for image_id, boxes in by_image.items():
        assert isinstance(image_id, int)
        for box, score in boxes:
            assert box.shape == (4,) and np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0, box
            assert math.isfinite(score)


def test_detections_known_answers(det_dir):
    path = write_json(det_dir / "dets.json", base_detections())
    by_image = read_coco_detections(path, score_threshold=0.6)
    assert list(by_image) == [1] and [s for _, s in by_image[1]] == [0.95, 0.9]  # category 3 ignored, sorted
    by_name = write_json(det_dir / "dets_by_name.json", base_detections() + [
        {"file_name": "street.jpg", "category_id": 1, "bbox": [0, 0, 60, 10], "score": 0.5}])
    samples = list(read_image_folder(det_dir / "images", boxes_file=by_name))
    boxes = {s.file_name: s.box.tolist() for s in samples}
    assert sorted(s.file_name for s in samples) == ["000001.jpg", "000001.jpg", "street.jpg"]
    assert boxes["street.jpg"] == [0, 0, 50, 10]  # clipped to the 50x50 image


DET_CASES = {
    "root_is_object": ({"detections": []}, "must be a JSON list"),
    "entry_not_object": ([1, 2], "detection must be an object"),
    "no_image_id": ([{"bbox": [1, 1, 2, 2], "score": 1}], "without 'image_id'"),
    "no_bbox": ([{"image_id": 1, "score": 1}], "without 'bbox'"),
    "no_score": ([{"image_id": 1, "bbox": [1, 1, 2, 2]}], "without 'score'"),
    "bbox_nan": ([{"image_id": 1, "bbox": [1, NAN, 2, 2], "score": 1}], "NaN or infinite"),
    "bbox_short": ([{"image_id": 1, "bbox": [1, 1, 2], "score": 1}], "bbox has shape"),
    "bbox_beyond_float32": ([{"image_id": 1, "bbox": [1, 1, 1e39, 2], "score": 1}], ""),
    "score_nan": ([{"image_id": 1, "bbox": [1, 1, 2, 2], "score": NAN}], "NaN or infinite"),
    "score_string": ([{"image_id": 1, "bbox": [1, 1, 2, 2], "score": "high"}], "score must be a number"),
    "image_id_float": ([{"image_id": 1.5, "bbox": [1, 1, 2, 2], "score": 1}], "must be an integer"),
    "category_null": ([{"image_id": 1, "category_id": None, "bbox": [1, 1, 2, 2], "score": 1}], "must be an integer"),
}


@pytest.mark.parametrize("name", sorted(DET_CASES))
def test_detection_cases(det_dir, name):
    doc, expected = DET_CASES[name]
    path = write_json(det_dir / f"{name}.json", doc)
    try:
        by_image = read_coco_detections(path)
    except DataError as err:
        assert_names_file(err, path, record=None if name == "root_is_object" else True)
        assert expected in str(err)
    else:
        assert_valid_detections(by_image)
        pytest.fail(f"expected a DataError about {expected!r}, got {by_image}")


def test_degenerate_detection_boxes_are_counted_not_silent(det_dir, caplog):
    dets = base_detections() + [{"image_id": 1, "bbox": [1, 1, 0, 5], "score": 1},
                                {"image_id": 1, "bbox": [1, 1, 5, -5], "score": 1}]
    caplog.set_level(logging.WARNING, logger="posekit")
    by_image = read_coco_detections(write_json(det_dir / "degenerate.json", dets))
    assert len(by_image[1]) == 2 and "ignored 2 detections" in caplog.text


@st.composite
def detection_mutations(draw):
    doc = base_detections()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(doc) - 1))
        action = draw(st.sampled_from(["set", "set", "delete", "duplicate", "replace"]))
        if action == "duplicate":
            doc.append(copy.deepcopy(doc[index]))
        elif action == "replace":
            doc[index] = draw(JSON_VALUES)
        elif isinstance(doc[index], dict):
            key = draw(st.sampled_from(["image_id", "file_name", "category_id", "bbox", "score"]))
            if action == "delete":
                doc[index].pop(key, None)
            else:
                doc[index][key] = draw(st.one_of(JSON_VALUES, number_lists((4,))))
    return doc


@FUZZ
@given(doc=detection_mutations())
def test_detection_fuzz(det_dir, doc):
    path = write_json(det_dir / "fuzz.json", doc)
    for read in (lambda: read_coco_detections(path),
                 lambda: list(read_image_folder(det_dir / "images", boxes_file=path))):
        try:
            result = read()
        except DataError as err:
            assert_names_file(err, path)
            continue
        if isinstance(result, dict):
            assert_valid_detections(result)
        else:
            assert_valid_samples(result, det_dir / "images")


@pytest.mark.parametrize("file_name", ["../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "C:/Windows/win.ini"])
def test_box_file_names_outside_the_folder_are_refused(det_dir, file_name):
    path = write_json(det_dir / "hostile_dets.json", [{"file_name": file_name, "bbox": [0, 0, 5, 5], "score": 1.0}])
    with pytest.raises(DataError) as info:
        list(read_image_folder(det_dir / "images", boxes_file=path))
    assert_names_file(info.value, path, record=True)


def test_boxes_for_images_that_are_missing_are_reported(det_dir, caplog):
    dets = base_detections() + [{"file_name": "not_in_folder.jpg", "bbox": [0, 0, 5, 5], "score": 1.0}]
    path = write_json(det_dir / "missing_image_dets.json", dets)
    caplog.set_level(logging.INFO, logger="posekit")
    samples = list(read_image_folder(det_dir / "images", boxes_file=path))
    assert [s.file_name for s in samples] == ["000001.jpg", "000001.jpg"]
    assert "not_in_folder.jpg" in caplog.text  # a box whose image is missing must not vanish silently
