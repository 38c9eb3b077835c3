"""MPII Human Pose in the common JSON-list layout: ``[{image, joints (16x2), joints_vis (16), center, scale}]``.

MPII conventions: ``scale * 200`` is the person's height in pixels, ``center`` the person centre;
``joints_vis`` is 1 for labelled joints, and unlabelled joints carry placeholder coordinates such as
``(-1, -1)`` or ``(0, 0)``. Coordinates are kept as written (MATLAB origin; no 1-pixel shift).
"""
from __future__ import annotations

import logging
import pathlib

import numpy as np

from posekit.data.formats._common import (
    Problems, as_float_array, as_number, float32_box, numeric_stem, pick_image_root, resolve_file,
)
from posekit.data.formats.base import DataFormat, register_format
from posekit.data.formats.plausible import check_box_near_image, check_keypoints_near_image
from posekit.data.io import image_size, load_json
from posekit.data.sample import DataError, Sample

logger = logging.getLogger(__name__)

NUM_MPII_JOINTS = 16
#: MPII's person scale unit: ``scale * MPII_SCALE_PIXELS`` = person height in pixels.
MPII_SCALE_PIXELS = 200.0


def default_image_roots(ann_file) -> list[pathlib.Path]:
    """Next to the json, ``images/`` beside it, or ``../images/`` (``annot/train.json`` layout)."""
    json_dir = pathlib.Path(ann_file).resolve().parent
    return [json_dir, json_dir / "images", json_dir.parent / "images"]


def read_mpii(ann_file, image_root=None, *, skip_invalid=False, report=None) -> list[Sample]:
    """One Sample per entry of an MPII json list, in file order.

    keypoints (16, 3): ``joints_vis`` 1 -> v = 2, 0 -> v = 0 with x = y = 0 (a joint flagged 1 but at
    the ``(-1, -1)`` placeholder is treated as unlabelled). box: the square of side ``scale * 200``
    centred on ``center`` (not clipped, so the crop centre stays MPII's), with ``extra['center']``
    and ``extra['scale']`` kept. Entries without any labelled joint are skipped (counted in the log).
    ``image_id``: the numeric image stem (``005808361.jpg`` -> 5808361), else the entry index;
    ``ann_id``: the entry index. skeleton 'mpii'.
    """
    path = pathlib.Path(ann_file)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"MPII annotations must be a JSON list of people, got {type(data).__name__}")
    if image_root is None:
        first = data[0].get("image") if data and isinstance(data[0], dict) else None
        root = pick_image_root(default_image_roots(path), first if isinstance(first, str) else None)
    else:
        root = pathlib.Path(image_root)
    root = root.resolve()
    problems = Problems(path, skip_invalid, report)
    samples, sizes = [], {}  # sizes: image path -> (width, height), read once per image (people share images)
    for index, entry in enumerate(data):
        try:
            sample = _read_entry(index, entry, path, root, sizes)
        except DataError as err:
            problems.bad(err)
            continue
        if sample is None:
            problems.skip(UNLABELLED)
        else:
            samples.append(sample)
    problems.warn_summary()
    logger.info("%s: %d samples (images in %s); skipped %d without labelled joints, %d invalid", path,
                len(samples), root, problems.count(UNLABELLED), len(problems.errors))
    return problems.result(samples, len(data), "entries")


UNLABELLED = "without labelled joints"


def _read_entry(index: int, entry, path, root, sizes: dict) -> Sample | None:
    record = f"#{index}"
    if not isinstance(entry, dict):
        raise DataError(path, f"entry must be an object, got {type(entry).__name__}", record)
    image = entry.get("image")
    if not isinstance(image, str) or not image:
        raise DataError(path, f"'image' must be a non-empty string, got {image!r}", record)
    record = f"#{index} ({image})"
    for key in ("joints", "joints_vis", "center", "scale"):
        if key not in entry:
            raise DataError(path, f"entry without {key!r}", record)
    joints = as_float_array(entry["joints"], (NUM_MPII_JOINTS, 2), path, record, "joints")
    flags = as_float_array(entry["joints_vis"], (NUM_MPII_JOINTS,), path, record, "joints_vis")
    if not np.all(np.isin(flags, (0.0, 1.0))):
        raise DataError(path, f"joints_vis must be 0 or 1, got {sorted(set(flags.tolist()))}", record)
    center = as_float_array(entry["center"], (2,), path, record, "center")
    scale = as_number(entry["scale"], path, record, "scale")
    if scale <= 0:
        raise DataError(path, f"scale must be positive, got {scale}", record)

    placeholder = np.all(joints == -1.0, axis=1)
    labelled = (flags == 1.0) & ~placeholder
    if not labelled.any():
        return None
    image_path = resolve_file(root, image, path, record)
    if not image_path.is_file():
        raise DataError(path, f"image file not found: {image_path}", record)
    try:
        if image_path not in sizes:  # the header only: what joints and the box are checked against
            sizes[image_path] = image_size(image_path)
        size = sizes[image_path]
    except DataError as err:
        raise DataError(path, f"{err.path}: {err.what}", record) from None

    keypoints = np.zeros((NUM_MPII_JOINTS, 3), dtype=np.float32)
    keypoints[labelled, :2] = joints[labelled]
    keypoints[labelled, 2] = 2.0
    check_keypoints_near_image(keypoints, size, path, record)
    side = scale * MPII_SCALE_PIXELS
    what = f"person box from center {center.tolist()} and scale {scale:g}"
    box = float32_box([center[0] - side / 2, center[1] - side / 2, side, side], path, record, what)
    check_box_near_image(box, size, path, record, what)
    stem_id = numeric_stem(image)
    return Sample(image_path=str(image_path), box=box, keypoints=keypoints, skeleton="mpii",
                  image_id=stem_id if stem_id is not None else index, ann_id=index, file_name=image,
                  extra={"center": center.astype(np.float32), "scale": scale, "image_size": size})


@register_format
class MPIIFormat(DataFormat):
    """``mpii:ANN.json``: an MPII JSON list with center / scale (one file per split)."""

    name = "mpii"

    def read(self, path, split=None, *, skip_invalid=False, report=None) -> list[Sample]:
        return read_mpii(path, skip_invalid=skip_invalid, report=report)
