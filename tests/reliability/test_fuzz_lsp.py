"""Malformed LSP / LSPET joints.mat files, fuzzed and hand-made: the contract of reader_contract.py."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.io
from hypothesis import given
from hypothesis import strategies as st

from posekit.data.formats import read_lsp
from posekit.data.sample import DataError

from reader_contract import FUZZ, SPECIAL_NUMBERS, assert_names_file, load_strict_and_skipping, write_image

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
