"""Evaluation: run a Predictor over samples, score with posekit.metrics (PCK, PCKh, AUC, OKS AP)."""
from __future__ import annotations

import logging

import numpy as np

from posekit.config import PoseConfig
from posekit.data.formats import load_samples, oks_ground_truth
from posekit.data.sample import DataError, Sample, require_people
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


def model_skeleton(predictor) -> str | None:
    """The skeleton name a predictor (or a wrapper exposing its ``pose_config``) was trained on, if it says;
    a duck-typed predictor may expose a plain ``config`` dict instead."""
    config = getattr(predictor, "pose_config", None)
    if isinstance(config, PoseConfig):
        return config.skeleton
    config = getattr(predictor, "config", None)
    return config.get("skeleton") if isinstance(config, dict) else None


def shared_with_model(predictor, data_skeleton: str):
    """``shared_skeleton(model's, data's)`` when the predictor says it was trained on another registered
    skeleton than the data's, else None (the model is scored on the data's own joints)."""
    from posekit.skeletons import shared_skeleton
    trained_on = model_skeleton(predictor)
    if data_skeleton in SKELETONS and trained_on in SKELETONS and trained_on != data_skeleton:
        return shared_skeleton(get_skeleton(trained_on), get_skeleton(data_skeleton))
    return None


def restrict_coco_gt(coco_gt, data_index) -> dict:
    """A COCO keypoints json (path or dict) with every annotation cut to the joints ``data_index``
    (``num_keypoints`` recounted), so OKS is computed over those joints only."""
    from posekit.data.io import load_json
    data = load_json(coco_gt) if not isinstance(coco_gt, dict) else coco_gt
    keep = np.asarray(data_index)
    annotations = []
    for a in data["annotations"]:
        kp = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3)[keep]
        annotations.append({**a, "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum())})
    categories = [{**c, "keypoints": [c["keypoints"][j] for j in keep]} if "keypoints" in c else c
                  for c in data.get("categories", [])]
    return {**data, "annotations": annotations, "categories": categories}


def evaluate_samples(predictor, samples: list[Sample], *, coco_gt=None, joints=None) -> dict:
    """Metrics dict (JSON-able). PCK family when the skeleton is known; OKS AP when ``coco_gt`` (json path or dict) is given.

    A model of another skeleton than the data's (an LSP model on COCO data, say) is scored on the joints both
    skeletons name (:func:`posekit.skeletons.shared_skeleton`); ``metrics["shared_joints"]`` lists them.
    """
    from posekit.metrics import coco_oks_ap, evaluate_keypoints

    require_people(samples, "evaluate")
    preds, kept, failures = predict_all(predictor, samples)
    if not kept:
        sample, why = failures[0]
        raise DataError(sample.image_path, f"none of the {len(samples)} people could be evaluated: every image "
                                           f"was unreadable (this one: {why})")
    metrics: dict = {}
    name = kept[0].skeleton
    skeleton = get_skeleton(name) if name in SKELETONS else None
    gt = np.stack([s.keypoints for s in kept]).astype(np.float32)
    shared = shared_with_model(predictor, name)
    if shared is not None:
        skeleton, model_index, data_index = shared
        preds, gt = preds[:, model_index], gt[:, data_index]
        if coco_gt is not None:
            coco_gt = restrict_coco_gt(coco_gt, data_index)
        metrics["shared_joints"] = list(skeleton.keypoints)
    elif preds.shape[1] != gt.shape[1]:
        raise ValueError(f"the model predicts {preds.shape[1]} keypoints but {kept[0].image_path} has "
                         f"{gt.shape[1]} ({name}); say the model's skeleton in its config to score shared joints")
    if skeleton is not None:
        boxes = np.stack([s.box for s in kept]).astype(np.float32)
        metrics.update(evaluate_keypoints(preds[:, :, :2], gt, boxes, skeleton, joints=joints))
    if coco_gt is not None:
        from posekit.inference.predictor import prediction_record
        records = [prediction_record(s, p) for s, p in zip(kept, preds)]
        metrics.update(coco_oks_ap(coco_gt, records, sigmas=skeleton.sigmas if skeleton is not None else None))
    metrics["n_evaluated"] = len(kept)
    metrics["n_failed"] = len(failures)
    if failures:
        metrics["failed_files"] = sorted({s.image_path for s, _ in failures})
    return metrics


def evaluate(predictor, spec: str, *, joints=None) -> dict:
    """Evaluate on a data spec such as ``lsp:DIR@val`` or ``coco:ANN.json``."""
    samples = require_people(load_samples(spec), "evaluate", source=spec)
    return evaluate_samples(predictor, samples, coco_gt=oks_ground_truth(spec), joints=joints)
