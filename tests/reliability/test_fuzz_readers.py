"""Malformed annotations, fuzzed and hand-made, over every reader (COCO, LSP/LSPET .mat, MPII, detection boxes).

The contract checked everywhere: a file either loads cleanly into valid Samples (finite float32 boxes with
positive size, finite float32 keypoints with v in {0, 1, 2}, image files inside the root) or raises ONE
DataError whose message names the annotation file and, for a bad record, the record. Never a bare
KeyError/TypeError/IndexError or a NumPy/PyTorch error, never an inf/NaN Sample, never a silent skip:
with ``skip_invalid=True`` the bad records are skipped, listed in ``report`` and counted in a warning.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import pathlib

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from posekit.data.formats import load_samples, read_coco, read_coco_detections, read_image_folder, read_lsp, read_mpii
from posekit.data.sample import DataError, Sample

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SPECIAL_NUMBERS = [0, 1, 2, -1, 0.5, -7.25, 1e-300, 3e38, 1e39, -1e39, 1e300, float("nan"), float("inf"),
                   float("-inf"), 2**64, True]
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]


# -- shared checks -------------------------------------------------------------------------------------
def assert_valid_samples(samples, root) -> None:
    """Every Sample honours the record contract of posekit.data.sample.Sample."""
    root_text = os.path.realpath(root)
    assert isinstance(samples, list)
    for s in samples:
        assert isinstance(s, Sample)
        box, kp = s.box, s.keypoints
        assert box.shape == (4,) and box.dtype == np.float32, (s.ann_id, box)
        assert np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0, f"bad box {box} in record {s.ann_id}"
        assert kp.ndim == 2 and kp.shape[1] == 3 and kp.dtype == np.float32
        assert np.all(np.isfinite(kp)), f"non-finite keypoints escaped in record {s.ann_id}: {kp[~np.isfinite(kp).all(1)]}"
        assert set(np.unique(kp[:, 2]).tolist()) <= {0.0, 1.0, 2.0}
        assert np.all(kp[kp[:, 2] == 0, :2] == 0)
        assert os.path.isfile(s.image_path) and s.image_path.startswith(root_text + os.sep)


def assert_names_file(err: DataError, path, *, record: bool | None = None) -> None:
    assert type(err) is DataError
    assert err.path == str(path) and str(path) in str(err)
    if record is True:
        assert err.record is not None and f"record {err.record}" in str(err), str(err)
    elif record is False:
        assert err.record is None, str(err)


@contextlib.contextmanager
def captured_warnings(name="posekit"):
    """Collect the WARNING+ messages of a logger (usable inside hypothesis tests, unlike caplog)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler = logging.getLogger(name), Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def load_strict_and_skipping(read, path, root, *, record_level: bool):
    """Run a reader strictly and with skip_invalid; check they agree. Returns (strict samples or error, report)."""
    try:
        strict = read(path)
    except DataError as err:
        strict = err
        assert_names_file(err, path, record=True if record_level else None)
    report: list = []
    with captured_warnings() as warnings:
        try:
            lenient = read(path, skip_invalid=True, report=report)
        except DataError as err:  # only whole-file problems may still raise
            assert isinstance(strict, DataError) and str(err) == str(strict)
            assert not record_level or err.record is not None
            return strict, report
    assert_valid_samples(lenient, root)
    if isinstance(strict, DataError):
        assert report, f"strict load raised {strict} but skip_invalid reported nothing"
        assert str(report[0]) == str(strict)  # the same first problem, in the same words
        for entry in report:
            assert_names_file(entry, path, record=True)
        assert any(f"skipped {len(report)} invalid record" in w for w in warnings), warnings
    else:
        assert_valid_samples(strict, root)
        assert report == [] and [s.ann_id for s in lenient] == [s.ann_id for s in strict]
    return strict, report


def write_json(path: pathlib.Path, data) -> pathlib.Path:
    path.write_text(json.dumps(data, allow_nan=True))  # NaN / Infinity literals, as Python's json reads them
    return path


def write_image(path: pathlib.Path, width: int, height: int) -> None:
    Image.new("RGB", (width, height), (80, 90, 100)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


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


def coco_case(doc, path_and_value):
    """Apply ``{'annotations.0.bbox': value, ...}`` edits to a copy of doc (value DELETE removes the key)."""
    doc = copy.deepcopy(doc)
    for where, value in path_and_value.items():
        *parents, last = where.split(".")
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key = int(last) if isinstance(target, list) else last
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return doc


DELETE = object()
NAN, INF = float("nan"), float("inf")

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
def number_lists(lengths=(0, 3, 4, 48, 50, 51, 54)):
    return st.sampled_from(lengths).flatmap(
        lambda n: st.lists(st.one_of(st.sampled_from(SPECIAL_NUMBERS), st.floats(-1e3, 1e3)), min_size=n, max_size=n))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS), st.text(max_size=6), number_lists(),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["a.png", "b.png", "gone.png", "empty.png", "../a.png", "/etc/hostname", "", "."]),
)
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


# -- MPII ----------------------------------------------------------------------------------------------
def base_mpii():
    joints = [[5.0 + j, 8.0 + j] for j in range(16)]
    return [{"image": "p1.png", "joints": joints, "joints_vis": [1] * 16, "center": [20.0, 25.0], "scale": 0.2},
            {"image": "p2.png", "joints": joints, "joints_vis": [1] * 8 + [0] * 8, "center": [30.0, 20.0], "scale": 0.15}]


@pytest.fixture(scope="module")
def mpii_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpii")
    write_image(root / "p1.png", 40, 50)
    write_image(root / "p2.png", 60, 40)
    return root


MPII_CASES = {
    "valid": ({}, None, None),
    "root_is_object": (None, "JSON list of people", False),
    "entry_not_object": ({"0": 5}, "entry must be an object", True),
    "image_missing_key": ({"0.image": DELETE}, "'image' must be a non-empty string", True),
    "image_not_string": ({"0.image": ["p1.png"]}, "'image' must be a non-empty string", True),
    "image_file_missing": ({"0.image": "gone.png"}, "image file not found", True),
    "joints_missing": ({"0.joints": DELETE}, "entry without 'joints'", True),
    "joints_15": ({"0.joints": [[1, 2]] * 15}, "expected 16x2", True),
    "joints_flat": ({"0.joints": [1, 2] * 16}, "expected 16x2", True),
    "joints_nan": ({"0.joints.3": [NAN, 1]}, "NaN or infinite", True),
    "joints_beyond_float32": ({"0.joints.3": [1e39, 1]}, "", True),
    "joints_vis_short": ({"0.joints_vis": [1, 1]}, "joints_vis has shape", True),
    "joints_vis_two": ({"0.joints_vis.0": 2}, "joints_vis must be 0 or 1", True),
    "center_string": ({"0.center": "20,25"}, "list of numbers", True),
    "center_inf": ({"0.center": [INF, 1]}, "NaN or infinite", True),
    "center_beyond_float32": ({"0.center": [1e39, 25]}, "", True),
    "scale_zero": ({"0.scale": 0}, "scale must be positive", True),
    "scale_negative": ({"0.scale": -1}, "scale must be positive", True),
    "scale_list": ({"0.scale": [0.2]}, "scale must be a number", True),
    "scale_nan": ({"0.scale": NAN}, "NaN or infinite", True),
    "scale_huge": ({"0.scale": 1e300}, "", True),
    "scale_tiny": ({"0.scale": 1e-300}, "", True),
}


@pytest.mark.parametrize("name", sorted(MPII_CASES))
def test_mpii_cases(mpii_dir, name):
    edits, expected, record_level = MPII_CASES[name]
    doc = {"people": []} if edits is None else coco_case(base_mpii(), edits)
    path = write_json(mpii_dir / f"{name}.json", doc)
    strict, _ = load_strict_and_skipping(read_mpii, path, mpii_dir, record_level=bool(record_level))
    if expected is None:
        assert not isinstance(strict, DataError), str(strict)
        assert len(strict) == 2
    else:
        assert isinstance(strict, DataError), f"expected a DataError about {expected!r}"
        assert expected in str(strict)


def test_mpii_known_answers(mpii_dir):
    doc = base_mpii()
    doc[0]["joints"][4] = [-1, -1]  # MPII's placeholder, flagged 1: unlabelled
    doc.append(dict(doc[1], joints_vis=[0] * 16))  # nobody labelled: skipped, not an error
    samples = read_mpii(write_json(mpii_dir / "known.json", doc))
    assert len(samples) == 2 and samples[0].keypoints[4].tolist() == [0, 0, 0]
    assert samples[0].box.tolist() == pytest.approx([0.0, 5.0, 40.0, 40.0])  # side 0.2 * 200, centred on (20, 25)
    assert samples[1].keypoints[8:, 2].tolist() == [0] * 8


@st.composite
def mpii_mutations(draw):
    doc = base_mpii()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(doc) - 1))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "duplicate", "replace", "joint"]))
        if action == "duplicate":
            doc.append(copy.deepcopy(doc[index]))
        elif action == "replace":
            doc[index] = draw(JSON_VALUES)
        elif not isinstance(doc[index], dict):
            continue
        elif action == "joint" and isinstance(doc[index].get("joints"), list) and doc[index]["joints"]:
            joints = doc[index]["joints"]
            joints[draw(st.integers(0, len(joints) - 1))] = draw(st.one_of(
                st.lists(st.sampled_from(SPECIAL_NUMBERS), min_size=2, max_size=2), JSON_VALUES))
        else:
            key = draw(st.sampled_from(["image", "joints", "joints_vis", "center", "scale"]))
            if action == "delete":
                doc[index].pop(key, None)
            else:
                doc[index][key] = draw(JSON_VALUES)
    return doc


@FUZZ
@given(doc=mpii_mutations())
def test_mpii_fuzz(mpii_dir, doc):
    path = write_json(mpii_dir / "fuzz.json", doc)
    load_strict_and_skipping(read_mpii, path, mpii_dir, record_level=True)


@FUZZ
@given(cut=st.floats(0.0, 0.999))
def test_mpii_truncated_anywhere(mpii_dir, cut):
    text = json.dumps(base_mpii())
    path = mpii_dir / "truncated.json"
    path.write_text(text[: int(len(text) * cut)])
    with pytest.raises(DataError) as info:
        read_mpii(path)
    assert_names_file(info.value, path, record=False)


# -- LSP / LSPET .mat -------------------------------------------------------------------------------------
def lspet_joints(n: int) -> np.ndarray:
    """(14, 3, n) LSPET layout: x, y, visible=1, a different small pose per image."""
    joints = np.zeros((14, 3, n))
    for i in range(n):
        joints[:, 0, i] = 3 + np.arange(14) * 2 + i
        joints[:, 1, i] = 4 + np.arange(14) * 2
        joints[:, 2, i] = 1
    return joints


def make_lsp(root: pathlib.Path, joints, num_images: int, *, variable="joints") -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    for i in range(1, num_images + 1):
        write_image(root / "images" / f"im{i:04d}.jpg", 40, 40)
    scipy.io.savemat(root / "joints.mat", {variable: joints})
    return root


def read_lsp_at(root):
    def read(path, **kwargs):
        return read_lsp(root, **kwargs)
    return read


def with_value(joints, index, value):
    joints = joints.copy()
    joints[index] = value
    return joints


LSP_CASES = {
    "valid": (lambda: lspet_joints(3), 3, None, None),
    "lsp_layout": (lambda: np.stack([lspet_joints(3)[:, 0], lspet_joints(3)[:, 1], 0 * lspet_joints(3)[:, 2]]), 3,
                   None, None),
    "person_first_layout": (lambda: lspet_joints(4).transpose(2, 0, 1), 4, None, None),  # (3, 14, 3) would read as LSP
    "two_dimensional": (lambda: lspet_joints(3)[:, :, 0], 3, "3-d numeric array", False),
    "strings": (lambda: np.array(["a", "b"]), 3, "3-d numeric array", False),
    "wrong_joint_count": (lambda: np.zeros((13, 3, 3)), 3, "expected (14, 3, N)", False),
    "no_columns": (lambda: np.zeros((14, 3, 0)), 3, "cannot be matched", False),
    "more_images_than_columns": (lambda: lspet_joints(2), 3, "cannot be matched", False),
    "flag_two": (lambda: with_value(lspet_joints(3), (0, 2, 1), 2), 3, "visibility flags must be 0 or 1", True),
    "flag_nan": (lambda: with_value(lspet_joints(3), (0, 2, 1), np.nan), 3, "visibility flags", True),
    "visible_nan": (lambda: with_value(lspet_joints(3), (5, 0, 1), np.nan), 3, "NaN or infinite", True),
    "visible_inf": (lambda: with_value(lspet_joints(3), (5, 1, 1), -np.inf), 3, "NaN or infinite", True),
    "visible_beyond_float32": (lambda: with_value(lspet_joints(3), (5, 0, 1), 1e39), 3, "", True),
    "all_negative": (lambda: with_value(lspet_joints(3), (slice(None), slice(0, 2), 1), -5.0), 3, "empty person box",
                     True),
}


@pytest.mark.parametrize("name", sorted(LSP_CASES))
def test_lsp_cases(tmp_path, name):
    make_joints, num_images, expected, record_level = LSP_CASES[name]
    root = make_lsp(tmp_path / name, make_joints(), num_images)
    mat = root / "joints.mat"
    strict, _ = load_strict_and_skipping(read_lsp_at(root), mat, root, record_level=bool(record_level))
    if expected is None:
        assert not isinstance(strict, DataError), str(strict)
        assert [s.image_id for s in strict] == list(range(1, num_images + 1))
        np.testing.assert_allclose(strict[0].keypoints[0], [3, 4, 2])
    else:
        assert isinstance(strict, DataError), f"expected a DataError about {expected!r}"
        assert expected in str(strict)
        if record_level:
            assert "im0002.jpg" in str(strict) or "column 1" in str(strict)  # every record case breaks image 2


def test_lsp_file_level_problems(tmp_path):
    root = make_lsp(tmp_path / "lsp", lspet_joints(2), 2)
    mat = root / "joints.mat"
    data = mat.read_bytes()
    for broken in (data[: len(data) // 2], data[:20], b"", b"not a MATLAB file at all"):
        mat.write_bytes(broken)
        with pytest.raises(DataError) as info:
            read_lsp(root)
        assert_names_file(info.value, mat, record=False)
    make_lsp(root, lspet_joints(2), 2, variable="poses")
    with pytest.raises(DataError, match="no variable 'joints'"):
        read_lsp(root)
    mat.unlink()
    with pytest.raises(DataError, match="joints.mat not found"):
        read_lsp(root)


def test_lsp_unreadable_image_names_mat_and_image(tmp_path):
    root = make_lsp(tmp_path / "lsp", lspet_joints(3), 3)
    (root / "images" / "im0002.jpg").write_bytes(b"")
    report: list = []
    samples = read_lsp(root, skip_invalid=True, report=report)
    assert [s.image_id for s in samples] == [1, 3]
    assert len(report) == 1 and "im0002.jpg" in str(report[0]) and str(root / "joints.mat") in str(report[0])
    assert "zero-byte" in str(report[0])


def test_lsp_duplicate_image_numbers(tmp_path):
    root = make_lsp(tmp_path / "lsp", lspet_joints(2), 2)
    write_image(root / "images" / "im1.jpg", 40, 40)  # the same number as im0001.jpg
    with pytest.raises(DataError, match="two images with number 1"):
        read_lsp(root)


@st.composite
def lsp_joint_arrays(draw):
    n = draw(st.integers(1, 3))
    joints = lspet_joints(n)
    layout = draw(st.sampled_from(["lspet", "lsp", "person_first", "random"]))
    for _ in range(draw(st.integers(0, 4))):
        index = (draw(st.integers(0, 13)), draw(st.integers(0, 2)), draw(st.integers(0, n - 1)))
        joints[index] = draw(st.sampled_from([v for v in SPECIAL_NUMBERS if v is not True and v != 2**64]))
    if layout == "lsp":
        joints = joints.transpose(1, 0, 2).copy()
        joints[2] = 1 - joints[2]
    elif layout == "person_first":
        joints = joints.transpose(2, 0, 1).copy()
    elif layout == "random":
        shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
        joints = np.full(shape, draw(st.sampled_from([0.0, 1.0, np.nan])))
    dtype = draw(st.sampled_from(["float64", "float64", "float32", "int32", "uint8", "complex128"]))
    with np.errstate(all="ignore"):
        return joints.astype(dtype), n


@FUZZ
@given(case=lsp_joint_arrays(), num_images=st.integers(1, 3))
def test_lsp_fuzz(tmp_path_factory, case, num_images):
    joints, _ = case
    root = make_lsp(tmp_path_factory.mktemp("lspfuzz"), joints, num_images)
    load_strict_and_skipping(read_lsp_at(root), root / "joints.mat", root, record_level=False)


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
