"""Small helpers shared by the readers: error collection, type checks, image-root lookup."""
from __future__ import annotations

import logging
import math
import numbers
import os
import pathlib

import numpy as np

from posekit.data.io import resolve_inside
from posekit.data.sample import DataError, SampleList
from posekit.skeletons import SKELETONS, skeleton_for

logger = logging.getLogger("posekit.data.formats")

_MAX_LISTED = 10  # records named in one warning; the full list is in ``report``
#: The largest magnitude a Sample can hold: boxes and keypoints are float32, where anything larger is inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Problems:
    """Collects bad records: raises the first one, or (``skip_invalid``) records them all.

    With ``skip_invalid`` each DataError is appended to ``report`` (if given) and :meth:`warn_summary`
    logs how many records were skipped and which.
    """

    def __init__(self, source, skip_invalid: bool, report: list | None):
        if report is not None and not isinstance(report, list):
            raise TypeError(f"report must be a list or None, got {type(report).__name__}")
        self.source = str(source)
        self.skip_invalid = bool(skip_invalid)
        self.report = report
        self.errors: list[DataError] = []
        self.skipped: dict[str, int] = {}  # records skipped by rule, not errors: reason -> count

    def skip(self, reason: str) -> None:
        """Count one record left out by the format's own rules (crowd, no labelled joint, ...)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def count(self, reason: str) -> int:
        return self.skipped.get(reason, 0)

    def result(self, samples, records: int, unit: str) -> SampleList:
        """The reader's return value: the samples with what was skipped (invalid records included)."""
        skipped = {**self.skipped, "invalid (skipped)": len(self.errors)}
        return SampleList(samples, source=self.source, records=records, unit=unit, skipped=skipped)

    def bad(self, error: DataError) -> None:
        if not self.skip_invalid:
            raise error
        self.errors.append(error)
        if self.report is not None:
            self.report.append(error)

    def warn_summary(self) -> None:
        if not self.errors:
            return
        listed = list_some([e.what if e.record is None else f"record {e.record}: {e.what}" for e in self.errors])
        logger.warning("%s: skipped %d invalid record(s): %s", self.source, len(self.errors), listed)


def list_some(items, separator: str = "; ") -> str:
    """The first :data:`_MAX_LISTED` items joined for a log message, then how many more there are."""
    items = [str(item) for item in items]
    more = f"{separator}... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return separator.join(items[:_MAX_LISTED]) + more


def as_int(value, path, record, what: str) -> int:
    """An integer id/flag; integral floats (``3.0``) are accepted, bools and strings are not."""
    if not is_number(value):
        raise DataError(path, f"{what} must be an integer, got {type(value).__name__} {value!r}", record)
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(value) or not float(value).is_integer():
        raise DataError(path, f"{what} must be an integer, got {value!r}", record)
    return int(value)


def is_number(value) -> bool:
    """The one rule for a number in an annotation file: an int or float, not a bool and not a string.

    NumPy would quietly read ``"12"`` as 12.0 and ``true`` as 1.0, and pycocotools would crash on the
    string later: training and evaluation must refuse the same records, so both ask this.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def first_non_number(value):
    """``(index path, leaf)`` of the first leaf of a nested list that is not a number, else None."""
    for index, item in enumerate(value):
        if type(item) in (int, float):  # the common case, kept fast for files with millions of numbers
            continue
        if isinstance(item, (list, tuple)):
            found = first_non_number(item)
            if found is not None:
                return (index, *found[0]), found[1]
        elif not is_number(item):
            return (index,), item
    return None


def as_number(value, path, record, what: str) -> float:
    """One finite number (the :func:`is_number` rule), within the float32 range."""
    if not is_number(value):
        raise DataError(path, f"{what} must be a number, got {type(value).__name__} {value!r}", record)
    return float(as_float_array([value], (1,), path, record, what)[0])


def as_float_array(value, shape: tuple, path, record, what: str) -> np.ndarray:
    """A float64 array of exactly ``shape`` (``-1`` = any length) with only finite numbers (:func:`is_number`)."""
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise DataError(path, f"{what} must be a list of numbers, got {type(value).__name__}", record)
    if not isinstance(value, np.ndarray):
        try:
            found = first_non_number(value)
        except RecursionError:
            raise DataError(path, f"{what} is nested too deeply", record) from None
        if found is not None:
            where, leaf = found
            at = "".join(f"[{i}]" for i in where)
            raise DataError(path, f"{what} must be numbers, but {what}{at} is {type(leaf).__name__} {leaf!r}", record)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(path, f"{what} must be numbers: {err}", record) from None
    if array.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, array.shape)):
        want = "x".join("N" if s == -1 else str(s) for s in shape)
        raise DataError(path, f"{what} has shape {array.shape}, expected {want}", record)
    if not np.all(np.isfinite(array)):
        raise DataError(path, f"{what} contains NaN or infinite values", record)
    check_float32_range(array, path, record, what)
    return array


def check_float32_range(array, path, record, what: str) -> None:
    """DataError if a (finite) value is too large for float32: converted for a Sample, it would become inf."""
    array = np.asarray(array, dtype=np.float64)
    too_large = np.abs(array) > FLOAT32_MAX
    if np.any(too_large):
        raise DataError(path, f"{what}: {float(array[too_large][0]):g} is beyond the float32 range "
                              f"(|x| <= {FLOAT32_MAX:.4g})", record)


def float32_box(box_xywh, path, record, what: str = "box") -> np.ndarray:
    """(4,) float32 ``x, y, w, h`` as a Sample holds it, checked *after* the conversion: a coordinate that
    overflows to inf, or a width/height that rounds to 0 (or is negative), is a DataError."""
    box = np.asarray(box_xywh, dtype=np.float64)
    with np.errstate(over="ignore"):
        converted = box.astype(np.float32)
    if not np.all(np.isfinite(converted)):
        raise DataError(path, f"{what} {box.tolist()} is beyond the float32 range (|x| <= {FLOAT32_MAX:.4g})",
                        record)
    if not (converted[2] > 0 and converted[3] > 0):
        rounded = " once converted to float32" if box[2] > 0 and box[3] > 0 else ""
        raise DataError(path, f"{what} {box.tolist()} has non-positive width or height{rounded}", record)
    return converted


def clip_box(box_xyxy, width: float, height: float) -> np.ndarray:
    """(4,) ``x0, y0, x1, y1`` clipped to the image ``[0, width] x [0, height]``."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    return np.array([min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                     min(max(x1, 0.0), width), min(max(y1, 0.0), height)], dtype=np.float64)


def xywh_to_xyxy(box) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def xyxy_to_xywh(box) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def _normalise_name(name) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def skeleton_name(num_keypoints: int, keypoint_names=None) -> str:
    """Name of the registered skeleton these keypoints follow, else ``f"custom{K}"``.

    With keypoint names (COCO ``categories[...]['keypoints']``) the names must match a registered
    skeleton's, in order: CrowdPose and AI Challenger also have 14 keypoints but not in LSP's order,
    and calling them 'lsp' would silently swap joints. Without names, 17 -> 'coco', otherwise the
    registered skeleton with that many keypoints, if there is exactly one.
    """
    if keypoint_names:
        wanted = tuple(_normalise_name(n) for n in keypoint_names)
        for skeleton in SKELETONS.values():
            if tuple(_normalise_name(n) for n in skeleton.keypoints) == wanted:
                return skeleton.name
        return f"custom{num_keypoints}"
    if num_keypoints == 17:
        return "coco"
    found = skeleton_for(num_keypoints)
    return found.name if found is not None else f"custom{num_keypoints}"


def resolve_file(root, file_name, source, record) -> pathlib.Path:
    """:func:`resolve_inside`, but the DataError names the annotation file and the record."""
    try:
        return resolve_inside(root, file_name)
    except DataError as err:
        raise DataError(source, f"{err.what} (image root {err.path})", record) from None


def check_box_file_name(root, file_name, source, record) -> str:
    """A detection's ``file_name`` as a posix path relative to ``root``; DataError (naming the boxes file and
    the record) if it is absolute or leads outside the folder. Backslashes count as separators (Windows
    names such as ``..\\..\\boot.ini`` are refused on every platform)."""
    posix = pathlib.PurePosixPath(file_name.replace("\\", "/")).as_posix()
    resolve_file(root, posix, source, record)
    return posix


def pick_image_root(candidates, probe_name) -> pathlib.Path:
    """The first candidate directory that holds ``probe_name``; else the first existing directory."""
    existing = [pathlib.Path(c) for c in candidates if pathlib.Path(c).is_dir()]
    if probe_name is not None:
        for directory in existing:
            try:
                if resolve_inside(directory, probe_name).is_file():
                    return directory
            except DataError:
                break  # a hostile name: let the reader report it against the chosen root
    if existing:
        return existing[0]
    return pathlib.Path(candidates[0])


def numeric_stem(name) -> int | None:
    stem = pathlib.PurePath(str(name)).stem
    return int(stem) if stem.isdigit() else None


def is_image_file(path: str | os.PathLike, extensions) -> bool:
    return os.path.splitext(str(path))[1].lower() in extensions
