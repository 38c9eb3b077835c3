"""Leeds Sports Pose (LSP) and LSP Extended (LSPET): ``ROOT/images/im*.jpg`` + ``ROOT/joints.mat``.

Layouts of the ``joints`` variable (the layout tells which visibility convention the file uses):

* ``(14, 3, N)`` — LSPET: rows x, y, flag with **1 = visible**, 0 = not visible;
* ``(3, 14, N)`` — original LSP: the flag is **inverted, 0 = visible**, 1 = occluded (tools that
  merge LSP with LSPET/MPII flip it with ``1 - flag``);
* ``(N, 14, 3)`` — an LSPET-style array stored person-first; 1 = visible like LSPET. (A ``(3, 14, 3)``
  array is read as the LSP layout.)

Visibility mapping: visible -> v = 2; not visible -> v = 0 with x = y = 0. posekit trains and evaluates
on joints with v > 0, and LSP's PCK is computed on visible joints only, so occluded joints (whose LSPET
positions are Mechanical-Turk guesses, often outside the image) are treated as unlabelled. Their
coordinates are kept as written in ``extra['raw_joints']`` (14, 2) with ``extra['lsp_visible']`` (14,).
Coordinates are kept as written in the file (MATLAB annotations; no 1-pixel shift is applied). A joint
flagged visible but far outside its image (:mod:`~posekit.data.formats.plausible`) is marked invisible,
``lsp_visible`` False, and counted in a warning.

LSPET has no official split; :data:`LSPET_VAL_EVERY` defines a fixed one.
"""
from __future__ import annotations

import logging
import os
import pathlib
import re

import numpy as np

from posekit.data.formats._common import (
    Problems, check_float32_range, clip_box, list_some, resolve_file, xyxy_to_xywh,
)
from posekit.data.formats.plausible import far_from_image
from posekit.data.formats.base import DataFormat, register_format
from posekit.data.io import image_size
from posekit.data.sample import DataError, Sample

logger = logging.getLogger(__name__)

#: Fixed train/val split: image number % LSPET_VAL_EVERY == 0 -> val (800 of LSPET's first 8000), else train.
LSPET_VAL_EVERY = 10
NUM_LSP_JOINTS = 14
SPLITS = (None, "all", "train", "val")

_IMAGE_NAME = re.compile(r"^im(?P<number>\d+)\.jpe?g$", re.IGNORECASE)


def load_lsp_joints(mat_path) -> tuple[np.ndarray, np.ndarray, str]:
    """Read ``joints`` from an LSP/LSPET ``joints.mat``.

    Returns ``coords (N, 14, 2)`` float64 as written, ``visible (N, 14)`` bool (already converted
    from the file's convention), and the layout name ``'lspet'``, ``'lsp'`` or ``'person_first'``.
    """
    import scipy.io  # deferred: only LSP needs scipy.io

    mat_path = pathlib.Path(mat_path)
    try:
        contents = scipy.io.loadmat(str(mat_path))
    except FileNotFoundError:
        raise DataError(mat_path, "joints.mat not found") from None
    except Exception as err:  # scipy raises ValueError, MatReadError, TypeError, ... for bad files
        raise DataError(mat_path, f"cannot read MATLAB file: {type(err).__name__}: {err}") from None
    if "joints" not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise DataError(mat_path, f"no variable 'joints' (found {found})")
    joints = np.asarray(contents["joints"])
    if joints.dtype.kind not in "biuf" or joints.ndim != 3:
        raise DataError(mat_path, f"'joints' must be a 3-d numeric array, got {joints.dtype} of shape {joints.shape}")
    joints = joints.astype(np.float64)
    k = NUM_LSP_JOINTS
    if joints.shape[:2] == (k, 3):
        layout, per_person, flag_visible = "lspet", joints.transpose(2, 0, 1), 1.0
    elif joints.shape[:2] == (3, k):
        layout, per_person, flag_visible = "lsp", joints.transpose(2, 1, 0), 0.0
    elif joints.shape[1:] == (k, 3):
        layout, per_person, flag_visible = "person_first", joints, 1.0
    else:
        raise DataError(mat_path, f"'joints' has shape {joints.shape}; expected (14, 3, N) (LSPET), "
                                  f"(3, 14, N) (LSP) or (N, 14, 3)")
    flags = per_person[:, :, 2]
    bad = ~np.isin(flags, (0.0, 1.0))
    if bad.any():
        person = int(np.argwhere(bad)[0][0])
        raise DataError(mat_path, f"visibility flags must be 0 or 1, got {float(flags[bad][0])}", f"column {person}")
    return per_person[:, :, :2].copy(), flags == flag_visible, layout


def _list_images(images_dir: pathlib.Path) -> dict[int, str]:
    """image number -> file name for every ``im<digits>.jpg`` in the folder."""
    if not images_dir.is_dir():
        raise DataError(images_dir, "LSP image folder not found")
    numbered: dict[int, str] = {}
    with os.scandir(images_dir) as entries:
        for entry in entries:
            match = _IMAGE_NAME.match(entry.name)
            if not match:
                continue
            number = int(match.group("number"))
            if number in numbered:
                raise DataError(images_dir, f"two images with number {number}: {numbered[number]}, {entry.name}")
            numbered[number] = entry.name
    if not numbered:
        raise DataError(images_dir, "no images named im<number>.jpg")
    return numbered


def _columns_for(numbers: list[int], num_columns: int, mat_path) -> dict[int, int]:
    """image number -> joints column: ``number - 1`` if every number fits, else sorted order."""
    if min(numbers) >= 1 and max(numbers) <= num_columns:
        return {n: n - 1 for n in numbers}
    if len(numbers) == num_columns:
        return {n: i for i, n in enumerate(sorted(numbers))}
    raise DataError(mat_path, f"{len(numbers)} images numbered {min(numbers)}..{max(numbers)} cannot be matched "
                              f"to {num_columns} annotation columns")


def in_split(number: int, split: str | None) -> bool:
    """Whether image number ``number`` belongs to ``split`` (None/'all', 'train', 'val')."""
    if split in (None, "all"):
        return True
    is_val = number % LSPET_VAL_EVERY == 0
    return is_val if split == "val" else not is_val


def _person_box(coords: np.ndarray, visible: np.ndarray, padding: float) -> np.ndarray:
    """(4,) x0, y0, x1, y1: tight box of the visible joints (of all finite joints if < 2 visible),
    scaled about its centre by ``1 + padding``."""
    points = coords[visible] if visible.sum() >= 2 else coords[np.all(np.isfinite(coords), axis=1)]
    if len(points) == 0:
        return np.zeros(4)
    low, high = points.min(axis=0), points.max(axis=0)
    centre, half = (low + high) / 2, (high - low) / 2 * (1.0 + padding)
    return np.concatenate([centre - half, centre + half])


def read_lsp(root, split=None, *, skip_invalid=False, report=None, box_padding=0.0) -> list[Sample]:
    """One Sample per LSP/LSPET image, sorted by image number.

    root: folder with ``joints.mat`` and ``images/``. split: None/'all', 'train' or 'val'
    (:data:`LSPET_VAL_EVERY`). box_padding: the tight joint box is enlarged about its centre by this
    fraction (0 = tight), then clipped to the image (size read from the image header).
    Images with no visible joint are skipped (counted in the log), like COCO's num_keypoints == 0.
    ``image_id`` = ``ann_id`` = the image number; skeleton 'lsp'.
    """
    if split not in SPLITS:
        raise ValueError(f"LSP split must be one of None, 'all', 'train', 'val'; got {split!r}")
    if not box_padding >= 0:
        raise ValueError(f"box_padding must be >= 0, got {box_padding}")
    root = pathlib.Path(root).resolve()
    mat_path = root / "joints.mat"
    coords_all, visible_all, layout = load_lsp_joints(mat_path)
    images_dir = root / "images"
    numbered = _list_images(images_dir)
    columns = _columns_for(list(numbered), len(coords_all), mat_path)
    problems = Problems(mat_path, skip_invalid, report)

    samples, hidden, images = [], [], 0
    for number in sorted(numbered):
        if not in_split(number, split):
            continue
        images += 1
        name = numbered[number]
        try:
            sample = _read_one(number, name, columns[number], coords_all, visible_all, images_dir, mat_path,
                               box_padding, hidden)
        except DataError as err:
            problems.bad(err)
            continue
        if sample is None:
            problems.skip(NO_VISIBLE)
        else:
            samples.append(sample)
    problems.warn_summary()
    _warn_hidden(mat_path, hidden)
    logger.info("%s: %d samples (layout %s, split %s); skipped %d without visible joints, %d invalid",
                root, len(samples), layout, split or "all", problems.count(NO_VISIBLE), len(problems.errors))
    return problems.result(samples, images, "images")


NO_VISIBLE = "without visible joints"


def _warn_hidden(mat_path, hidden: list[str]) -> None:
    """LSPET's joints are Mechanical-Turk clicks, and its README says joints outside the image occur: a joint
    flagged visible far outside its image is taken for a slip and marked invisible, counted here, rather than
    refusing the whole file (COCO and MPII refuse such records)."""
    if hidden:
        logger.warning("%s: marked %d visible joint(s) invisible: they lie far outside their image: %s", mat_path,
                       len(hidden), list_some(hidden))


def _read_one(number, name, column, coords_all, visible_all, images_dir, mat_path, box_padding,
              hidden: list[str]) -> Sample | None:
    record = f"{name} (column {column})"
    coords, visible = coords_all[column], visible_all[column]
    if not np.all(np.isfinite(coords[visible])):
        raise DataError(mat_path, "visible joint with NaN or infinite coordinates", record)
    check_float32_range(coords[visible], mat_path, record, "visible joint coordinates")
    if not visible.any():
        return None
    image_path = resolve_file(images_dir, name, mat_path, record)
    try:
        width, height = image_size(image_path)
    except DataError as err:
        raise DataError(mat_path, f"{err.path}: {err.what}", record) from None
    far = far_from_image(coords, (width, height)) & visible
    if far.any():
        hidden.extend(f"{name} joint {joint}" for joint in np.flatnonzero(far))
        visible = visible & ~far
        if not visible.any():
            return None
    keypoints = np.zeros((NUM_LSP_JOINTS, 3), dtype=np.float32)
    keypoints[visible, :2] = coords[visible]
    keypoints[visible, 2] = 2.0
    box = xyxy_to_xywh(clip_box(_person_box(coords, visible, box_padding), width, height))
    if box[2] <= 0 or box[3] <= 0:
        raise DataError(mat_path, f"joints give an empty person box {box.tolist()} in the {width}x{height} image",
                        record)
    return Sample(image_path=str(image_path), box=box, keypoints=keypoints, skeleton="lsp", image_id=number,
                  ann_id=number, file_name=name,
                  extra={"raw_joints": coords.astype(np.float32), "lsp_visible": visible.copy(),
                         "image_size": (width, height)})


@register_format
class LSPFormat(DataFormat):
    """``lsp:DIR[@train|@val|@all]``: LSP / LSPET ``joints.mat`` + ``images/``."""

    name = "lsp"
    has_splits = True

    def read(self, path, split=None, *, skip_invalid=False, report=None) -> list[Sample]:
        return read_lsp(path, split, skip_invalid=skip_invalid, report=report)
