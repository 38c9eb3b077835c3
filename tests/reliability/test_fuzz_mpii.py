"""Malformed MPII annotation files, fuzzed and hand-made: the contract of reader_contract.py."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posekit.data.formats import read_mpii
from posekit.data.sample import DataError

from reader_contract import (DELETE, FUZZ, INF, JSON_VALUES, NAN, SPECIAL_NUMBERS, assert_names_file, coco_case,
                             load_strict_and_skipping, write_image, write_json)

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
