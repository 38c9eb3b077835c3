"""Dataset readers. Each format turns an annotation layout into ``list[Sample]``; :func:`load_samples` picks
one from a spec string ``FORMAT:PATH[@SPLIT]`` through the :data:`FORMATS` registry:

* ``coco:ANN.json[@SPLIT]`` — COCO-style keypoints; ``@val2017`` looks for images in ``../val2017/``;
* ``lsp:DIR[@train|@val|@all]`` — LSP / LSPET ``joints.mat`` + ``images/``;
* ``mpii:ANN.json`` — MPII JSON list with center/scale;
* ``folder:DIR`` — plain images, whole image as the box.

Code that needs to know something about the data asks the format (:func:`data_format`), never its name:
``data_format(spec).has_oks_ground_truth``, ``.has_splits``, or :func:`oks_ground_truth`.
"""
from __future__ import annotations

import pathlib
import re

from posekit.data.formats.base import FORMATS, DataFormat, register_format
from posekit.data.formats.coco import CocoFormat, read_coco, read_coco_detections
from posekit.data.formats.folder import FolderFormat, read_image_folder
from posekit.data.formats.lsp import LSPET_VAL_EVERY, LSPFormat, read_lsp
from posekit.data.formats.mpii import MPIIFormat, read_mpii
from posekit.data.sample import Sample

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
        raise ValueError(f"data spec {spec!r}: expected FORMAT:PATH[@SPLIT] with FORMAT one of "
                         f"{', '.join(FORMATS.names())}")
    path, split = rest, None
    head, at, tail = rest.rpartition("@")
    if at and head and _SPLIT_NAME.fullmatch(tail):
        path, split = head, tail
    elif at and not tail:
        raise ValueError(f"data spec {spec!r}: empty split after '@'")
    if not path.strip():
        raise ValueError(f"data spec {spec!r}: empty path")
    return fmt, path, split


def split_union(spec: str) -> list[str]:
    """``'lsp:A@train+coco:B.json'`` -> ``['lsp:A@train', 'coco:B.json']``: the specs of a union of data sets.

    A '+' starts a new spec only where ``FORMAT:`` of a known format follows it, so a '+' inside a path is
    safe; each part is checked by :func:`parse_spec`.
    """
    parts: list[str] = []
    for piece in spec.split("+") if isinstance(spec, str) else [spec]:
        fmt, colon, _ = piece.partition(":")
        if parts and not (colon and fmt.strip().lower() in FORMATS):
            parts[-1] += "+" + piece  # a '+' inside the previous spec's path
        else:
            parts.append(piece)
    for part in parts:
        parse_spec(part)
    return parts


def data_format(spec: str) -> DataFormat:
    """The registered format of a data spec (or of a bare format name such as ``'coco'``)."""
    return FORMATS.get(parse_spec(spec)[0] if ":" in spec else spec)


def oks_ground_truth(spec: str):
    """The annotation file OKS AP is scored against for ``spec`` (its path, as written), or None when the
    format has no OKS ground truth."""
    _, path, _ = parse_spec(spec)
    return data_format(spec).oks_ground_truth(path)


def load_samples(spec: str, *, skip_invalid: bool = False, report: list | None = None) -> list[Sample]:
    """Read a data set given as ``FORMAT:PATH[@SPLIT]`` (see the module docstring).

    skip_invalid: False -> the first bad record raises DataError(path, what, record); True -> bad
    records are skipped, appended to ``report`` (if given) as DataErrors and summarised in a logged
    warning. Unknown formats raise ValueError listing the known ones.
    """
    fmt, path_text, split = parse_spec(spec)
    reader = FORMATS.get(fmt)
    if split is not None and not reader.has_splits:
        raise ValueError(f"data spec {spec!r}: the {fmt} format has no splits; give one file or folder per split")
    return reader.read(pathlib.Path(path_text).expanduser(), split, skip_invalid=skip_invalid, report=report)


__all__ = ["FORMATS", "DataFormat", "register_format", "CocoFormat", "LSPFormat", "MPIIFormat", "FolderFormat",
           "LSPET_VAL_EVERY", "data_format", "oks_ground_truth", "load_samples", "parse_spec", "split_union", "read_coco",
           "read_coco_detections", "read_image_folder", "read_lsp", "read_mpii"]
