import pathlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from posekit.data.formats import LSPET_VAL_EVERY, load_samples
from posekit.data.formats.lsp import in_split, load_lsp_joints, read_lsp
from posekit.data.sample import DataError

DATASETS = pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
LSPET = DATASETS / "lspet"


# -- small generated data sets ---------------------------------------------------------------------
def _people(num: int) -> tuple[np.ndarray, np.ndarray]:
    """coords (N, 14, 2) inside a 40x30 image and visible (N, 14): joint j of person i at (2 + j*2, 3 + i + j)."""
    coords = np.zeros((num, 14, 2))
    for i in range(num):
        coords[i, :, 0] = 2 + 2 * np.arange(14)
        coords[i, :, 1] = 3 + i + np.arange(14)
    visible = np.ones((num, 14), dtype=bool)
    visible[:, 13] = False  # head top hidden in everyone
    coords[:, 13] = (-5.0, 50.0)  # ... and placed outside the image, as LSPET does
    return coords, visible


def _write_lsp(root: pathlib.Path, layout: str, coords, visible, names=None) -> pathlib.Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    num = len(coords)
    names = names or [f"im{i + 1:04d}.jpg" for i in range(num)]
    for name in names:
        Image.new("RGB", (40, 30)).save(root / "images" / name)
    if layout == "lspet":  # (14, 3, N), 1 = visible
        joints = np.concatenate([coords, visible[..., None].astype(float)], axis=2).transpose(1, 2, 0)
    elif layout == "lsp":  # (3, 14, N), 0 = visible
        joints = np.concatenate([coords, (~visible)[..., None].astype(float)], axis=2).transpose(2, 1, 0)
    else:  # (N, 14, 3), 1 = visible
        joints = np.concatenate([coords, visible[..., None].astype(float)], axis=2)
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    return root


@pytest.mark.parametrize("layout, shape", [("lspet", (14, 3, 4)), ("lsp", (3, 14, 4)), ("person_first", (4, 14, 3))])
def test_all_layouts_give_the_same_samples(tmp_path, layout, shape):
    coords, visible = _people(4)
    root = _write_lsp(tmp_path / layout, layout, coords, visible)
    assert scipy.io.loadmat(root / "joints.mat")["joints"].shape == shape
    read_coords, read_visible, read_layout = load_lsp_joints(root / "joints.mat")
    assert read_layout == layout
    np.testing.assert_array_equal(read_coords, coords)
    np.testing.assert_array_equal(read_visible, visible)

    samples = read_lsp(root)
    assert [s.image_id for s in samples] == [1, 2, 3, 4]
    assert [s.file_name for s in samples] == ["im0001.jpg", "im0002.jpg", "im0003.jpg", "im0004.jpg"]
    for i, sample in enumerate(samples):
        assert sample.skeleton == "lsp" and sample.keypoints.shape == (14, 3)
        np.testing.assert_array_equal(sample.keypoints[:13, :2], coords[i, :13])
        assert np.all(sample.keypoints[:13, 2] == 2)
        np.testing.assert_array_equal(sample.keypoints[13], [0, 0, 0])  # not visible -> unlabelled
        np.testing.assert_array_equal(sample.extra["raw_joints"][13], [-5, 50])
        # tight box of the 13 visible joints: x 2..26, y (3+i)..(15+i), inside the 40x30 image
        np.testing.assert_allclose(sample.box, [2, 3 + i, 24, 12])


def test_box_padding_and_clipping(tmp_path):
    coords, visible = _people(1)
    root = _write_lsp(tmp_path, "lspet", coords, visible)
    # padding 0.5: 24x12 -> 36x18 about the centre (14, 9): x -4..32, y 0..18 -> clipped x to 0
    np.testing.assert_allclose(read_lsp(root, box_padding=0.5)[0].box, [0, 0, 32, 18])
    with pytest.raises(ValueError):
        read_lsp(root, box_padding=-0.1)


def test_box_from_all_joints_when_fewer_than_two_visible(tmp_path):
    coords, visible = _people(1)
    visible[:] = False
    visible[0, 0] = True
    root = _write_lsp(tmp_path, "lspet", coords, visible)
    sample = read_lsp(root)[0]
    assert (sample.keypoints[:, 2] > 0).sum() == 1
    # all 14 joints: x -5..26, y 3..50 -> clipped to the 40x30 image: x 0..26, y 3..30
    np.testing.assert_allclose(sample.box, [0, 3, 26, 27])


def test_people_without_visible_joints_are_skipped(tmp_path):
    coords, visible = _people(2)
    visible[1] = False
    assert [s.image_id for s in read_lsp(_write_lsp(tmp_path, "lspet", coords, visible))] == [1]


def test_images_numbered_beyond_the_columns_use_sorted_order(tmp_path):
    coords, visible = _people(3)
    root = _write_lsp(tmp_path, "lspet", coords, visible, names=["im0005.jpg", "im0012.jpg", "im0009.jpg"])
    samples = read_lsp(root)
    assert [s.image_id for s in samples] == [5, 9, 12]
    np.testing.assert_array_equal(samples[2].keypoints[0, :2], coords[2, 0])  # im0012 is the third column


def test_images_that_cannot_be_matched_to_columns(tmp_path):
    coords, visible = _people(2)
    root = _write_lsp(tmp_path, "lspet", coords, visible, names=["im0005.jpg", "im0012.jpg", "im0009.jpg"])
    with pytest.raises(DataError, match="joints.mat: 3 images numbered 5..12 cannot be matched to 2"):
        read_lsp(root)


def test_fixed_split(tmp_path):
    coords, visible = _people(25)
    root = _write_lsp(tmp_path, "lspet", coords, visible)
    assert [s.image_id for s in read_lsp(root, "val")] == [10, 20]
    assert len(read_lsp(root, "train")) == 23 and len(read_lsp(root, "all")) == 25
    assert [s.image_id for s in load_samples(f"lsp:{root}@val")] == [10, 20]
    assert in_split(30, "val") and not in_split(31, "val") and in_split(31, "train")
    with pytest.raises(ValueError, match="split"):
        read_lsp(root, "test")


def test_bad_mat_files(tmp_path):
    root = tmp_path / "lsp"
    coords, visible = _people(2)
    _write_lsp(root, "lspet", coords, visible)
    scipy.io.savemat(root / "joints.mat", {"other": np.zeros(3)})
    with pytest.raises(DataError, match=r"joints.mat: no variable 'joints' \(found \['other'\]\)"):
        read_lsp(root)
    scipy.io.savemat(root / "joints.mat", {"joints": np.zeros((14, 2, 2))})
    with pytest.raises(DataError, match=r"joints.mat: 'joints' has shape \(14, 2, 2\)"):
        read_lsp(root)
    joints = np.ones((14, 3, 2))
    joints[4, 2, 1] = 0.5
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    with pytest.raises(DataError, match="joints.mat, record column 1: visibility flags must be 0 or 1"):
        read_lsp(root)
    (root / "joints.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match="joints.mat: cannot read MATLAB file"):
        read_lsp(root)
    (root / "joints.mat").unlink()
    with pytest.raises(DataError, match="joints.mat: joints.mat not found"):
        read_lsp(root)


def test_nan_visible_joint_is_reported_with_the_image(tmp_path):
    coords, visible = _people(3)
    coords[1, 4] = np.nan
    root = _write_lsp(tmp_path, "lspet", coords, visible)
    with pytest.raises(DataError, match=r"joints.mat, record im0002.jpg \(column 1\): visible joint with NaN"):
        read_lsp(root)
    report = []
    samples = read_lsp(root, skip_invalid=True, report=report)
    assert [s.image_id for s in samples] == [1, 3]
    assert [e.record for e in report] == ["im0002.jpg (column 1)"]


def test_unreadable_image_is_reported(tmp_path):
    coords, visible = _people(2)
    root = _write_lsp(tmp_path, "lspet", coords, visible)
    (root / "images" / "im0001.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"joints.mat, record im0001.jpg \(column 0\): .*zero-byte"):
        read_lsp(root)
    assert [s.image_id for s in read_lsp(root, skip_invalid=True)] == [2]


# -- the real LSPET sample -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lspet_raw():
    if not (LSPET / "joints.mat").exists():
        pytest.skip(f"shared data not available: {LSPET}")
    return scipy.io.loadmat(LSPET / "joints.mat")["joints"]


@pytest.mark.shared_data
def test_lspet_val_split_and_first_image(lspet_raw):
    val = read_lsp(LSPET, "val")
    assert len(val) == lspet_raw.shape[2] // LSPET_VAL_EVERY == 800
    assert all(s.image_id % 10 == 0 for s in val)
    train = read_lsp(LSPET, "train")
    assert len(train) == 7200 and all(s.image_id % 10 != 0 for s in train)
    assert not {s.image_id for s in train} & {s.image_id for s in val}

    first = train[0]
    assert first.image_id == 1 and first.file_name == "im00001.jpg"
    assert first.image_path == str((LSPET / "images" / "im00001.jpg").resolve())
    raw = lspet_raw[:, :, 0]  # (14, 3): x, y, 1 = visible
    visible = raw[:, 2] == 1
    np.testing.assert_array_equal(first.extra["raw_joints"], raw[:, :2].astype(np.float32))
    np.testing.assert_array_equal(first.keypoints[visible, :2], raw[visible, :2].astype(np.float32))
    assert np.all(first.keypoints[visible, 2] == 2) and np.all(first.keypoints[~visible] == 0)
    # box: tight around the visible joints (all inside this 157x105 image)
    low, high = raw[visible, :2].min(0), raw[visible, :2].max(0)
    np.testing.assert_allclose(first.box, [*low, *(high - low)], rtol=1e-6)
    assert first.extra["image_size"] == (157, 105)
