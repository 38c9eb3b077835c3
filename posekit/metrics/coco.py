"""OKS AP / AR through pycocotools' ``COCOeval`` ("keypoints" mode), nothing re-implemented.

This module only converts predictions to COCO's results format, builds a COCO ground truth from
``Sample`` records when there is no annotation file, and sets ``params.kpt_oks_sigmas``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["COCO_KEYPOINT_STATS", "coco_oks_ap", "samples_to_coco"]

log = logging.getLogger(__name__)

#: COCOeval.stats for iouType="keypoints", in order.
COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _quiet(fn, *args, **kwargs):
    """pycocotools prints progress to stdout; keep library calls silent."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _load_coco(gt):
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        return gt, "ground truth"
    if isinstance(gt, (str, os.PathLike)):
        from posekit.data.io import load_json
        dataset = load_json(gt)  # a missing or broken file: a DataError naming it
        source = str(gt)
    elif isinstance(gt, Mapping):
        dataset = copy.deepcopy(dict(gt))  # COCOeval writes 'ignore' flags into the annotations
        source = "ground-truth dict"
    else:
        raise TypeError(f"gt must be a COCO json path, a COCO-format dict or a pycocotools COCO, got {type(gt)}")
    if not isinstance(dataset, dict):
        raise ValueError(f"{source}: COCO ground truth must be an object, got {type(dataset).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"{source}: COCO ground truth has no {key!r}")
    _check_ground_truth(dataset, source)
    coco = COCO()
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco, source


def _check_ground_truth(dataset: dict, source: str) -> None:
    """Every annotation has what COCOeval reads, as numbers (the readers' own rule,
    :func:`posekit.data.formats.coco_fields.check_annotation_fields`): DataError naming the record otherwise."""
    from posekit.data.formats._common import as_int
    from posekit.data.formats.coco_fields import check_annotation_fields, check_image_size_fields
    from posekit.data.sample import DataError

    for key in ("images", "annotations"):
        if not isinstance(dataset[key], list):
            raise DataError(source, f"COCO ground truth {key!r} must be a list, got {type(dataset[key]).__name__}")
    sizes = {}
    for index, image in enumerate(dataset["images"]):
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(source, "image entry must be an object with an 'id'", f"image #{index}")
        image_id = as_int(image["id"], source, f"image #{index}", "image id")
        sizes[image_id] = check_image_size_fields(image, source, f"image {image_id}")
    for index, ann in enumerate(dataset["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(source, f"annotation must be an object, got {type(ann).__name__}", f"annotation #{index}")
        record = f"annotation {ann.get('id', '#' + str(index))}"
        missing = [key for key in ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox")
                   if key not in ann]
        if missing:
            raise DataError(source, f"lacks {missing} (needed by COCOeval)", record)
        check_annotation_fields(ann, source, record, sizes.get(ann["image_id"]))
        if ann["id"] == 0:
            # COCOeval stores matched gt ids in a zero-initialised array: id 0 would read as "unmatched".
            raise DataError(source, "annotation id 0 is not allowed (COCOeval treats it as no match)", record)


def _scored_people(annotations) -> int:
    """How many ground-truth people OKS AP can score: COCOeval ignores crowd and ``num_keypoints == 0``."""
    return sum(1 for a in annotations if a["num_keypoints"] > 0 and not a.get("iscrowd", 0))


def _to_coco_results(predictions: Sequence[dict], default_category: int, num_keypoints: int) -> list[dict]:
    """Prediction contract -> COCO keypoint results (flat keypoints, category_id, score)."""
    results = []
    for i, p in enumerate(predictions):
        for key in ("image_id", "keypoints", "score"):
            if key not in p:
                raise ValueError(f"prediction #{i} has no {key!r}")
        kp = np.asarray(p["keypoints"], dtype=np.float64)
        if kp.ndim == 1 and kp.size % 3 == 0:  # already flat COCO style
            kp = kp.reshape(-1, 3)
        if kp.ndim != 2 or kp.shape[1] not in (2, 3):
            raise ValueError(f"prediction #{i}: keypoints must be [[x, y, s], ...], got shape {kp.shape}")
        if kp.shape[0] != num_keypoints:
            raise ValueError(f"prediction #{i}: {kp.shape[0]} keypoints, ground truth has {num_keypoints}")
        if not np.isfinite(kp[:, :2]).all():
            raise ValueError(f"prediction #{i} (image {p['image_id']}): non-finite keypoint coordinates")
        if kp.shape[1] == 2:
            kp = np.concatenate([kp, np.ones((len(kp), 1))], axis=1)
        results.append({"image_id": int(p["image_id"]),
                        "category_id": int(p.get("category_id", default_category)),
                        "keypoints": [float(v) for v in kp.reshape(-1)],
                        "score": float(p["score"])})
    return results


def coco_oks_ap(gt, predictions: Sequence[dict], sigmas=None) -> dict:
    """OKS AP / AR with pycocotools' COCOeval (iouType "keypoints"), nothing re-implemented.

    gt: a COCO keypoints json path, a COCO-format dict (e.g. from :func:`samples_to_coco`) or a pycocotools COCO.
    predictions: the prediction contract, ``{"image_id", "keypoints": [[x, y, s], ...] (K rows), "score",
        "category_id" (optional; default: the ground truth's only category, else 1)}``; other keys are ignored.
    sigmas: (K,) per-keypoint OKS sigmas (``skeleton.sigmas``); None = pycocotools' COCO-17 defaults (K must be 17).
    Returns ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` as floats; COCOeval's
    -1 ("no such objects", e.g. APm with no medium people) becomes NaN. With no predictions at all every
    value is 0.0. When the ground truth has no person COCOeval can score (every ``num_keypoints`` 0, or all
    crowd), AP is unavailable: every value is None and a warning says why.
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt, source = _load_coco(gt)
    annotations = coco_gt.dataset["annotations"]
    gt_k = {len(a["keypoints"]) // 3 for a in annotations}
    if len(gt_k) > 1:
        raise ValueError(f"ground truth mixes keypoint counts {sorted(gt_k)}")
    num_keypoints = gt_k.pop() if gt_k else (len(sigmas) if sigmas is not None else 17)
    if sigmas is None:
        if num_keypoints != 17:
            raise ValueError(f"sigmas are required for {num_keypoints} keypoints (the defaults are COCO's 17)")
    else:
        sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if sigmas.size != num_keypoints:
            raise ValueError(f"{sigmas.size} sigmas for {num_keypoints} keypoints")

    categories = coco_gt.getCatIds()
    results = _to_coco_results(predictions, categories[0] if len(categories) == 1 else 1, num_keypoints)
    unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
    if unknown:
        raise ValueError(f"predictions refer to image ids not in the ground truth: {sorted(unknown)[:10]}")
    if not _scored_people(annotations):
        log.warning("%s: OKS AP unavailable: no ground-truth person has num_keypoints > 0 without iscrowd "
                    "(COCOeval ignores the rest); reported as null", source)
        return {name: None for name in COCO_KEYPOINT_STATS}
    if not results:
        return {name: 0.0 for name in COCO_KEYPOINT_STATS}

    coco_dt = _quiet(coco_gt.loadRes, results)
    evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    if sigmas is not None:
        evaluator.params.kpt_oks_sigmas = sigmas
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    _quiet(evaluator.summarize)
    return {name: (math.nan if value == -1 else float(value)) for name, value in zip(COCO_KEYPOINT_STATS, evaluator.stats)}


def samples_to_coco(samples, sigmas=None) -> dict:
    """A COCO keypoints ground-truth dict for :func:`coco_oks_ap` from ``Sample`` records.

    samples: sequence of :class:`~posekit.data.sample.Sample` (one person each, same K).
    sigmas: optional (K,), only checked against K (pass them to coco_oks_ap).
    Images are keyed by ``sample.image_id`` (samples sharing an image_id are people in the same image).
    area = ``sample.extra["area"]`` if present, else box w * h. Annotation ids are the samples' ``ann_id``
    when those are unique and non-zero, else 1..N in order. num_keypoints = labelled (v > 0) joints.
    Only the people in ``samples`` exist in this ground truth: crowd regions and unlabelled people that a reader
    dropped cannot absorb predictions as they do in the original json, so for official numbers score against
    the original annotation file.
    """
    from posekit.skeletons import SKELETONS

    samples = list(samples)
    if not samples:
        raise ValueError("no samples")
    k = {np.asarray(s.keypoints).shape[0] for s in samples}
    if len(k) != 1:
        raise ValueError(f"samples mix keypoint counts {sorted(k)}")
    num_keypoints = k.pop()
    if sigmas is not None and len(sigmas) != num_keypoints:
        raise ValueError(f"{len(sigmas)} sigmas for {num_keypoints} keypoints")
    ann_ids = [int(s.ann_id) for s in samples]
    if len(set(ann_ids)) != len(ann_ids) or 0 in ann_ids:
        ann_ids = list(range(1, len(samples) + 1))

    images: dict[int, dict] = {}
    annotations = []
    for sample, ann_id in zip(samples, ann_ids):
        image_id = int(sample.image_id)
        if image_id not in images:
            entry = {"id": image_id, "file_name": sample.file_name or os.path.basename(sample.image_path)}
            size = sample.extra.get("image_size")
            if size is not None:
                entry["width"], entry["height"] = int(size[0]), int(size[1])
            images[image_id] = entry
        kp = np.asarray(sample.keypoints, dtype=np.float64)
        box = [float(v) for v in np.asarray(sample.box, dtype=np.float64)]
        area = sample.extra.get("area")
        annotations.append({
            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": box,
            "area": float(area) if area is not None else box[2] * box[3],
            "keypoints": [float(v) for v in kp.reshape(-1)], "num_keypoints": int((kp[:, 2] > 0).sum())})
    skeleton = SKELETONS.get(samples[0].skeleton)
    names = list(skeleton.keypoints) if skeleton is not None and skeleton.num_keypoints == num_keypoints \
        else samples[0].extra.get("keypoint_names") or [f"kp{i}" for i in range(num_keypoints)]
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(names)}
    if skeleton is not None and skeleton.num_keypoints == num_keypoints:
        category["skeleton"] = [[a + 1, b + 1] for a, b in skeleton.limbs]  # COCO's 1-based limb list
    return {"images": list(images.values()), "annotations": annotations, "categories": [category]}
