"""The numbers of one COCO keypoint annotation, checked once for training and for evaluation.

``posekit train`` reads annotations through :func:`posekit.data.formats.read_coco`; OKS AP hands the same json
to pycocotools (:mod:`posekit.metrics.coco`). Both ask :func:`check_annotation_fields`, so a record that one
refuses the other refuses too, with the same words: a bbox of strings no longer crashes COCOeval while
training quietly converts it, and a NaN ``area`` (the OKS scale) no longer scores AP 1.0.
"""
from __future__ import annotations

import math

from posekit.data.formats._common import as_float_array, as_int, as_number, is_number
from posekit.data.formats.plausible import MIN_AREA, max_plausible_area
from posekit.data.sample import DataError

__all__ = ["check_annotation_fields", "check_area", "check_image_size_fields", "iscrowd_flag"]

#: integer fields of an annotation (when present)
INTEGER_FIELDS = ("id", "image_id", "category_id", "num_keypoints")


def iscrowd_flag(value, path, record) -> bool:
    """COCO's ``iscrowd``: 0 / 1 (``true`` / ``false`` are accepted too: it is a flag, not a quantity)."""
    if isinstance(value, bool):
        return value
    flag = as_int(value, path, record, "iscrowd")
    if flag not in (0, 1):
        raise DataError(path, f"iscrowd must be 0 or 1, got {flag}", record)
    return bool(flag)


def check_area(value, path, record, image_size=None) -> float:
    """A person's ``area`` (its OKS scale): finite, at least :data:`MIN_AREA`, at most the largest plausible box
    on its image (when the image size is known)."""
    area = as_number(value, path, record, "area")
    if not area >= MIN_AREA:
        raise DataError(path, f"area must be at least {MIN_AREA:g} square pixel, got {area:g}", record)
    if image_size is not None and area > max_plausible_area(image_size):
        width, height = image_size
        raise DataError(path, f"area {area:g} is impossible on the {float(width):g}x{float(height):g} image "
                              f"(at most {max_plausible_area(image_size):g})", record)
    return area


def check_annotation_fields(ann: dict, path, record, image_size=None) -> None:
    """DataError naming ``record`` when a present field of ``ann`` is not the number it must be: integer ids,
    ``num_keypoints`` >= 0, ``iscrowd`` a flag, ``bbox`` four numbers, ``keypoints`` numbers, ``area``
    (:func:`check_area`). Which fields are required is the caller's business."""
    for key in INTEGER_FIELDS:
        if key in ann:
            value = as_int(ann[key], path, record, key)
            if key == "num_keypoints" and value < 0:
                raise DataError(path, f"num_keypoints must be >= 0, got {value}", record)
    if "iscrowd" in ann:
        iscrowd_flag(ann["iscrowd"], path, record)
    if "bbox" in ann:
        as_float_array(ann["bbox"], (4,), path, record, "bbox")
    if "keypoints" in ann:
        as_float_array(ann["keypoints"], (-1,), path, record, "keypoints")
    if "area" in ann:
        check_area(ann["area"], path, record, image_size)


def check_image_size_fields(entry: dict, path, record) -> tuple[float, float] | None:
    """An image entry's declared ``(width, height)`` (finite positive numbers), or None if it declares neither."""
    declared = {}
    for key in ("width", "height"):
        if key in entry:
            value = entry[key]
            if not (is_number(value) and math.isfinite(value) and value > 0):
                raise DataError(path, f"image {key!r} must be a finite positive number, got {value!r}", record)
            declared[key] = float(value)
    if len(declared) == 2:
        return declared["width"], declared["height"]
    return None
