"""COCO keypoint annotations (and COCO-like sets: CrowdPose, OCHuman, AI Challenger, ...) and COCO
detection-results files.

COCO marks people that cannot be used for keypoint training in two ways that are *not* errors:
``iscrowd = 1`` and ``num_keypoints = 0``. Both are skipped and counted in a logged summary. Anything
else that is wrong with a record is a :class:`~posekit.data.sample.DataError`.
"""
from __future__ import annotations

import logging
import pathlib
import re

import numpy as np

from posekit.data.formats._common import (
    Problems, as_float_array, as_int, clip_box, float32_box, pick_image_root,
    resolve_file, skeleton_name, xywh_to_xyxy, xyxy_to_xywh,
)
from posekit.data.formats.base import DataFormat, register_format
from posekit.data.formats.coco_detections import PERSON_CATEGORY_ID, read_coco_detections
from posekit.data.formats.coco_fields import check_annotation_fields, check_area, check_image_size_fields, iscrowd_flag
from posekit.data.formats.plausible import check_box_near_image, check_keypoints_near_image
from posekit.data.io import image_size, load_json
from posekit.data.sample import DataError, Sample

logger = logging.getLogger(__name__)

_SPLIT_FROM_NAME = re.compile(r"^(?:person_keypoints|instances|image_info)_(?P<split>.+)$")


def split_from_annotation_name(ann_file) -> str | None:
    """``'val2017'`` for ``person_keypoints_val2017.json`` (the COCO naming), else None."""
    match = _SPLIT_FROM_NAME.match(pathlib.Path(ann_file).stem)
    return match.group("split") if match else None


def default_image_roots(ann_file) -> list[pathlib.Path]:
    """Where COCO-style images are looked for, in order: next to the json, ``images/``,
    ``../<split>/`` (``annotations/person_keypoints_<split>.json`` layout), ``../images/``."""
    json_dir = pathlib.Path(ann_file).resolve().parent
    candidates = [json_dir, json_dir / "images"]
    split = split_from_annotation_name(ann_file)
    if split:
        candidates.append(json_dir.parent / split)
    candidates.append(json_dir.parent / "images")
    return candidates


def _require_list(data: dict, key: str, path) -> list:
    if key not in data:
        raise DataError(path, f"missing top-level key {key!r} (found keys: {sorted(data)[:10]})")
    value = data[key]
    if not isinstance(value, list):
        raise DataError(path, f"top-level {key!r} must be a list, got {type(value).__name__}")
    return value


def _keypoint_categories(data: dict, path) -> dict[int, tuple[str, ...]]:
    """category id -> keypoint names, for categories that declare keypoints."""
    categories = data.get("categories", [])
    if not isinstance(categories, list):
        raise DataError(path, f"top-level 'categories' must be a list, got {type(categories).__name__}")
    found = {}
    for index, category in enumerate(categories):
        record = f"category #{index}"
        if not isinstance(category, dict):
            raise DataError(path, f"category must be an object, got {type(category).__name__}", record)
        names = category.get("keypoints")
        if not names:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(path, "category 'keypoints' must be a list of names", record)
        if "id" not in category:
            raise DataError(path, "category without 'id'", record)
        found[as_int(category["id"], path, record, "category id")] = tuple(names)
    return found


class _ImageTable:
    """Image entries by id, with the image file checked and its size read once, on first use."""

    def __init__(self, images: list, path: pathlib.Path, problems: Problems):
        self.path = path
        self.entries: dict[int, dict] = {}
        self.rejected: set[int] = set()  # ids already reported: their annotations are skipped silently
        self._resolved: dict[int, tuple[str, tuple[float, float]]] = {}
        for index, entry in enumerate(images):
            try:
                self._add(index, entry)
            except DataError as err:
                problems.bad(err)

    def _add(self, index: int, entry) -> None:
        if not isinstance(entry, dict):
            raise DataError(self.path, f"image entry must be an object, got {type(entry).__name__}", f"image #{index}")
        if "id" not in entry:
            raise DataError(self.path, "image entry without 'id'", f"image #{index}")
        image_id = as_int(entry["id"], self.path, f"image #{index}", "image id")
        record = f"image {image_id}"
        if image_id in self.entries:
            raise DataError(self.path, f"duplicate image id {image_id}", record)
        try:
            file_name = entry.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise DataError(self.path, f"image 'file_name' must be a non-empty string, got {file_name!r}", record)
            check_image_size_fields(entry, self.path, record)
        except DataError:
            self.rejected.add(image_id)
            raise
        self.entries[image_id] = entry

    def file_and_size(self, image_id: int, image_root: pathlib.Path) -> tuple[str, tuple[float, float]]:
        """(absolute image path, (width, height)); DataError naming the image if the file is missing."""
        if image_id not in self._resolved:
            entry = self.entries[image_id]
            record = f"image {image_id} ({entry['file_name']})"
            try:
                image_path = resolve_file(image_root, entry["file_name"], self.path, record)
                if not image_path.is_file():
                    raise DataError(self.path, f"image file not found: {image_path}", record)
                size = self._checked_size(entry, image_path, record)
            except DataError as err:
                self.rejected.add(image_id)
                if err.path != str(self.path):  # an unreadable image: name the annotation file too
                    err = DataError(self.path, f"{err.path}: {err.what}", record)
                raise err from None
            self._resolved[image_id] = (str(image_path), size)
        return self._resolved[image_id]

    def _checked_size(self, entry: dict, image_path, record) -> tuple[float, float]:
        """The image's size from its header; a declared ``width`` / ``height`` must agree with it (either way
        round: the header size is after the EXIF rotation), since keypoints are checked against it."""
        width, height = (float(v) for v in image_size(image_path))
        declared = check_image_size_fields(entry, self.path, record)
        if declared is not None and declared not in ((width, height), (height, width)):
            raise DataError(self.path, f"declared image size {declared[0]:g}x{declared[1]:g} but the file "
                                       f"{image_path} is {width:g}x{height:g}", record)
        return width, height


def read_coco(ann_file, image_root=None, *, skip_invalid=False, report=None, min_keypoints=1) -> list[Sample]:
    """One Sample per usable person annotation of a COCO-style keypoint file.

    ann_file: COCO json (dict with 'images', 'annotations', optionally 'categories').
    image_root: folder the image ``file_name`` s are relative to; default: the first of
        :func:`default_image_roots` that holds the first image.
    min_keypoints: annotations with fewer labelled keypoints (v > 0) are skipped, not errors (COCO's
        ``num_keypoints == 0`` people). Crowd annotations are skipped too. Both are counted in a log.
    Returns Samples in annotation order; ``box`` is the annotation's bbox clipped to the image,
    keypoints are (K, 3) with x = y = 0 where v = 0. The skeleton is chosen from the category's
    keypoint names (:func:`~posekit.data.formats._common.skeleton_name`): 'coco' for COCO/OCHuman,
    ``f"custom{K}"`` for sets like CrowdPose whose keypoints match no registered skeleton (their names
    are then in ``extra['keypoint_names']``).
    Raises DataError (or, with ``skip_invalid``, skips the record and appends the error to ``report``).
    """
    path = pathlib.Path(ann_file)
    if min_keypoints < 0:
        raise ValueError(f"min_keypoints must be >= 0, got {min_keypoints}")
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(path, f"JSON root must be an object with 'images' and 'annotations', got {type(data).__name__}")
    images = _require_list(data, "images", path)
    annotations = _require_list(data, "annotations", path)
    category_names = _keypoint_categories(data, path)
    problems = Problems(path, skip_invalid, report)
    table = _ImageTable(images, path, problems)

    if image_root is None:
        probe = next((e["file_name"] for e in table.entries.values()), None)
        root = pick_image_root(default_image_roots(path), probe)
    else:
        root = pathlib.Path(image_root)
    root = root.resolve()

    samples: list[Sample] = []
    seen_ann_ids: set[int] = set()
    global_k: list[int] = []  # keypoint count fixed by the first annotation when categories do not say
    for index, ann in enumerate(annotations):
        try:
            sample = _read_annotation(index, ann, path, root, table, category_names, global_k, seen_ann_ids,
                                      min_keypoints, problems)
        except DataError as err:
            problems.bad(err)
            continue
        if sample is not None:
            samples.append(sample)

    problems.warn_summary()
    _warn_num_keypoints_mismatch(path, problems.count(NUM_KEYPOINTS_DISAGREE))
    logger.info("%s: %d samples from %d images (images in %s); skipped %d crowd, %d with fewer than %d "
                "labelled keypoints, %d of other categories, %d invalid", path, len(samples),
                len({s.image_id for s in samples}), root, problems.count("crowd"), problems.count(FEW_KEYPOINTS),
                min_keypoints, problems.count("of other categories"), len(problems.errors))
    problems.skipped.pop(NUM_KEYPOINTS_DISAGREE, None)  # counted, but those people were not skipped
    if min_keypoints != 1 and FEW_KEYPOINTS in problems.skipped:
        problems.skipped[f"with fewer than {min_keypoints} labelled keypoints"] = problems.skipped.pop(FEW_KEYPOINTS)
    return problems.result(samples, len(annotations), "annotations")


#: skip reasons (also the words of the "no usable person" error)
FEW_KEYPOINTS = "with no labelled keypoint"
NUM_KEYPOINTS_DISAGREE = "num_keypoints disagrees with the keypoints"


def _warn_num_keypoints_mismatch(path, count: int) -> None:
    """pycocotools ignores people whose ``num_keypoints`` is 0 while posekit counts the labelled keypoints
    themselves: say when the two disagree, since OKS AP and PCK then score different people."""
    if count:
        logger.warning("%s: %d annotation(s) have a num_keypoints that disagrees with their labelled keypoints "
                       "(v > 0); posekit uses the keypoints, OKS AP (pycocotools) ignores people with "
                       "num_keypoints 0", path, count)


def _read_annotation(index, ann, path, root, table: _ImageTable, category_names, global_k, seen_ann_ids,
                     min_keypoints, problems: Problems) -> Sample | None:
    if not isinstance(ann, dict):
        raise DataError(path, f"annotation must be an object, got {type(ann).__name__}", f"annotation #{index}")
    if "id" not in ann:
        raise DataError(path, "annotation without 'id'", f"annotation #{index}")
    ann_id = as_int(ann["id"], path, f"annotation #{index}", "annotation id")
    record = f"annotation {ann_id}"
    if ann_id in seen_ann_ids:
        raise DataError(path, f"duplicate annotation id {ann_id}", record)
    seen_ann_ids.add(ann_id)
    check_annotation_fields(ann, path, record)  # the numbers, as evaluation checks them too

    if "image_id" not in ann:
        raise DataError(path, "annotation without 'image_id'", record)
    image_id = as_int(ann["image_id"], path, record, "image_id")
    if image_id in table.rejected:
        problems.skip("on images already reported")
        return None
    if image_id not in table.entries:
        raise DataError(path, f"annotation refers to unknown image_id {image_id}", record)

    names = None
    if category_names:
        if "category_id" in ann:
            category_id = as_int(ann["category_id"], path, record, "category_id")
            if category_id not in category_names:
                problems.skip("of other categories")
                return None
            names = category_names[category_id]
        elif len(category_names) == 1:
            names = next(iter(category_names.values()))
    if iscrowd_flag(ann.get("iscrowd", 0), path, record):
        problems.skip("crowd")
        return None

    keypoints = _parse_keypoints(ann, path, record, names, global_k)
    labelled = int(np.count_nonzero(keypoints[:, 2] > 0))
    if "num_keypoints" in ann and as_int(ann["num_keypoints"], path, record, "num_keypoints") != labelled:
        problems.skip(NUM_KEYPOINTS_DISAGREE)
    if labelled < min_keypoints:
        problems.skip(FEW_KEYPOINTS)
        return None

    if "bbox" not in ann:
        raise DataError(path, "annotation without 'bbox'", record)
    box = as_float_array(ann["bbox"], (4,), path, record, "bbox")
    float32_box(box, path, record, "bbox")  # no area (even if only once rounded to float32): an error
    image_path, size = table.file_and_size(image_id, root)
    check_box_near_image(box, size, path, record, "bbox")
    check_keypoints_near_image(keypoints, size, path, record)
    clipped = xyxy_to_xywh(clip_box(xywh_to_xyxy(box), *size))
    if clipped[2] <= 0 or clipped[3] <= 0:
        raise DataError(path, f"bbox {box.tolist()} lies outside the {size[0]:g}x{size[1]:g} image", record)

    num_keypoints = len(keypoints)
    skeleton = skeleton_name(num_keypoints, names)
    extra = {"image_size": size}
    if "area" in ann:
        extra["area"] = check_area(ann["area"], path, record, size)
    if names is not None and skeleton.startswith("custom"):
        extra["keypoint_names"] = names
    entry = table.entries[image_id]
    return Sample(image_path=image_path, box=clipped, keypoints=keypoints, skeleton=skeleton, image_id=image_id,
                  ann_id=ann_id, file_name=entry["file_name"], extra=extra)


def _parse_keypoints(ann, path, record, names, global_k) -> np.ndarray:
    """(K, 3) float32 from the flat ``[x1, y1, v1, ...]`` list, validated."""
    if "keypoints" not in ann:
        raise DataError(path, "annotation without 'keypoints'", record)
    flat = as_float_array(ann["keypoints"], (-1,), path, record, "keypoints")
    if flat.size == 0 or flat.size % 3:
        raise DataError(path, f"keypoints has {flat.size} values, not a positive multiple of 3 (x, y, v)", record)
    num_keypoints = flat.size // 3
    if names is not None and num_keypoints != len(names):
        raise DataError(path, f"keypoints has {flat.size} values ({num_keypoints} keypoints) but the category "
                              f"declares {len(names)} keypoints", record)
    if not global_k:
        global_k.append(num_keypoints)
    elif num_keypoints != global_k[0]:
        raise DataError(path, f"keypoints has {num_keypoints} keypoints but earlier annotations have {global_k[0]}",
                        record)
    keypoints = flat.reshape(num_keypoints, 3)
    flags = keypoints[:, 2]
    if not np.all(np.isin(flags, (0.0, 1.0, 2.0))):
        bad = sorted({float(v) for v in flags if v not in (0.0, 1.0, 2.0)})
        raise DataError(path, f"keypoint visibility must be 0, 1 or 2, got {bad}", record)
    keypoints = keypoints.astype(np.float32)
    keypoints[flags == 0, :2] = 0.0
    return keypoints


__all__ = ["read_coco", "read_coco_detections", "default_image_roots", "split_from_annotation_name",
           "PERSON_CATEGORY_ID"]


def split_image_root(ann_file, split: str) -> pathlib.Path:
    """The image folder of ``coco:ANN.json@SPLIT``: ``../SPLIT/`` beside the json's folder, else ``SPLIT/`` in it."""
    json_dir = pathlib.Path(ann_file).resolve().parent
    candidates = [json_dir.parent / split, json_dir / split]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataError(ann_file, f"no image folder for split {split!r}: looked in {', '.join(map(str, candidates))}")


@register_format
class CocoFormat(DataFormat):
    """``coco:ANN.json[@SPLIT]``: COCO-style keypoints; ``@val2017`` looks for images in ``../val2017/``."""

    name = "coco"
    has_splits = True
    has_oks_ground_truth = True

    def read(self, path, split=None, *, skip_invalid=False, report=None) -> list[Sample]:
        image_root = split_image_root(path, split) if split else None
        return read_coco(path, image_root, skip_invalid=skip_invalid, report=report)
