"""Bad input, round two (issue #18): annotation files whose numbers are finite but wrong.

Each class has a known answer: a clean file scores its known OKS AP; the same file with one bad number is
refused naming the file and the record, in the same words for training (the reader) and for evaluation
(pycocotools' ground truth); LSPET-style joints far outside their image are hidden and counted; a file with
no usable person says why; the decompression-bomb size check keeps its memory.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from posekit.data.formats import load_samples, read_coco, read_lsp, read_mpii
from posekit.data.sample import DataError
from posekit.engine.evaluate import evaluate
from posekit.metrics import coco_oks_ap
from posekit.strict_json import dumps_strict

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "datasets"
ENV = {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


# -- a small COCO file with a known answer ---------------------------------------------------------------
def person(ann_id: int, x0: float, y0: float, **fields) -> dict:
    """A 17-keypoint person in a 30 x 60 box at (x0, y0), every joint labelled."""
    keypoints = []
    for j in range(17):
        keypoints += [x0 + 2 + (j % 4) * 8, y0 + 2 + j * 3.4, 2]
    return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": keypoints,
            "num_keypoints": 17, "bbox": [x0, y0, 30, 60], "area": 1500.0, **fields}


@pytest.fixture
def coco(tmp_path):
    """(write(doc) -> path, clean doc): two people on one 128 x 96 image."""
    Image.new("RGB", (128, 96), (90, 90, 90)).save(tmp_path / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 128, "height": 96}],
           "annotations": [person(7, 10, 20), person(8, 70, 25)],
           "categories": [{"id": 1, "name": "person", "keypoints": [f"k{j}" for j in range(17)]}]}

    def write(d, name="ann.json"):
        (tmp_path / name).write_text(json.dumps(d, allow_nan=True))
        return tmp_path / name
    return write, doc


def exact_predictions(doc, shift=0.0) -> list[dict]:
    return [{"image_id": a["image_id"], "score": 1.0,
             "keypoints": (np.asarray(a["keypoints"], float).reshape(17, 3) + [shift, 0, 0]).tolist()}
            for a in doc["annotations"]]


def edited(doc, index: int, **fields) -> dict:
    doc = copy.deepcopy(doc)
    doc["annotations"][index].update(fields)
    return doc


def test_the_clean_file_scores_its_known_ap(coco):
    write, doc = coco
    path = write(doc)
    assert coco_oks_ap(str(path), exact_predictions(doc))["AP"] == pytest.approx(1.0)
    assert coco_oks_ap(str(path), exact_predictions(doc, shift=40.0))["AP"] == pytest.approx(0.0)
    assert [s.ann_id for s in read_coco(path)] == [7, 8]


@pytest.mark.parametrize("area, words", [(float("nan"), "NaN or infinite"), (0, "at least 1 square pixel"),
                                         (-5, "at least 1 square pixel"), (1e30, "impossible on the 128x96 image"),
                                         ("1500", "must be a number, got str")])
def test_a_bad_area_is_refused_by_training_and_evaluation_alike(coco, area, words):
    """NaN area used to score AP 1.0 on predictions 40 px off (the clean file scores 0.0 for them)."""
    write, doc = coco
    path = write(edited(doc, 1, area=area))
    for load in (lambda: read_coco(path), lambda: coco_oks_ap(str(path), exact_predictions(doc, shift=40.0))):
        with pytest.raises(DataError) as info:
            load()
        assert str(info.value).startswith(f"{path}, record annotation 8: ") and words in str(info.value)


@pytest.mark.parametrize("field, value, words", [
    ("bbox", ["10", "20", "30", "60"], "bbox must be numbers, but bbox[0] is str '10'"),
    ("keypoints", ["12"] + person(8, 70, 25)["keypoints"][1:], "keypoints[0] is str '12'"),
    ("num_keypoints", "17", "num_keypoints must be an integer, got str"),
    ("image_id", True, "image_id must be an integer, got bool"),
    ("iscrowd", "0", "iscrowd must be an integer, got str"),
])
def test_numbers_written_as_strings_or_bools_are_refused_by_both(coco, field, value, words):
    write, doc = coco
    path = write(edited(doc, 1, **{field: value}))
    messages = []
    for load in (lambda: read_coco(path), lambda: coco_oks_ap(str(path), exact_predictions(doc))):
        with pytest.raises(DataError) as info:
            load()
        messages.append(str(info.value))
    assert messages[0] == messages[1] and words in messages[0] and "record annotation 8" in messages[0]


def test_num_keypoints_zero_everywhere_makes_ap_unavailable_with_a_warning(coco, caplog):
    write, doc = coco
    zero = copy.deepcopy(doc)
    for ann in zero["annotations"]:
        ann["num_keypoints"] = 0
    path = write(zero)
    with caplog.at_level(logging.WARNING):
        samples = read_coco(path)
        result = coco_oks_ap(str(path), exact_predictions(doc))
    assert len(samples) == 2  # PCK still scores both people (their keypoints are labelled)
    assert "2 annotation(s) have a num_keypoints that disagrees" in caplog.text
    assert "OKS AP unavailable" in caplog.text and str(path) in caplog.text
    assert result["AP"] is None and all(v is None for v in result.values())
    assert json.loads(dumps_strict(result))["AP"] is None


@pytest.mark.parametrize("index, edit, words", [
    (0, {"keypoints": [1e30] + person(7, 10, 20)["keypoints"][1:]}, "labelled keypoint 0 at (1e+30, 22)"),
    (0, {"keypoints": [-1e6] + person(7, 10, 20)["keypoints"][1:]}, "labelled keypoint 0 at (-1e+06, 22)"),
    (1, {"bbox": [0, 0, 5000, 5000], "area": 1500.0}, "bbox [0, 0, 5000, 5000] reaches far outside"),
    (1, {"bbox": [70, 25, 0.5, 60]}, "smaller than 1 pixel"),
])
def test_keypoints_and_boxes_far_outside_the_image_are_refused(coco, index, edit, words):
    write, doc = coco
    path = write(edited(doc, index, **edit))
    with pytest.raises(DataError) as info:
        read_coco(path)
    assert f"record annotation {7 + index}" in str(info.value) and words in str(info.value)
    assert "128x96 image" in str(info.value) or "pixel" in str(info.value)


def test_a_joint_just_outside_the_image_is_kept(coco):
    write, doc = coco
    keypoints = person(7, 10, 20)["keypoints"]
    keypoints[0] = -20.0  # 16 % of the width beyond the left edge: an annotator's estimate, not an error
    samples = read_coco(write(edited(doc, 0, keypoints=keypoints)))
    assert samples[0].keypoints[0].tolist() == [-20.0, 22.0, 2.0]


def test_a_declared_image_size_is_checked_against_the_file(coco):
    write, doc = coco
    doc = copy.deepcopy(doc)
    doc["images"][0]["width"] = 1e9
    with pytest.raises(DataError, match=r"record image 1 \(a.png\): declared image size 1e\+09x96 but the file"):
        read_coco(write(doc))


# -- MPII and LSP -----------------------------------------------------------------------------------------
def mpii_entry(**fields) -> dict:
    joints = [[20 + 3 * j, 10 + 5 * j] for j in range(16)]
    return {"image": "p.png", "joints": joints, "joints_vis": [1] * 16, "center": [45, 50], "scale": 0.5, **fields}


@pytest.mark.parametrize("edit, words", [({"center": [1e30, 50]}, "reaches far outside the 100x120 image"),
                                         ({"scale": 1e-30}, "smaller than 1 pixel"),
                                         ({"scale": "0.5"}, "scale must be a number, got str")])
def test_mpii_centres_and_scales_are_checked_against_the_image(tmp_path, edit, words):
    Image.new("RGB", (100, 120)).save(tmp_path / "p.png")
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([mpii_entry(), mpii_entry(**edit)]))
    with pytest.raises(DataError) as info:
        read_mpii(path)
    assert "record #1 (p.png)" in str(info.value) and words in str(info.value)
    path.write_text(json.dumps([mpii_entry()]))
    assert read_mpii(path)[0].box.tolist() == [-5.0, 0.0, 100.0, 100.0]  # the clean entry: centre +- 50


def write_lsp(root: Path, joints: np.ndarray) -> Path:
    """An LSPET folder: ``joints`` (N, 14, 3) person-first, images of 80 x 60."""
    (root / "images").mkdir(parents=True)
    for i in range(len(joints)):
        Image.new("RGB", (80, 60)).save(root / "images" / f"im{i + 1:05d}.jpg")
    scipy.io.savemat(root / "joints.mat", {"joints": joints.transpose(1, 2, 0)})  # (14, 3, N): LSPET
    return root


def test_lspet_joints_far_outside_are_hidden_and_counted(tmp_path, caplog):
    joints = np.zeros((2, 14, 3))
    joints[:, :, 0], joints[:, :, 1], joints[:, :, 2] = np.arange(14) * 4 + 5, np.arange(14) * 3 + 4, 1
    joints[1, 2, 0] = 1e30  # a right hip at x = 1e30 would stretch the torso past every error
    with caplog.at_level(logging.WARNING):
        samples = read_lsp(write_lsp(tmp_path / "lsp", joints))
    assert len(samples) == 2
    assert samples[1].keypoints[2].tolist() == [0.0, 0.0, 0.0] and samples[1].keypoints[3, 2] == 2.0
    assert "marked 1 visible joint(s) invisible" in caplog.text and "im00002.jpg joint 2" in caplog.text
    assert samples[0].keypoints[:, 2].tolist() == [2.0] * 14  # the clean person is untouched


# -- no usable person --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, words", [("all_crowd", "all 2 annotations were skipped (2 crowd"),
                                         ("empty", "it holds no annotations"),
                                         ("all_invisible", "2 with no labelled keypoint")])
def test_no_usable_person_names_the_file_and_the_cause(coco, case, words):
    write, doc = coco
    doc = copy.deepcopy(doc)
    for ann in doc["annotations"]:
        if case == "all_crowd":
            ann["iscrowd"] = 1
        elif case == "all_invisible":
            ann["keypoints"] = [0] * 51
            ann["num_keypoints"] = 0
    if case == "empty":
        doc["annotations"] = []
    path = write(doc)
    with pytest.raises(DataError) as info:
        evaluate(object(), f"coco:{path}")  # refused before any prediction: no predictor needed
    assert str(info.value).startswith(f"{path}: no usable person to evaluate: ") and words in str(info.value)


def test_an_lsp_folder_without_visible_joints_says_so(tmp_path):
    root = write_lsp(tmp_path / "lsp", np.zeros((3, 14, 3)))
    with pytest.raises(DataError, match=r"all 3 images were skipped \(3 without visible joints"):
        evaluate(object(), f"lsp:{root}")


# -- the decompression bomb ---------------------------------------------------------------------------------
def write_zero_png(path: Path, side: int, rows: int | None = None) -> None:
    """A ``side`` x ``side`` grey PNG of zeros: a few KB that decode to side**2 bytes (only ``rows`` rows of
    pixel data when given: the header still declares the full size)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(b"\0" * (side + 1)) for _ in range(rows or side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


#: the peak RSS (KB) of the running process: VmHWM, since ``ru_maxrss`` of a child started from pytest carries
#: pytest's own peak (Linux keeps it across fork + exec) and would hide a decode of a few hundred MB
PEAK_KB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"


def peak_rss_growth_mb(code: str) -> float:
    """Run ``code`` in a fresh interpreter; the growth of its peak RSS (MB) over the imports."""
    probe = (f"from posekit.data.io import image_size, read_image\nbefore = {PEAK_KB}\n{code}\n"
             f"print(({PEAK_KB} - before) / 1024)")
    done = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip().splitlines()[-1])


def test_the_size_check_of_a_bomb_reads_the_header_only(tmp_path):
    path = tmp_path / "bomb.png"
    write_zero_png(path, 8000)  # 64 MB of pixels in about 60 KB: decoding it would show in the peak RSS
    assert path.stat().st_size < 200_000
    growth = peak_rss_growth_mb(f"assert image_size({str(path)!r}) == (8000, 8000)")
    assert growth < 16, f"image_size grew the peak RSS by {growth:.0f} MB: it decoded the pixels"


def test_a_bomb_beyond_the_limit_is_refused_with_bounded_memory(tmp_path):
    path = tmp_path / "bomb.png"
    write_zero_png(path, 20001, rows=4)  # one pixel-row more than the 20000 x 20000 limit
    growth = peak_rss_growth_mb(f"""
try:
    read_image({str(path)!r})
except ValueError as err:
    assert "too large to decode" in str(err), err
else:
    raise SystemExit("decoded")""")
    assert growth < 16


# -- the real datasets still load as before ------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets")
def test_real_datasets_load_with_their_known_counts(caplog):
    with caplog.at_level(logging.WARNING):
        counts = {spec: len(load_samples(str(spec).format(SHARED))) for spec in (
            "lsp:{}/lspet@val", "coco:{}/coco-mini/annotations/person_keypoints_val2017.json@val2017",
            "mpii:{}/format-samples/mpii/test_mpii.json", "coco:{}/format-samples/coco/test_coco.json",
            "coco:{}/format-samples/crowdpose/test_crowdpose.json")}
    assert list(counts.values()) == [800, 68, 5, 12, 4]
    assert "invisible" not in caplog.text  # no real joint is far outside its image
    assert "4 annotation(s) have a num_keypoints that disagrees" in caplog.text  # CrowdPose's own counts


def test_strict_json_writes_null_for_nan_and_infinities():
    text = dumps_strict({"AP": math.nan, "APm": float("inf"), "n": np.int64(3), "pck": np.float32(0.5),
                         "per_joint": np.array([0.25, np.nan])})
    assert json.loads(text) == {"AP": None, "APm": None, "n": 3, "pck": 0.5, "per_joint": [0.25, None]}
    assert "NaN" not in text and "Infinity" not in text
