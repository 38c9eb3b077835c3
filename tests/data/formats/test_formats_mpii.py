import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from posekit.data.formats import load_samples
from posekit.data.formats.mpii import read_mpii
from posekit.data.sample import DataError

DATASETS = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
MPII_SAMPLE = DATASETS / "format-samples" / "mpii" / "test_mpii.json"


def _entry(image="000000001.jpg"):
    joints = [[10.0 + j, 20.0 + 2 * j] for j in range(16)]
    vis = [1] * 16
    joints[0], vis[0] = [-1.0, -1.0], 0  # MPII placeholder for an unlabelled joint
    joints[5], vis[5] = [0.0, 0.0], 0
    return {"image": image, "joints": joints, "joints_vis": vis, "center": [50.0, 40.0], "scale": 0.5}


def _write(tmp_path, entries, name="ann.json", images=("000000001.jpg",)) -> pathlib.Path:
    for image in images:
        Image.new("RGB", (100, 80)).save(tmp_path / image)
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def test_valid_entry(tmp_path):
    sample = read_mpii(_write(tmp_path, [_entry()]))[0]
    assert sample.skeleton == "mpii" and sample.keypoints.shape == (16, 3)
    assert sample.image_id == 1 and sample.ann_id == 0 and sample.file_name == "000000001.jpg"
    assert sample.image_path == str((tmp_path / "000000001.jpg").resolve())
    np.testing.assert_array_equal(sample.keypoints[[0, 5]], np.zeros((2, 3)))
    np.testing.assert_array_equal(sample.keypoints[1], [11, 22, 2])
    assert (sample.keypoints[:, 2] == 2).sum() == 14
    # scale 0.5 -> 100 px square around (50, 40)
    np.testing.assert_allclose(sample.box, [0, -10, 100, 100])
    np.testing.assert_array_equal(sample.extra["center"], [50, 40])
    assert sample.extra["scale"] == 0.5


def test_flagged_joint_at_placeholder_is_unlabelled(tmp_path):
    entry = _entry()
    entry["joints_vis"][0] = 1  # flagged, but still at (-1, -1)
    sample = read_mpii(_write(tmp_path, [entry]))[0]
    np.testing.assert_array_equal(sample.keypoints[0], [0, 0, 0])


def test_entry_without_labelled_joints_is_skipped(tmp_path):
    empty = _entry()
    empty["joints_vis"] = [0] * 16
    assert [s.ann_id for s in read_mpii(_write(tmp_path, [empty, _entry()]))] == [1]


def test_images_in_images_subfolder(tmp_path):
    (tmp_path / "images").mkdir()
    path = _write(tmp_path, [_entry()], images=())
    Image.new("RGB", (100, 80)).save(tmp_path / "images" / "000000001.jpg")
    assert read_mpii(path)[0].image_path == str((tmp_path / "images" / "000000001.jpg").resolve())


BAD = {
    "fifteen_joints": (lambda e: e["joints"].pop(), "has shape (15, 2), expected 16x2"),
    "vis_two": (lambda e: e["joints_vis"].__setitem__(3, 2), "joints_vis must be 0 or 1"),
    "vis_length": (lambda e: e["joints_vis"].pop(), "joints_vis has shape (15,)"),
    "nan_joint": (lambda e: e["joints"][2].__setitem__(0, float("nan")), "joints contains NaN"),
    "negative_scale": (lambda e: e.update(scale=-1.0), "scale must be positive"),
    "missing_center": (lambda e: e.pop("center"), "without 'center'"),
    "missing_image": (lambda e: e.update(image="000000002.jpg"), "image file not found"),
    "escape": (lambda e: e.update(image="../../etc/passwd"), "outside the dataset root"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_entries(tmp_path, case):
    mutate, what = BAD[case]
    entry = _entry()
    mutate(entry)
    path = _write(tmp_path, [_entry(), entry], name=f"{case}.json")
    with pytest.raises(DataError) as info:
        read_mpii(path)
    message = str(info.value)
    assert f"{case}.json, record #1 (" in message and what in message, message
    report = []
    assert [s.ann_id for s in read_mpii(path, skip_invalid=True, report=report)] == [0]
    assert len(report) == 1 and report[0].record.startswith("#1 (")


@pytest.mark.parametrize("content, what", [
    ('{"image": "a.jpg"}', "must be a JSON list"),
    ('[{"image": "a.jpg", "joints": [', "invalid or truncated JSON"),
    ('[5]', "record #0: entry must be an object"),
    ('[{"joints": []}]', "record #0: 'image' must be a non-empty string"),
])
def test_bad_files(tmp_path, content, what):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(DataError, match=f"broken.json(: |, ).*{what}"):
        read_mpii(path)


@pytest.mark.shared_data
def test_real_mpii_sample():
    if not MPII_SAMPLE.exists():
        pytest.skip(f"shared data not available: {MPII_SAMPLE}")
    raw = json.loads(MPII_SAMPLE.read_text())
    samples = load_samples(f"mpii:{MPII_SAMPLE}")
    assert len(samples) == len(raw) == 5
    for sample, entry in zip(samples, raw):
        assert sample.file_name == entry["image"] and pathlib.Path(sample.image_path).is_file()
        assert sample.image_id == int(pathlib.Path(entry["image"]).stem)
        vis = np.array(entry["joints_vis"]) == 1
        joints = np.array(entry["joints"], dtype=np.float32)
        np.testing.assert_array_equal(sample.keypoints[vis, :2], joints[vis])
        assert np.all(sample.keypoints[vis, 2] == 2) and np.all(sample.keypoints[~vis] == 0)
        side = entry["scale"] * 200
        np.testing.assert_allclose(sample.box, [entry["center"][0] - side / 2, entry["center"][1] - side / 2,
                                                side, side], rtol=1e-6)
    # 051423444.jpg has its ankles unlabelled at (-1, -1)
    unlabelled = next(s for s in samples if s.file_name == "051423444.jpg")
    np.testing.assert_array_equal(unlabelled.keypoints[[0, 5]], np.zeros((2, 3)))
