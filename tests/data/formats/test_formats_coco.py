import copy
import json
import logging
import pathlib

import numpy as np
import pytest
from PIL import Image

from posekit.data.formats import load_samples
from posekit.data.formats.coco import read_coco, read_coco_detections, split_from_annotation_name
from posekit.data.sample import DataError

DATASETS = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
COCO_MINI = DATASETS / "coco-mini"
SAMPLES = DATASETS / "format-samples"


def _need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


# -- a tiny valid COCO set written to tmp_path --------------------------------------------------
def _keypoints(k=17, labelled=(0, 1, 2)):
    flat = []
    for j in range(k):
        flat += [10.0 + j, 20.0 + j, 2] if j in labelled else [0, 0, 0]
    return flat


def _base_coco():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 3,
             "keypoints": _keypoints(), "bbox": [5, 6, 30, 20], "area": 600},
            {"id": 8, "image_id": 2, "category_id": 1, "iscrowd": 0, "num_keypoints": 3,
             "keypoints": _keypoints(), "bbox": [50, 40, 30, 20], "area": 600},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
    }


def _write_coco(tmp_path, data, name="ann.json", images=("a.jpg", "b.jpg")) -> pathlib.Path:
    for image in images:
        Image.new("RGB", (64, 48), (90, 90, 90)).save(tmp_path / image)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_valid_tiny_set(tmp_path):
    data = _base_coco()
    data["categories"][0]["keypoints"] = [  # the COCO names -> skeleton 'coco'
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle"]
    samples = read_coco(_write_coco(tmp_path, data))
    assert [s.ann_id for s in samples] == [7, 8]
    first, second = samples
    assert first.skeleton == "coco" and first.image_id == 1 and first.file_name == "a.jpg"
    assert first.image_path == str((tmp_path / "a.jpg").resolve())
    np.testing.assert_allclose(first.box, [5, 6, 30, 20])
    assert first.box.dtype == np.float32 and first.keypoints.dtype == np.float32
    assert first.keypoints.shape == (17, 3)
    np.testing.assert_allclose(first.keypoints[:3], [[10, 20, 2], [11, 21, 2], [12, 22, 2]])
    assert np.all(first.keypoints[3:] == 0)
    # [50, 40, 30, 20] clipped to the 64x48 image -> [50, 40, 14, 8]
    np.testing.assert_allclose(second.box, [50, 40, 14, 8])
    assert first.extra["area"] == 600 and first.extra["image_size"] == (64, 48)


def test_unregistered_keypoint_names_give_custom_skeleton(tmp_path):
    samples = read_coco(_write_coco(tmp_path, _base_coco()))  # names k0..k16 match no skeleton
    assert samples[0].skeleton == "custom17"
    assert samples[0].extra["keypoint_names"][0] == "k0"


def test_skeleton_by_count_without_categories(tmp_path):
    data = _base_coco()
    del data["categories"]
    assert read_coco(_write_coco(tmp_path, data))[0].skeleton == "coco"
    for ann in data["annotations"]:
        ann["keypoints"] = _keypoints(16)
    assert read_coco(_write_coco(tmp_path, data))[0].skeleton == "mpii"
    for ann in data["annotations"]:
        ann["keypoints"] = _keypoints(5)
    assert read_coco(_write_coco(tmp_path, data))[0].skeleton == "custom5"


def test_unlabelled_keypoints_are_zeroed(tmp_path):
    data = _base_coco()
    data["annotations"][0]["keypoints"][3:6] = [33.0, 44.0, 0]  # joint 1 unlabelled but with coordinates
    sample = read_coco(_write_coco(tmp_path, data))[0]
    np.testing.assert_array_equal(sample.keypoints[1], [0, 0, 0])


def test_crowd_and_empty_people_are_skipped_not_errors(tmp_path, caplog):
    data = _base_coco()
    data["annotations"][0]["iscrowd"] = 1
    data["annotations"][1]["keypoints"] = [0] * 51
    data["annotations"][1]["num_keypoints"] = 0
    with caplog.at_level(logging.INFO, logger="posekit.data.formats.coco"):
        assert read_coco(_write_coco(tmp_path, data)) == []
    assert "1 crowd" in caplog.text and "1 with fewer than 1 labelled keypoints" in caplog.text


def test_min_keypoints(tmp_path):
    path = _write_coco(tmp_path, _base_coco())
    assert len(read_coco(path, min_keypoints=3)) == 2
    assert read_coco(path, min_keypoints=4) == []


def test_width_and_height_missing_read_from_the_image(tmp_path):
    data = _base_coco()
    for image in data["images"]:
        del image["width"], image["height"]
    samples = read_coco(_write_coco(tmp_path, data))
    np.testing.assert_allclose(samples[1].box, [50, 40, 14, 8])


def test_images_found_in_images_subfolder(tmp_path):
    (tmp_path / "images").mkdir()
    path = _write_coco(tmp_path, _base_coco(), images=())
    _write_coco(tmp_path / "images", _base_coco(), name="unused.json")
    samples = read_coco(path)
    assert samples[0].image_path == str((tmp_path / "images" / "a.jpg").resolve())


# -- crafted bad files: each a DataError naming the file and the record -------------------------
def _mutated(mutate):
    data = _base_coco()
    mutate(data)
    return data


BAD_CASES = {
    "keypoints_wrong_length": (lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 16), "annotation 7",
                               "48 values"),
    "keypoints_not_multiple_of_3": (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "annotation 7",
                                    "multiple of 3"),
    "keypoints_nan": (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, float("nan")), "annotation 7",
                      "NaN"),
    "keypoints_strings": (lambda d: d["annotations"][0].update(keypoints=["a"] * 51), "annotation 7", "numbers"),
    "visibility_3": (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 3), "annotation 7", "0, 1 or 2"),
    "negative_box": (lambda d: d["annotations"][0].update(bbox=[5, 6, -30, 20]), "annotation 7", "non-positive"),
    "box_outside_image": (lambda d: d["annotations"][0].update(bbox=[100, 6, 30, 20]), "annotation 7",
                          "outside the 64x48 image"),
    "box_missing": (lambda d: d["annotations"][0].pop("bbox"), "annotation 7", "'bbox'"),
    "duplicate_annotation_id": (lambda d: d["annotations"][1].update(id=7), "annotation 7", "duplicate annotation"),
    "duplicate_image_id": (lambda d: d["images"][1].update(id=1), "image 1", "duplicate image id"),
    "unknown_image_id": (lambda d: d["annotations"][1].update(image_id=99), "annotation 8", "unknown image_id 99"),
    "path_escape": (lambda d: d["images"][0].update(file_name="../../etc/passwd"), "image 1",
                    "outside the dataset root"),
    "absolute_path": (lambda d: d["images"][0].update(file_name="/etc/passwd"), "image 1", "absolute file name"),
    "missing_image": (lambda d: d["images"][0].update(file_name="gone.jpg"), "image 1 (gone.jpg)",
                      "image file not found"),
    "string_id": (lambda d: d["annotations"][0].update(id="seven"), "annotation #0", "must be an integer"),
    "annotation_not_object": (lambda d: d["annotations"].__setitem__(0, [1, 2]), "annotation #0",
                              "must be an object"),
    "keypoint_count_differs": (lambda d: (d.pop("categories"), d["annotations"][1].update(keypoints=_keypoints(14))),
                               "annotation 8", "earlier annotations have 17"),
    "category_declares_other_count": (lambda d: d["categories"][0].update(keypoints=["a"] * 14), "annotation 7",
                                      "declares 14"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_raises_data_error_naming_file_and_record(tmp_path, case):
    mutate, record, what = BAD_CASES[case]
    path = _write_coco(tmp_path, _mutated(mutate), name=f"{case}.json")
    with pytest.raises(DataError) as info:
        read_coco(path)
    message = str(info.value)
    assert f"{case}.json" in message and f"record {record}" in message and what in message, message
    assert str(info.value.record).startswith(record)


@pytest.mark.parametrize("content, what", [
    ('{"images": [], "annotations": [', "invalid or truncated JSON"),
    ("[1, 2, 3]", "JSON root must be an object"),
    ('{"images": []}', "missing top-level key 'annotations'"),
    ('{"images": {}, "annotations": []}', "'images' must be a list"),
    ('{"images": [], "annotations": [], "categories": 5}', "'categories' must be a list"),
    ("", "empty"),
])
def test_bad_file_structure(tmp_path, content, what):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(DataError, match=f"broken.json: .*{what}"):
        read_coco(path)


def test_skip_invalid_collects_every_bad_record(tmp_path, caplog):
    data = _base_coco()
    good = copy.deepcopy(data["annotations"][0])
    bad_nan = dict(good, id=20, keypoints=[float("nan")] * 51)
    bad_box = dict(good, id=21, bbox=[1, 1, 0, 5])
    bad_image = dict(good, id=22, image_id=77)
    data["annotations"] += [bad_nan, bad_box, bad_image, dict(good, id=23)]
    data["images"].append({"id": 3, "file_name": "../outside.jpg"})
    data["annotations"].append(dict(good, id=24, image_id=3))
    path = _write_coco(tmp_path, data)
    with pytest.raises(DataError, match="annotation 20"):
        read_coco(path)
    report = []
    with caplog.at_level(logging.WARNING):
        samples = read_coco(path, skip_invalid=True, report=report)
    assert [s.ann_id for s in samples] == [7, 8, 23]
    assert all(isinstance(e, DataError) for e in report)
    assert [e.record for e in report] == ["annotation 20", "annotation 21", "annotation 22", "image 3 (../outside.jpg)"]
    assert "skipped 4 invalid record(s)" in caplog.text and "annotation 21" in caplog.text
    # load_samples passes the options through
    report2 = []
    assert len(load_samples(f"coco:{path}", skip_invalid=True, report=report2)) == 3 and len(report2) == 4


def test_missing_image_reported_once_per_image(tmp_path):
    data = _base_coco()
    data["annotations"].append(dict(copy.deepcopy(data["annotations"][0]), id=9))
    data["images"][0]["file_name"] = "gone.jpg"
    report = []
    samples = read_coco(_write_coco(tmp_path, data), skip_invalid=True, report=report)
    assert [s.ann_id for s in samples] == [8]
    assert [e.record for e in report] == ["image 1 (gone.jpg)"]


# -- real files ----------------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_coco_mini_matches_raw_json(split):
    ann_file = _need(COCO_MINI / "annotations" / f"person_keypoints_{split}.json")
    raw = json.loads(ann_file.read_text())
    images = {im["id"]: im for im in raw["images"]}
    expected = [a for a in raw["annotations"] if a["num_keypoints"] > 0 and a["iscrowd"] == 0]
    samples = read_coco(ann_file)
    assert len(samples) == len(expected) > 0
    for sample, ann in zip(samples, expected):
        assert sample.ann_id == ann["id"] and sample.image_id == ann["image_id"]
        assert sample.image_path == str((COCO_MINI / split / images[ann["image_id"]]["file_name"]).resolve())
        assert pathlib.Path(sample.image_path).is_file()
        flat = np.array(ann["keypoints"], dtype=np.float32).reshape(17, 3)
        flat[flat[:, 2] == 0, :2] = 0
        np.testing.assert_array_equal(sample.keypoints, flat)
        x, y, w, h = ann["bbox"]
        width, height = images[ann["image_id"]]["width"], images[ann["image_id"]]["height"]
        x1, y1 = min(x + w, width), min(y + h, height)
        np.testing.assert_allclose(sample.box, [max(x, 0), max(y, 0), x1 - max(x, 0), y1 - max(y, 0)], rtol=1e-6)
        assert sample.skeleton == "coco"


@pytest.mark.shared_data
def test_coco_spec_with_split_finds_the_same_images():
    ann_file = _need(COCO_MINI / "annotations" / "person_keypoints_val2017.json")
    assert split_from_annotation_name(ann_file) == "val2017"
    with_split = load_samples(f"coco:{ann_file}@val2017")
    without = load_samples(f"coco:{ann_file}")
    assert [s.image_path for s in with_split] == [s.image_path for s in without]


@pytest.mark.shared_data
@pytest.mark.parametrize("name, num_keypoints, skeleton", [
    ("coco/test_coco.json", 17, "coco"),
    ("ochuman/test_ochuman.json", 17, "coco"),
    ("crowdpose/test_crowdpose.json", 14, "custom14"),  # 14 joints, but not in LSP's order
    ("aic/test_aic.json", 14, "custom14"),
    ("exlpose/test_exlpose.json", 14, "custom14"),
])
def test_format_samples(name, num_keypoints, skeleton):
    ann_file = _need(SAMPLES / name)
    raw = json.loads(ann_file.read_text())
    expected = [a for a in raw["annotations"]
                if not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])]
    samples = read_coco(ann_file)
    assert [s.ann_id for s in samples] == [a["id"] for a in expected]
    for sample in samples:
        assert sample.keypoints.shape == (num_keypoints, 3) and sample.skeleton == skeleton
        assert pathlib.Path(sample.image_path).parent == ann_file.parent.resolve()
        assert sample.box[2] > 0 and sample.box[3] > 0


@pytest.mark.shared_data
def test_read_coco_detections_real_file():
    det_file = _need(SAMPLES / "coco" / "test_coco_det_AP_H_56.json")
    raw = json.loads(det_file.read_text())
    detections = read_coco_detections(det_file)
    assert sum(len(v) for v in detections.values()) == sum(1 for d in raw if d["category_id"] == 1)
    for image_id, boxes in detections.items():
        scores = [score for _, score in boxes]
        assert scores == sorted(scores, reverse=True)
        assert all(box.shape == (4,) and box.dtype == np.float32 for box, _ in boxes)
    strong = read_coco_detections(det_file, score_threshold=0.5)
    assert sum(len(v) for v in strong.values()) == sum(1 for d in raw if d["score"] >= 0.5)


def test_read_coco_detections_filters_and_validates(tmp_path):
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([
        {"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.4},
        {"image_id": 5, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 0.9},
        {"image_id": 5, "category_id": 3, "bbox": [0, 0, 9, 9], "score": 0.99},  # a car: ignored
        {"image_id": 6, "category_id": 1, "bbox": [0, 0, 0, 9], "score": 0.8},  # no area: ignored
    ]))
    detections = read_coco_detections(det_file)
    assert list(detections) == [5]
    assert [score for _, score in detections[5]] == [0.9, 0.4]
    np.testing.assert_array_equal(detections[5][1][0], [1, 2, 3, 4])
    assert [s for _, s in read_coco_detections(det_file, score_threshold=0.5)[5]] == [0.9]
    det_file.write_text(json.dumps([{"image_id": 5, "bbox": [1, 2, 3, float("inf")], "score": 0.4}]))
    with pytest.raises(DataError, match="dets.json, record detection #0: bbox contains NaN"):
        read_coco_detections(det_file)
    det_file.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="dets.json: a COCO detection-results file must be a JSON list"):
        read_coco_detections(det_file)
