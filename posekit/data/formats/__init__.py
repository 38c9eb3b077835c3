"""Dataset readers. Each turns an annotation format into ``list[Sample]``; :func:`load_samples` picks
one from a spec string ``FORMAT:PATH[@SPLIT]``:

* ``coco:ANN.json[@SPLIT]`` — COCO-style keypoints; ``@val2017`` looks for images in ``../val2017/``;
* ``lsp:DIR[@train|@val|@all]`` — LSP / LSPET ``joints.mat`` + ``images/``;
* ``mpii:ANN.json`` — MPII JSON list with center/scale;
* ``folder:DIR`` — plain images, whole image as the box.
"""
from __future__ import annotations

import pathlib
import re

from posekit.data.formats.coco import read_coco, read_coco_detections
from posekit.data.formats.folder import read_image_folder
from posekit.data.formats.lsp import LSPET_VAL_EVERY, read_lsp
from posekit.data.formats.mpii import read_mpii
from posekit.data.sample import DataError, Sample

FORMATS = ("coco", "lsp", "mpii", "folder")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """``'lsp:data/lspet@val'`` -> ``('lsp', 'data/lspet', 'val')``; the split is optional.

    The format is everything before the first ':', the split what follows the last '@' (only if it is
    a plain name, so '@' inside folder names is safe).
    """
    if not isinstance(spec, str):
        raise ValueError(f"data spec must be a string like 'coco:ANN.json', got {type(spec).__name__}")
    fmt, colon, rest = spec.partition(":")
    fmt = fmt.strip().lower()
    if not colon or fmt not in FORMATS:
        raise ValueError(f"data spec {spec!r}: expected FORMAT:PATH[@SPLIT] with FORMAT one of {', '.join(FORMATS)}")
    path, split = rest, None
    head, at, tail = rest.rpartition("@")
    if at and head and _SPLIT_NAME.fullmatch(tail):
        path, split = head, tail
    elif at and not tail:
        raise ValueError(f"data spec {spec!r}: empty split after '@'")
    if not path.strip():
        raise ValueError(f"data spec {spec!r}: empty path")
    return fmt, path, split


def _coco_split_root(ann_file: pathlib.Path, split: str) -> pathlib.Path:
    json_dir = ann_file.resolve().parent
    candidates = [json_dir.parent / split, json_dir / split]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataError(ann_file, f"no image folder for split {split!r}: looked in {', '.join(map(str, candidates))}")


def load_samples(spec: str, *, skip_invalid: bool = False, report: list | None = None) -> list[Sample]:
    """Read a data set given as ``FORMAT:PATH[@SPLIT]`` (see the module docstring).

    skip_invalid: False -> the first bad record raises DataError(path, what, record); True -> bad
    records are skipped, appended to ``report`` (if given) as DataErrors and summarised in a logged
    warning. Unknown formats raise ValueError listing the known ones.
    """
    fmt, path_text, split = parse_spec(spec)
    path = pathlib.Path(path_text).expanduser()
    if fmt == "coco":
        image_root = _coco_split_root(path, split) if split else None
        return read_coco(path, image_root, skip_invalid=skip_invalid, report=report)
    if fmt == "lsp":
        return read_lsp(path, split, skip_invalid=skip_invalid, report=report)
    if split is not None:
        raise ValueError(f"data spec {spec!r}: the {fmt} format has no splits; give one file or folder per split")
    if fmt == "mpii":
        return read_mpii(path, skip_invalid=skip_invalid, report=report)
    return list(read_image_folder(path))


__all__ = ["FORMATS", "LSPET_VAL_EVERY", "load_samples", "parse_spec", "read_coco", "read_coco_detections",
           "read_image_folder", "read_lsp", "read_mpii"]
