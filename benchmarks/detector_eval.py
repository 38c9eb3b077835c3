"""Helpers of ``benchmarks/detector.py``: COCO-MINI's people, greedy box matching (COCO's rule for crowd regions),
the recall ceiling of a detector's candidates, and the diagnosis of the missed people (is a miss a box-shape
problem, a score problem or a person never found?) with a per-side box calibration fitted on train.

Not a script: imported as ``from detector_eval import ...`` (Python puts the script's folder on ``sys.path``).
Boxes are ``x, y, w, h`` image px unless a name says ``xyxy``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from posekit.inference.tracking import box_iou as iou  # x, y, w, h boxes

#: a detection matches a person at this IoU (the issue's measure)
MATCH_IOU = 0.5
#: the diagnosis' "close" band: a box overlapping a missed person by IoU in [CLOSE_IOU, MATCH_IOU) has the
#: right person but the wrong shape
CLOSE_IOU = 0.3


def inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, 4), (G, 4) x, y, w, h -> (M, G) the share of each box of ``a`` lying inside each of ``b`` (COCO's
    "IoU" against a crowd region: intersection over the detection's own area)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    return _intersection(a, b) / (a[:, 2:].prod(1)[:, None] + 1e-9)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
                - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
                - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return w * h


def match(boxes, scores, people, ignored, crowd) -> tuple[int, int]:
    """(true positives, false positives) of one photo's detections, greedy in decreasing score: a detection takes
    the free counted person (P, 4) it overlaps most if IoU >= 0.5; otherwise it is ignored (neither true nor
    false) when it overlaps a person with too few keypoints (I, 4) by IoU >= 0.5 or lies at least half inside a
    crowd region (R, 4) (pycocotools' rule for ``iscrowd``: a region covers many people, so IoU with it means
    nothing), and false if not."""
    taken = np.zeros(len(people), bool)
    tp = fp = 0
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        overlaps = iou(boxes[i:i + 1], people)[0] if len(people) else np.zeros(0)
        overlaps[taken] = 0
        if len(overlaps) and overlaps.max() >= MATCH_IOU:
            taken[overlaps.argmax()] = True
            tp += 1
        elif not ((len(ignored) and iou(boxes[i:i + 1], ignored)[0].max() >= MATCH_IOU)
                  or (len(crowd) and inside_share(boxes[i:i + 1], crowd)[0].max() >= MATCH_IOU)):
            fp += 1
    return tp, fp


def matched_people(boxes, scores, people) -> np.ndarray:
    """(P,) bool: the counted people that the greedy matching of :func:`match` gives a detection."""
    taken = np.zeros(len(people), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        overlaps = iou(boxes[i:i + 1], people)[0] if len(people) else np.zeros(0)
        overlaps[taken] = 0
        if len(overlaps) and overlaps.max() >= MATCH_IOU:
            taken[overlaps.argmax()] = True
    return taken


def read_split(root: Path, split: str) -> tuple[dict, list]:
    """COCO-MINI ``split`` -> (the annotation json, one row a photo: path, image id, counted people (P, 4) with
    >= 5 labelled keypoints, other people (I, 4), crowd regions (R, 4))."""
    data = json.loads((root / "annotations" / f"person_keypoints_{split}.json").read_text())
    people = {im["id"]: ([], [], []) for im in data["images"]}
    for a in data["annotations"]:
        kind = 2 if a.get("iscrowd") else 0 if a["num_keypoints"] >= 5 else 1
        people[a["image_id"]][kind].append(a["bbox"])
    return data, [(root / split / im["file_name"], im["id"], *(np.array(b, np.float32).reshape(-1, 4)
                                                                for b in people[im["id"]])) for im in data["images"]]


def xywh(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 -> (N, 4) x, y, w, h."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def recall_ceiling(found: list[dict]) -> float:
    """The share of the counted people that some candidate of some pass (any score, before NMS) overlaps by
    IoU >= 0.5: what recall would be with a perfect ranking of the candidates."""
    hit = total = 0
    for photo in found:
        boxes = xywh(photo["candidates"][0])
        total += len(photo["people"])
        if len(photo["people"]) and len(boxes):
            hit += int((iou(boxes, photo["people"]).max(0) >= MATCH_IOU).sum())
    return hit / max(total, 1)


def diagnose_misses(detector, found: list[dict], threshold: float) -> dict:
    """Why the counted people missed at ``threshold`` are missed: ``close_kept`` a kept detection overlaps them by
    IoU 0.3-0.5 (box shape), ``under_threshold`` only a candidate under the threshold reaches IoU 0.5 (score),
    ``close_under_threshold`` only one under the threshold reaches 0.3-0.5, ``not_found`` no candidate reaches
    0.3; and the shape of the matched boxes: median IoU and median per-side offsets (person - detection, as
    fractions of the detection's width / height: x1, y1, x2, y2)."""
    counts = dict.fromkeys(("missed", "close_kept", "under_threshold", "close_under_threshold", "not_found"), 0)
    ious, offsets = [], []
    for photo in found:
        people = photo["people"]
        if not len(people):
            continue
        boxes, scores = detector.merge(*photo["candidates"], min_score=threshold)
        taken = matched_people(boxes, scores, people)
        candidates = xywh(photo["candidates"][0])
        best_kept = iou(boxes, people).max(0) if len(boxes) else np.zeros(len(people))
        best_any = iou(candidates, people).max(0) if len(candidates) else np.zeros(len(people))
        for g in np.flatnonzero(~taken):
            counts["missed"] += 1
            kind = ("close_kept" if best_kept[g] >= CLOSE_IOU else "under_threshold" if best_any[g] >= MATCH_IOU
                    else "close_under_threshold" if best_any[g] >= CLOSE_IOU else "not_found")
            counts[kind] += 1
        for g in np.flatnonzero(taken):
            i = iou(boxes, people[g:g + 1])[:, 0].argmax()
            ious.append(iou(boxes[i:i + 1], people[g:g + 1])[0, 0])
            offsets.append(side_offsets(boxes[i], people[g]))
    return {**counts, "matched": len(ious), "matched_median_iou": float(np.median(ious)) if ious else None,
            "matched_median_offsets": np.median(offsets, 0).round(4).tolist() if offsets else None}


def side_offsets(box: np.ndarray, person: np.ndarray) -> np.ndarray:
    """(4,) x, y, w, h detection and person -> (4,) person side minus detection side (x1, y1, x2, y2) as fractions
    of the detection's width, height, width, height."""
    w, h = box[2], box[3]
    return np.array([(person[0] - box[0]) / w, (person[1] - box[1]) / h,
                     (person[0] + person[2] - box[0] - w) / w, (person[1] + person[3] - box[1] - h) / h])


def fit_calibration(found: list[dict]) -> tuple[np.ndarray, int]:
    """Per-side box calibration fitted on ``found`` (train): the median :func:`side_offsets` of each counted
    person's best candidate when it overlaps by IoU >= 0.3 (any score, so the small, badly scored people count
    too); -> (offsets (4,), the number of pairs)."""
    offsets = []
    for photo in found:
        candidates = xywh(photo["candidates"][0])
        if not len(photo["people"]) or not len(candidates):
            continue
        overlaps = iou(candidates, photo["people"])
        for g, person in enumerate(photo["people"]):
            i = overlaps[:, g].argmax()
            if overlaps[i, g] >= CLOSE_IOU:
                offsets.append(side_offsets(candidates[i], person))
    return (np.median(offsets, 0) if offsets else np.zeros(4)), len(offsets)


def calibrate(boxes_xyxy: np.ndarray, offsets: np.ndarray, width: int, height: int) -> np.ndarray:
    """(C, 4) x1, y1, x2, y2 candidates moved side by side by ``offsets`` (4,) (fractions of each box's width /
    height, :func:`side_offsets`), clipped to the image."""
    b = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    moved = b + np.stack([offsets[0] * w, offsets[1] * h, offsets[2] * w, offsets[3] * h], axis=1)
    return np.clip(moved, 0, [width, height, width, height]).astype(np.float32)


def calibrated(found: list[dict], offsets: np.ndarray) -> list[dict]:
    """``found`` with every candidate box calibrated (:func:`calibrate`)."""
    out = []
    for photo in found:
        h, w = photo["image"].shape[:2]
        boxes, *rest = photo["candidates"]
        out.append({**photo, "candidates": (calibrate(boxes, offsets, w, h), *rest)})
    return out
