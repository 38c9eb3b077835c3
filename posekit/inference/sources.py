"""What a user hands ``posekit predict``: one image, a folder, a glob or a video; and people found in images.

:func:`image_paths` resolves the first three to image files (or says which it was and why it fits none);
:func:`detected_samples` turns images into one :class:`~posekit.data.sample.Sample` per detected person.
"""
from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from posekit.data.io import IMAGE_EXTENSIONS, image_size, read_image
from posekit.data.sample import DataError, Sample

__all__ = ["VIDEO_EXTENSIONS", "source_kind", "image_paths", "detected_samples", "default_detector", "LastImage",
           "unreadable_source"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def default_detector() -> Path | None:
    """The zoo's MultiPose detector next to the package (a source checkout), if it is there."""
    path = Path(__file__).resolve().parents[2] / "zoo" / "movenet_multipose.pt"
    return path if path.is_file() else None


def source_kind(source: str) -> str:
    """'video' | 'image' | 'folder' | 'glob'; a ValueError naming the source and why otherwise."""
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if any(ch in source for ch in "*?["):
        return "glob"
    if path.is_dir():
        return "folder"
    if path.is_file():
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        raise ValueError(f"{source}: a file, but neither an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                         f"nor a video ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    raise ValueError(f"{source}: no such image, folder or video (and not a glob pattern)")


def image_paths(source: str) -> list[Path]:
    """The image files of an image / folder / glob source, sorted; a ValueError when there are none."""
    kind = source_kind(source)
    if kind == "image":
        return [Path(source)]
    if kind == "folder":
        paths = [p for p in sorted(Path(source).expanduser().iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    elif kind == "glob":
        paths = [Path(p) for p in sorted(glob.glob(str(Path(source).expanduser()), recursive=True))
                 if Path(p).suffix.lower() in IMAGE_EXTENSIONS]
    else:
        raise ValueError(f"{source}: a video, not images")
    if not paths:
        raise ValueError(f"{source}: {kind} without any image ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return paths


def unreadable_source(source: str) -> str | None:
    """Why an image / folder / glob source gives nothing to predict from, or None when one of its images reads.

    The answer names each file and what is wrong with it (a broken symbolic link, a file that is no image),
    e.g. ``"photos: nothing to predict: none of its 2 images can be read (a.jpg: broken symbolic link to
    /gone/a.jpg; b.jpg: unreadable image: ...)"``. A source without any image file is :func:`image_paths`'
    ValueError. Only headers are read.
    """
    from posekit.data.formats._common import list_some
    paths = image_paths(source)
    reasons = []
    for path in paths:
        if path.is_symlink() and not path.exists():
            reasons.append(f"{path.name}: broken symbolic link to {os.readlink(path)}")
            continue
        try:
            image_size(path)
            return None
        except (DataError, OSError) as err:
            reasons.append(f"{path.name}: {getattr(err, 'what', err)}")
    count = f"its {len(paths)} images" if len(paths) > 1 else "its image"
    return f"{source}: nothing to predict: none of {count} can be read ({list_some(reasons)})"


class LastImage:
    """The image :func:`detected_samples` decoded last, handed to the predictor's ``read=`` so that a photo
    is decoded once for detection and pose."""

    def __init__(self):
        self.path, self.image = None, None

    def read(self, sample: Sample) -> np.ndarray:
        return self.image if sample.image_path == self.path else read_image(sample.image_path)


def detected_samples(paths: Iterable[Path], detector, num_keypoints: int, skeleton: str,
                     counts: dict | None = None, last: LastImage | None = None) -> Iterator[Sample]:
    """One Sample per person the detector finds (box, ``extra["score"]`` = its person score); images are
    read one at a time (and kept in ``last``, if given). ``counts`` (if given) collects ``images``,
    ``people``, ``empty`` (no person found) and ``unreadable``; each empty or unreadable image is also
    logged by name."""
    counts = counts if counts is not None else {}
    for key in ("images", "people", "empty", "unreadable"):
        counts.setdefault(key, 0)
    ann_id = 0
    for image_id, path in enumerate(paths):
        counts["images"] += 1
        try:
            image = read_image(path)
        except (DataError, OSError, ValueError) as err:
            counts["unreadable"] += 1
            log.warning("skipped image: %s", err)
            continue
        if last is not None:
            last.path, last.image = str(Path(path).resolve()), image
        boxes, scores = detector.detect(image)
        if not len(boxes):
            counts["empty"] += 1
            log.info("no person found in %s", path)
        for box, score in zip(boxes, scores):
            counts["people"] += 1
            yield Sample(image_path=str(Path(path).resolve()), box=box.astype(np.float32),
                         keypoints=np.zeros((num_keypoints, 3), np.float32), skeleton=skeleton,
                         image_id=image_id, ann_id=ann_id, file_name=path.name,
                         extra={"score": float(score), "image_size": [image.shape[1], image.shape[0]]})
            ann_id += 1
