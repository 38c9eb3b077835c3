"""Evaluation: run a Predictor over samples, score with posekit.metrics (PCK, PCKh, AUC, OKS AP)."""
from __future__ import annotations

import logging

import numpy as np

from posekit.data.formats import load_samples, parse_spec
from posekit.data.sample import Sample
from posekit.skeletons import SKELETONS, get_skeleton

log = logging.getLogger(__name__)


def predict_all(predictor, samples: list[Sample]) -> tuple[np.ndarray, list[Sample], list[tuple[Sample, str]]]:
    """Predictions (N, K, 3) for the samples whose image could be read, those samples, and the failures."""
    failures: list[tuple[Sample, str]] = []
    kept, preds = [], []
    for sample, keypoints in predictor.predict_samples(samples, on_error=lambda s, e: failures.append((s, str(e)))):
        kept.append(sample)
        preds.append(keypoints)
    for sample, why in failures:
        log.warning("not evaluated: %s", why)
    k = predictor.num_keypoints
    return (np.stack(preds) if preds else np.zeros((0, k, 3), np.float32)), kept, failures


def evaluate_samples(predictor, samples: list[Sample], *, coco_gt=None, joints=None) -> dict:
    """Metrics dict (JSON-able). PCK family when the skeleton is known; OKS AP when ``coco_gt`` (json path or dict) is given."""
    from posekit.metrics import coco_oks_ap, evaluate_keypoints

    preds, kept, failures = predict_all(predictor, samples)
    if not kept:
        raise ValueError("no sample could be evaluated (all images unreadable?)")
    metrics: dict = {}
    name = kept[0].skeleton
    if name in SKELETONS:
        gt = np.stack([s.keypoints for s in kept]).astype(np.float32)
        boxes = np.stack([s.box for s in kept]).astype(np.float32)
        metrics.update(evaluate_keypoints(preds[:, :, :2], gt, boxes, get_skeleton(name), joints=joints))
    if coco_gt is not None:
        from posekit.inference.predictor import prediction_record
        records = [prediction_record(s, p) for s, p in zip(kept, preds)]
        sigmas = get_skeleton(name).sigmas if name in SKELETONS else None
        metrics.update(coco_oks_ap(coco_gt, records, sigmas=sigmas))
    metrics["n_evaluated"] = len(kept)
    metrics["n_failed"] = len(failures)
    if failures:
        metrics["failed_files"] = sorted({s.image_path for s, _ in failures})
    return metrics


def evaluate(predictor, spec: str, *, joints=None) -> dict:
    """Evaluate on a data spec such as ``lsp:DIR@val`` or ``coco:ANN.json``."""
    samples = load_samples(spec)
    fmt, path, _ = parse_spec(spec)
    return evaluate_samples(predictor, samples, coco_gt=path if fmt == "coco" else None, joints=joints)
