"""The contract every annotation reader (COCO, LSP/LSPET .mat, MPII, detection boxes) honours, shared by test_fuzz_*.py.

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
import os
import pathlib

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

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


# -- edits of a JSON document, and the values the mutation fuzzers insert --------------------------------
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


def number_lists(lengths=(0, 3, 4, 48, 50, 51, 54)):
    return st.sampled_from(lengths).flatmap(
        lambda n: st.lists(st.one_of(st.sampled_from(SPECIAL_NUMBERS), st.floats(-1e3, 1e3)), min_size=n, max_size=n))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS), st.text(max_size=6), number_lists(),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["a.png", "b.png", "gone.png", "empty.png", "../a.png", "/etc/hostname", "", "."]),
)
