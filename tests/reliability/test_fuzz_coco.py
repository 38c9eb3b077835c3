"""Malformed COCO keypoint files, fuzzed and hand-made: the contract of reader_contract.py."""
from __future__ import annotations

import copy
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posekit.data.formats import load_samples, read_coco
from posekit.data.sample import DataError

from reader_contract import (COCO_NAMES, DELETE, FUZZ, INF, JSON_VALUES, NAN, SPECIAL_NUMBERS, assert_names_file,
                             coco_case, load_strict_and_skipping, write_image, write_json)

# -- COCO ------------------------------------------------------------------------------------------------
def flat_keypoints(k=17, labelled=(0, 1, 2, 5)):
    flat = []
    for j in range(k):
        flat += [4.0 + j, 6.0 + j, 2] if j in labelled else [0, 0, 0]
    return flat


def base_coco(categories=True):
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 50},
                   {"id": 2, "file_name": "b.png", "width": 60, "height": 40}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": flat_keypoints(),
             "bbox": [2, 3, 30, 40], "area": 1200},
            {"id": 11, "image_id": 2, "category_id": 1, "iscrowd": 0, "keypoints": flat_keypoints(),
             "bbox": [10, 5, 20, 30], "area": 600},
            {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 0, "keypoints": flat_keypoints(labelled=(3,)),
             "bbox": [30, 10, 25, 25], "area": 625},
        ],
    }
    if categories:
        doc["categories"] = [{"id": 1, "name": "person", "keypoints": list(COCO_NAMES)}]
    return doc


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_image(root / "a.png", 40, 50)
    write_image(root / "b.png", 60, 40)
    (root / "empty.png").write_bytes(b"")
    return root


# (edits, expected substring of the DataError or None for a clean load (... = either), is the error about a record)
COCO_CASES = {
    "valid": ({}, None, None),
    "root_is_list": (None, "JSON root must be an object", False),
    "missing_annotations": ({"annotations": DELETE}, "missing top-level key 'annotations'", False),
    "images_not_a_list": ({"images": {"id": 1}}, "'images' must be a list", False),
    "category_keypoints_not_names": ({"categories.0.keypoints": [1, 2]}, "list of names", True),
    "annotation_not_object": ({"annotations.1": [1, 2, 3]}, "annotation must be an object", True),
    "annotation_id_missing": ({"annotations.0.id": DELETE}, "annotation without 'id'", True),
    "annotation_id_string": ({"annotations.0.id": "10"}, "must be an integer", True),
    "annotation_id_fraction": ({"annotations.0.id": 10.5}, "must be an integer", True),
    "image_id_missing": ({"annotations.0.image_id": DELETE}, "without 'image_id'", True),
    "keypoints_missing": ({"annotations.0.keypoints": DELETE}, "without 'keypoints'", True),
    "keypoints_string": ({"annotations.0.keypoints": "1,2,2"}, "list of numbers", True),
    "keypoints_nested": ({"annotations.0.keypoints": [[1, 2, 2]] * 17}, "shape", True),
    "keypoints_ragged": ({"annotations.0.keypoints": [1, [2, 3], 2]}, "must be numbers", True),
    "keypoints_null_inside": ({"annotations.0.keypoints": [None] * 51}, "must be numbers", True),  # null: no number
    "keypoints_not_multiple_of_3": ({"annotations.0.keypoints": flat_keypoints()[:-1]}, "multiple of 3", True),
    "keypoints_empty": ({"annotations.0.keypoints": []}, "multiple of 3", True),
    "keypoints_wrong_count_for_category": ({"annotations.0.keypoints": flat_keypoints(16)}, "declares 17", True),
    "keypoint_nan": ({"annotations.0.keypoints.0": NAN}, "NaN or infinite", True),
    "keypoint_inf": ({"annotations.0.keypoints.1": -INF}, "NaN or infinite", True),
    "keypoint_beyond_float32": ({"annotations.0.keypoints.0": 1e39}, "", True),
    "visibility_3": ({"annotations.0.keypoints.2": 3}, "visibility must be 0, 1 or 2", True),
    "visibility_nan": ({"annotations.0.keypoints.2": NAN}, "NaN or infinite", True),
    "bbox_missing": ({"annotations.0.bbox": DELETE}, "without 'bbox'", True),
    "bbox_three_numbers": ({"annotations.0.bbox": [1, 2, 3]}, "bbox has shape", True),
    "bbox_nan": ({"annotations.0.bbox": [1, NAN, 3, 4]}, "NaN or infinite", True),
    "bbox_zero_width": ({"annotations.0.bbox": [1, 2, 0, 4]}, "non-positive", True),
    "bbox_negative_height": ({"annotations.0.bbox": [1, 2, 3, -4]}, "non-positive", True),
    "bbox_outside_image": ({"annotations.0.bbox": [100, 100, 5, 5]}, "outside the 40x50 image", True),
    "bbox_beyond_float32": ({"annotations.0.bbox": [0, 0, 1e39, 5]}, ..., True),  # clipped to the image, or refused
    "duplicate_annotation_id": ({"annotations.1.id": 10}, "duplicate annotation id 10", True),
    "duplicate_image_id": ({"images.1.id": 1}, "duplicate image id 1", True),
    "unknown_image_id": ({"annotations.0.image_id": 99}, "unknown image_id 99", True),
    "image_file_missing": ({"images.0.file_name": "gone.png"}, "image file not found", True),
    "image_zero_bytes_without_size": ({"images.0.file_name": "empty.png", "images.0.width": DELETE},
                                      "empty (zero-byte) file", True),
    "image_file_name_number": ({"images.0.file_name": 7}, "must be a non-empty string", True),
    "image_width_zero": ({"images.0.width": 0}, "positive number", True),
    "image_width_nan": ({"images.0.width": NAN}, "positive number", True),
    "image_width_inf": ({"images.0.width": INF}, "", True),
    "iscrowd_string": ({"annotations.0.iscrowd": "no"}, "iscrowd must be an integer", True),
}


def coco_doc(name):
    edits = COCO_CASES[name][0]
    return [1, 2] if edits is None else coco_case(base_coco(), edits)


@pytest.mark.parametrize("name", sorted(COCO_CASES))
def test_coco_cases(coco_dir, name):
    _, expected, record_level = COCO_CASES[name]
    path = write_json(coco_dir / f"{name}.json", coco_doc(name))
    strict, report = load_strict_and_skipping(read_coco, path, coco_dir, record_level=bool(record_level))
    if expected is None:
        assert not isinstance(strict, DataError), str(strict)
        assert len(strict) == 3
    elif expected is not ...:  # ...: either outcome honours the contract
        assert isinstance(strict, DataError), f"expected a DataError about {expected!r}"
        assert expected in str(strict)


def test_coco_known_answers_for_legal_oddities(coco_dir):
    doc = coco_case(base_coco(), {
        "annotations.0.keypoints.0": -5.0, "annotations.0.keypoints.1": -6.0,  # labelled, outside the image: kept
        "annotations.1.id": 11.0,                                                # integral float id is an id
        "annotations.2.bbox": [50, 30, 30, 25],                                  # clipped to the 60x40 image
    })
    doc["annotations"].append({"id": 13, "image_id": 1, "iscrowd": 1, "keypoints": flat_keypoints(), "bbox": [1, 1, 5, 5]})
    doc["annotations"].append({"id": 14, "image_id": 1, "keypoints": flat_keypoints(labelled=()), "bbox": [1, 1, 5, 5]})
    samples = read_coco(write_json(coco_dir / "oddities.json", doc))
    assert [s.ann_id for s in samples] == [10, 11, 12]  # crowd and unlabelled people skipped, not errors
    assert samples[0].keypoints[0].tolist() == [-5.0, -6.0, 2.0]
    assert samples[2].box.tolist() == [50.0, 30.0, 10.0, 10.0]


def test_coco_skip_invalid_reports_how_many_and_which(coco_dir, caplog):
    doc = coco_case(base_coco(), {"annotations.0.bbox": [1, 2, 0, 4], "images.1.file_name": "gone.png"})
    doc["annotations"].append({"id": 13, "image_id": 1, "keypoints": flat_keypoints()[:-3], "bbox": [1, 1, 5, 5]})
    doc["annotations"].append(copy.deepcopy(base_coco()["annotations"][0]) | {"id": 14})
    path = write_json(coco_dir / "mixed.json", doc)
    report: list = []
    caplog.set_level(logging.WARNING, logger="posekit")
    samples = read_coco(path, skip_invalid=True, report=report)
    assert [s.ann_id for s in samples] == [14]
    assert [e.record for e in report] == ["annotation 10", "image 2 (gone.png)", "annotation 13"]
    assert "skipped 3 invalid record(s)" in caplog.text and "annotation 13" in caplog.text
    assert [s.ann_id for s in load_samples(f"coco:{path}", skip_invalid=True)] == [14]


# -- COCO mutation fuzz ---------------------------------------------------------------------------------
COCO_RECORD_KEYS = {"images": ["id", "file_name", "width", "height", "extra"],
                    "annotations": ["id", "image_id", "category_id", "iscrowd", "keypoints", "bbox", "area"],
                    "categories": ["id", "keypoints", "name"]}


@st.composite
def coco_mutations(draw):
    """(mutated document, whether only records (not the top level) were touched)."""
    doc = base_coco(categories=draw(st.booleans()))
    record_only = True
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([s for s in ("images", "annotations", "categories", "top") if s in doc or s == "top"]))
        if section == "top":
            record_only = False
            key = draw(st.sampled_from(["images", "annotations", "categories"]))
            if draw(st.booleans()):
                doc.pop(key, None)
            else:
                doc[key] = draw(JSON_VALUES)
            continue
        entries = doc[section]
        if not isinstance(entries, list) or not entries:
            continue
        index = draw(st.integers(0, len(entries) - 1))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "duplicate", "replace", "number"]))
        if action == "duplicate":
            entries.append(copy.deepcopy(entries[index]))
        elif action == "replace":
            entries[index] = draw(JSON_VALUES)
        elif action == "number" and section == "annotations" and isinstance(entries[index], dict):
            # one coordinate / flag / box value, so the rest of the record stays valid
            key = draw(st.sampled_from(["keypoints", "bbox"]))
            values = entries[index].get(key)
            if isinstance(values, list) and values:
                values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(SPECIAL_NUMBERS))
        elif isinstance(entries[index], dict):
            key = draw(st.sampled_from(COCO_RECORD_KEYS[section]))
            if action == "delete":
                entries[index].pop(key, None)
            else:
                entries[index][key] = draw(JSON_VALUES)
    return doc, record_only


@FUZZ
@given(case=coco_mutations())
def test_coco_fuzz(coco_dir, case):
    doc, record_only = case
    path = write_json(coco_dir / "fuzz.json", doc)
    load_strict_and_skipping(read_coco, path, coco_dir, record_level=record_only)


@FUZZ
@given(cut=st.floats(0.0, 0.999))
def test_coco_truncated_anywhere(coco_dir, cut):
    text = json.dumps(base_coco())
    path = coco_dir / "truncated.json"
    path.write_text(text[: int(len(text) * cut)])
    with pytest.raises(DataError) as info:
        read_coco(path)
    assert_names_file(info.value, path, record=False)
