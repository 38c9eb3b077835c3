"""A plain folder of images, optionally with person boxes from a COCO detection-results json.

Streams: the folder is walked with ``os.scandir`` and Samples are yielded one at a time, so a folder
of a million images costs no memory up front. Order is the file system's directory order.
"""
from __future__ import annotations

import collections
import logging
import os
import pathlib
from typing import Iterator

import numpy as np

from posekit.data.formats._common import clip_box, is_image_file, numeric_stem, xywh_to_xyxy, xyxy_to_xywh
from posekit.data.formats.coco import _detection_entries
from posekit.data.io import IMAGE_EXTENSIONS, image_size, resolve_inside
from posekit.data.sample import DataError, Sample

logger = logging.getLogger(__name__)

#: Skeleton given to folder samples: they carry no keypoints (all v = 0); the model decides what it predicts.
DEFAULT_SKELETON = "coco"
DEFAULT_NUM_KEYPOINTS = 17


def _walk_images(root: pathlib.Path, recursive: bool) -> Iterator[tuple[pathlib.Path, str]]:
    """Yield (path, posix path relative to root) of image files, one directory at a time.

    Hidden entries are skipped; symlinked directories are not followed (no cycles).
    """
    pending = collections.deque([root])
    while pending:
        directory = pending.popleft()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if recursive:
                                pending.append(pathlib.Path(entry.path))
                            continue
                        if entry.is_file() and is_image_file(entry.name, IMAGE_EXTENSIONS):
                            path = pathlib.Path(entry.path)
                            yield path, path.relative_to(root).as_posix()
                    except OSError as err:
                        logger.warning("%s: skipped: %s", entry.path, err)
        except OSError as err:
            logger.warning("%s: cannot list folder: %s", directory, err)


def _index_detections(boxes_file, score_threshold: float):
    """(by file name, by image id) dicts of [(box xywh, score)], highest score first."""
    by_name: dict[str, list] = {}
    by_id: dict[int, list] = {}
    for image_id, file_name, box, score in _detection_entries(boxes_file, require_image_id=False):
        if score < score_threshold:
            continue
        if file_name is not None:
            by_name.setdefault(pathlib.PurePosixPath(file_name.replace("\\", "/")).as_posix(), []).append((box, score))
        else:
            by_id.setdefault(image_id, []).append((box, score))
    for table in (by_name, by_id):
        for boxes in table.values():
            boxes.sort(key=lambda item: -item[1])
    return by_name, by_id


def _boxes_for(relative: str, by_name: dict, by_id: dict) -> list:
    """Detections of one image: by its file name (relative path, then base name), else by numeric stem."""
    found = by_name.get(relative) or by_name.get(relative.rsplit("/", 1)[-1]) or []
    stem_id = numeric_stem(relative)
    if stem_id is not None:
        found = found + by_id.get(stem_id, [])
    return found


def read_image_folder(root, *, boxes_file=None, score_threshold=0.0, recursive=False) -> Iterator[Sample]:
    """Stream one Sample per image (whole image as the box) or per detected person.

    root: folder of images (:data:`~posekit.data.io.IMAGE_EXTENSIONS`); ``recursive`` walks sub-folders.
    boxes_file: COCO detection results; a detection belongs to an image by its ``file_name`` when it has
        one, else by ``image_id`` == the image's numeric stem (``000000000785.jpg`` -> 785). Detections
        with ``score < score_threshold`` are dropped; images without detections yield nothing.
    Sample: keypoints (17, 3) zeros (v = 0), skeleton :data:`DEFAULT_SKELETON`, ``image_id`` = numeric
    stem or else the image's position in the stream, ``file_name`` relative to root,
    ``extra['image_size']`` (and ``extra['score']`` with boxes). Unreadable images are skipped with
    a logged warning. The root and the boxes file are checked now; images are read while iterating.
    """
    root_path = pathlib.Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise DataError(root_path, "image folder not found")
    detections = _index_detections(boxes_file, score_threshold) if boxes_file is not None else None
    return _stream(root_path, detections, recursive)


def _stream(root: pathlib.Path, detections, recursive: bool) -> Iterator[Sample]:
    counts = collections.Counter()
    next_ann_id = 0
    for position, (path, relative) in enumerate(_walk_images(root, recursive)):
        try:
            path = resolve_inside(root, relative)  # a symlinked file must not lead out of the folder
            width, height = image_size(path)
        except DataError as err:
            logger.warning("skipped image: %s", err)
            counts["unreadable"] += 1
            continue
        stem_id = numeric_stem(relative)
        image_id = stem_id if stem_id is not None else position
        if detections is None:
            boxes = [(np.array([0, 0, width, height], dtype=np.float32), None)]
        else:
            boxes = _boxes_for(relative, *detections)
            if not boxes:
                counts["no_detections"] += 1
        for box, score in boxes:
            clipped = xyxy_to_xywh(clip_box(xywh_to_xyxy(box), width, height))
            if clipped[2] <= 0 or clipped[3] <= 0:
                counts["box_outside"] += 1
                continue
            extra = {"image_size": (width, height)}
            if score is not None:
                extra["score"] = score
            yield Sample(image_path=str(path), box=clipped,
                         keypoints=np.zeros((DEFAULT_NUM_KEYPOINTS, 3), dtype=np.float32),
                         skeleton=DEFAULT_SKELETON, image_id=image_id, ann_id=next_ann_id, file_name=relative,
                         extra=extra)
            next_ann_id += 1
    if counts:
        logger.info("%s: skipped %d unreadable images, %d images without detections, %d boxes outside their image",
                    root, counts["unreadable"], counts["no_detections"], counts["box_outside"])
