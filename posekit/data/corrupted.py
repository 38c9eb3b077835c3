"""Corrupted copies of a data set (COCO-C / MPII-C style, Wang et al., CVPR 2021): which pixels an image has
under a corruption, and those pixels written to disk in the source's own layout.

The ImageNet-C corruptions (:func:`posekit.data.corruptions.corrupt`) are applied to the **full image before
the person crop**, as the published -C data sets do. Image ``i`` (the i-th distinct image of the data, in
reader order) under corruption ``c`` at severity ``s`` is corrupted with the seed :func:`image_seed`
``(seed, i, c, s)``, so an evaluation (:mod:`posekit.engine.robustness`), a subset of it with ``limit`` and a
copy written by :func:`materialize` all see the same corrupted pixels (the copy up to JPEG re-encoding).
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
from collections.abc import Iterable, Sequence

import numpy as np

from posekit.data.corruptions import CORRUPTIONS, corrupt
from posekit.data.formats import load_samples, parse_spec
from posekit.data.io import load_json, read_image, write_atomic
from posekit.data.sample import DataError, Sample
from posekit.metrics.robustness import SEVERITIES

__all__ = ["parse_corruptions", "parse_severities", "image_seed", "condition_name", "image_indices",
           "limit_images", "coco_ground_truth", "load_benchmark_samples", "read_corrupted", "materialize"]


# -- options -------------------------------------------------------------------------------------
def parse_corruptions(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'all' / None -> the 15 corruptions; 'fog,snow' -> ('fog', 'snow') in the given order."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return CORRUPTIONS
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(f"unknown corruption(s) {unknown or names}; expected 'all' or names from: {', '.join(CORRUPTIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"corruption listed twice: {names}")
    return tuple(names)


def parse_severities(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """'1,2,3,4,5' / None -> (1, 2, 3, 4, 5); sorted, each in 1..5."""
    if text is None:
        return SEVERITIES
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    except ValueError:
        raise ValueError(f"severities must be integers 1-5 separated by commas, got {text!r}") from None
    if not values or any(not 1 <= v <= 5 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"severities must be distinct integers in 1..5, got {text!r}")
    return tuple(sorted(values))


def image_seed(seed: int, index: int, corruption: str, severity: int) -> int:
    """The corruption seed of the ``index``-th image: a hash of (seed, index, corruption, severity)."""
    entropy = [int(seed), int(index), CORRUPTIONS.index(corruption), int(severity)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def condition_name(corruption: str, severity: int) -> str:
    return f"{corruption}/{severity}"


# -- data ----------------------------------------------------------------------------------------
def image_indices(samples: Iterable[Sample]) -> dict[str, int]:
    """image path -> its index: distinct images numbered in order of first appearance."""
    index: dict[str, int] = {}
    for s in samples:
        index.setdefault(s.image_path, len(index))
    return index


def limit_images(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The samples of the first ``limit`` distinct images (all people of those images), reader order kept."""
    if limit is None:
        return samples
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    keep = {p for p, i in image_indices(samples).items() if i < limit}
    return [s for s in samples if s.image_path in keep]


def coco_ground_truth(ann_path, samples: Sequence[Sample]) -> dict:
    """The COCO json restricted to the images of ``samples`` (all their annotations, crowds included)."""
    data = load_json(ann_path)
    ids = {int(s.image_id) for s in samples}
    return {**data, "images": [e for e in data["images"] if int(e["id"]) in ids],
            "annotations": [a for a in data["annotations"] if int(a["image_id"]) in ids]}


def load_benchmark_samples(spec: str, limit: int | None = None) -> tuple[list[Sample], object]:
    """(samples of the first ``limit`` images, the COCO ground truth to score against or None)."""
    samples = limit_images(load_samples(spec), limit)
    if not samples:
        raise ValueError(f"no samples in {spec}")
    fmt, path, _ = parse_spec(spec)
    gt = None
    if fmt == "coco":
        gt = path if limit is None else coco_ground_truth(path, samples)
    return samples, gt


def read_corrupted(image_path, corruption: str, severity: int, seed: int, index: int) -> np.ndarray:
    """The ``index``-th image of a data set under one corruption: (H, W, 3) uint8 RGB, full image, seeded by
    :func:`image_seed` ``(seed, index, corruption, severity)``."""
    return corrupt(read_image(image_path), corruption, severity, image_seed(seed, index, corruption, severity))


# -- materialising a -C dataset ------------------------------------------------------------------
def _write_image(path: pathlib.Path, image: np.ndarray) -> None:
    """RGB uint8 -> file, format from the extension; written atomically.

    JPEG at quality 95 without chroma subsampling (4:4:4): 4:2:0 would average away most of the colour
    noise corruptions (a mean error of ~19 grey levels on gaussian_noise instead of ~3).
    """
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    params = ([cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
              if ext in (".jpg", ".jpeg") else [])
    ok, data = cv2.imencode(ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") else ".png",
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    write_atomic(path, data.tobytes())


def _relative_name(sample: Sample, fmt: str) -> str:
    name = sample.file_name or os.path.basename(sample.image_path)
    if fmt == "folder":
        return name
    parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
    if not parts or any(p in ("..", "") for p in parts) or pathlib.PurePath(name).is_absolute():
        raise DataError(sample.image_path, f"cannot place image name {name!r} inside the output folder")
    return str(pathlib.PurePosixPath(*parts))


def materialize(spec: str, out_dir, *, corruptions: Sequence[str] = CORRUPTIONS,
                severities: Sequence[int] = SEVERITIES, limit: int | None = None, seed: int = 0,
                progress: bool = False) -> dict:
    """Write the corrupted data set to disk, one folder per condition, in the source's own layout.

    * ``lsp:DIR`` -> ``OUT/<corruption>/<severity>/images/im*.jpg`` + a copy of ``joints.mat``;
    * ``coco:ANN.json`` -> ``OUT/<corruption>/<severity>/images/<file_name>`` + ``ANN.json`` restricted to
      the written images;
    * ``folder:DIR`` -> ``OUT/<corruption>/<severity>/<name>``.

    Pixels are those :func:`posekit.engine.robustness.run_robustness` evaluates (same seeds), re-encoded in the
    source's format (JPEG quality 95, 4:4:4). Existing files are kept, so an interrupted run continues. Writes
    ``OUT/index.json`` mapping each condition to its data spec. Returns that index.
    """
    corruptions, severities = parse_corruptions(list(corruptions)), parse_severities(list(severities))
    fmt, path_text, split = parse_spec(spec)
    if fmt not in ("lsp", "coco", "folder"):
        raise ValueError(f"--materialize supports lsp, coco and folder data, not {fmt}")
    samples = limit_images(load_samples(spec), limit)
    if not samples:
        raise ValueError(f"no samples in {spec}")
    indices = image_indices(samples)
    first = {}
    for s in samples:
        first.setdefault(s.image_path, s)
    out = pathlib.Path(out_dir)
    src = pathlib.Path(path_text)
    coco_json = coco_ground_truth(src, samples) if fmt == "coco" else None
    index = {"source": spec, "seed": int(seed), "limit": limit, "corruptions": list(corruptions),
             "severities": list(severities), "conditions": {}}
    jobs = [(c, s) for c in corruptions for s in severities]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs) * len(indices), desc="materialize", unit="img", file=sys.stderr, dynamic_ncols=True)
    for corruption, severity in jobs:
        cond_dir = out / corruption / str(severity)
        image_root = cond_dir if fmt == "folder" else cond_dir / "images"
        for image_path, i in indices.items():
            target = image_root / _relative_name(first[image_path], fmt)
            if not target.exists():
                _write_image(target, read_corrupted(image_path, corruption, severity, seed, i))
            if bar is not None:
                bar.update()
        if fmt == "lsp":
            shutil.copyfile(src / "joints.mat", cond_dir / "joints.mat")
            cond_spec = f"lsp:{cond_dir}"
        elif fmt == "coco":
            write_atomic(cond_dir / src.name, json.dumps(coco_json))
            cond_spec = f"coco:{cond_dir / src.name}"
        else:
            cond_spec = f"folder:{cond_dir}"
        index["conditions"][condition_name(corruption, severity)] = cond_spec
        if len(index["conditions"]) == 1 and fmt != "folder":
            # the copy must read back as the same people (e.g. an LSP subset whose joints columns follow
            # the image numbers); checked once, on the first condition
            found = len(load_samples(cond_spec))
            if found != len(samples):
                raise ValueError(f"{cond_spec} reads back as {found} people instead of {len(samples)}")
    if bar is not None:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "index.json", json.dumps(index, indent=2) + "\n")
    return index
