"""COCO detection-results files: ``[{image_id | file_name, category_id, bbox, score}, ...]`` person boxes, for
evaluating with detected boxes and for ``posekit predict FOLDER --boxes``."""
from __future__ import annotations

import logging
import pathlib

import numpy as np

from posekit.data.formats._common import as_float_array, as_int, as_number, check_box_file_name
from posekit.data.io import load_json
from posekit.data.sample import DataError

logger = logging.getLogger("posekit.data.formats.coco")

__all__ = ["PERSON_CATEGORY_ID", "read_coco_detections"]

#: COCO's category id for people; detection results of other categories are ignored.
PERSON_CATEGORY_ID = 1


def _detection_entries(det_file, *, require_image_id: bool, image_root=None):
    """Validated person detections: list of (image_id | None, file_name | None, box xywh (4,) f32, score).

    Entries of other categories and boxes with no area are skipped (logged), not errors. With
    ``image_root``, file names are checked to stay inside it and returned as posix paths relative to it.
    """
    path = pathlib.Path(det_file)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"a COCO detection-results file must be a JSON list, got {type(data).__name__}")
    entries, empty_boxes = [], 0
    for index, det in enumerate(data):
        record = f"detection #{index}"
        if not isinstance(det, dict):
            raise DataError(path, f"detection must be an object, got {type(det).__name__}", record)
        if "category_id" in det and as_int(det["category_id"], path, record, "category_id") != PERSON_CATEGORY_ID:
            continue
        image_id = as_int(det["image_id"], path, record, "image_id") if "image_id" in det else None
        file_name = det.get("file_name")
        if file_name is not None and (not isinstance(file_name, str) or not file_name):
            raise DataError(path, f"'file_name' must be a non-empty string, got {file_name!r}", record)
        if file_name is not None and image_root is not None:
            file_name = check_box_file_name(image_root, file_name, path, record)
        if image_id is None and (require_image_id or file_name is None):
            raise DataError(path, "detection without 'image_id'", record)
        for key in ("bbox", "score"):
            if key not in det:
                raise DataError(path, f"detection without {key!r}", record)
        box = as_float_array(det["bbox"], (4,), path, record, "bbox").astype(np.float32)
        score = as_number(det["score"], path, record, "score")
        if box[2] <= 0 or box[3] <= 0:
            empty_boxes += 1
            continue
        entries.append((image_id, file_name, box, score))
    if empty_boxes:
        logger.warning("%s: ignored %d detections with zero width or height", path, empty_boxes)
    return entries


def read_coco_detections(det_file, *, score_threshold=0.0) -> dict[int, list[tuple[np.ndarray, float]]]:
    """Person boxes from a COCO detection-results list (``image_id, category_id, bbox, score``).

    Returns image_id -> [(box xywh (4,) float32, score)], highest score first, keeping detections
    with ``score >= score_threshold``. Entries with another ``category_id`` than 1 (person) are ignored.
    """
    by_image: dict[int, list[tuple[np.ndarray, float]]] = {}
    for image_id, _, box, score in _detection_entries(det_file, require_image_id=True):
        if score >= score_threshold:
            by_image.setdefault(image_id, []).append((box, score))
    for boxes in by_image.values():
        boxes.sort(key=lambda item: -item[1])  # stable: equal scores keep file order
    return by_image
