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

from posekit.data.formats._common import (
    clip_box, is_image_file, list_some, numeric_stem, xywh_to_xyxy, xyxy_to_xywh,
)
from posekit.data.formats.base import DataFormat, register_format
from posekit.data.formats.coco_detections import _detection_entries
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


class _Detections:
    """A boxes file indexed by file name and by image id (highest score first), remembering which were used."""

    def __init__(self, boxes_file, root: pathlib.Path, score_threshold: float):
        self.source = pathlib.Path(boxes_file)
        self.by_name: dict[str, list] = {}
        self.by_id: dict[int, list] = {}
        # file names come back checked: relative posix paths that stay inside root
        for image_id, file_name, box, score in _detection_entries(boxes_file, require_image_id=False,
                                                                  image_root=root):
            if score < score_threshold:
                continue
            if file_name is not None:
                self.by_name.setdefault(file_name, []).append((box, score))
            else:
                self.by_id.setdefault(image_id, []).append((box, score))
        for table in (self.by_name, self.by_id):
            for boxes in table.values():
                boxes.sort(key=lambda item: -item[1])
        self.used_names: set[str] = set()
        self.used_ids: set[int] = set()

    def boxes_for(self, relative: str) -> list:
        """Detections of one image: by its file name (relative path, then base name), else by numeric stem."""
        found = []
        name = next((n for n in (relative, relative.rsplit("/", 1)[-1]) if n in self.by_name), None)
        if name is not None:
            found = self.by_name[name]
            self.used_names.add(name)
        stem_id = numeric_stem(relative)
        if stem_id is not None and stem_id in self.by_id:
            found = found + self.by_id[stem_id]
            self.used_ids.add(stem_id)
        return found

    def warn_unused(self) -> None:
        """Log the detections whose image is not in the folder: a box must not vanish silently."""
        names = sorted(set(self.by_name) - self.used_names)
        ids = sorted(set(self.by_id) - self.used_ids)
        for kind, missing in (("file names", names), ("image ids", ids)):
            if missing:
                logger.warning("%s: detections for %d %s match no readable image in the folder: %s", self.source,
                               len(missing), kind, list_some(missing, ", "))


def read_image_folder(root, *, boxes_file=None, score_threshold=0.0, recursive=False) -> Iterator[Sample]:
    """Stream one Sample per image (whole image as the box) or per detected person.

    root: folder of images (:data:`~posekit.data.io.IMAGE_EXTENSIONS`); ``recursive`` walks sub-folders.
    boxes_file: COCO detection results; a detection belongs to an image by its ``file_name`` when it has
        one, else by ``image_id`` == the image's numeric stem (``000000000785.jpg`` -> 785). Detections
        with ``score < score_threshold`` are dropped; images without detections yield nothing. A file name
        that is absolute or leads outside ``root`` is a DataError; detections whose image is not in the
        folder are logged (by file name / image id) once the stream is exhausted.
    Sample: keypoints (17, 3) zeros (v = 0), skeleton :data:`DEFAULT_SKELETON`, ``image_id`` = numeric
    stem or else the image's position in the stream, ``file_name`` relative to root,
    ``extra['image_size']`` (and ``extra['score']`` with boxes). Unreadable images are skipped with
    a logged warning. The root and the boxes file are checked now; images are read while iterating.
    """
    root_path = pathlib.Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise DataError(root_path, "image folder not found")
    detections = _Detections(boxes_file, root_path, score_threshold) if boxes_file is not None else None
    return _stream(root_path, detections, recursive)


def _stream(root: pathlib.Path, detections: _Detections | None, recursive: bool) -> Iterator[Sample]:
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
            boxes = detections.boxes_for(relative)
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
    if detections is not None:
        detections.warn_unused()
    if counts:
        logger.info("%s: skipped %d unreadable images, %d images without detections, %d boxes outside their image",
                    root, counts["unreadable"], counts["no_detections"], counts["box_outside"])


@register_format
class FolderFormat(DataFormat):
    """``folder:DIR``: plain images, the whole image as the person box (no labels, no splits)."""

    name = "folder"

    def read(self, path, split=None, *, skip_invalid=False, report=None) -> list[Sample]:
        return list(read_image_folder(path))
