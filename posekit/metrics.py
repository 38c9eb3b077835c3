"""Evaluation metrics: PCK (torso, box), PCKh, AUC, OKS AP (pycocotools) and corruption robustness (mPC, rPC).

The definitions are shared with the hold-out scorer (DESIGN.md, "Metric definitions"):

* **PCK@α (torso)**: joint k of person n is correct when ``||p - g|| <= α · ||g[ls] - g[rh]||`` where
  ``(ls, rh) = skeleton.torso`` (left shoulder, right hip of the *ground truth*).
* **PCK@α (box)**: threshold ``α · max(box w, box h)`` (α = 0.05 is the domain-adaptation papers' PCK@0.05).
* **PCKh@α**: threshold ``α · ||g[a] - g[b]||`` with ``(a, b) = skeleton.head``. This is the head *segment*
  (LSP: neck - head top; MPII: upper neck - head top), not MPII's official 0.6 x head-box diagonal, so numbers
  are close to but not identical with the MPII benchmark's.
* **AUC**: mean of the overall PCK over ``np.linspace(0, max_alpha, steps)`` (default 0 ... 0.2 in 21 steps
  of 0.01). The α = 0 step counts exact hits only (``distance <= 0``), so perfect predictions score 1.0.

Counting rules, common to every PCK variant:

* only joints whose ground truth is labelled (v > 0) count, occluded ones (v = 1) included;
* a person whose normaliser is undefined (NaN: a torso / head joint unlabelled) or not positive (the two
  reference joints coincide) is **skipped** for that metric — no length is invented — and
  :func:`evaluate_keypoints` reports how many were skipped (``n_skipped_torso``, ``n_skipped_head``);
* a predicted coordinate that is NaN counts as a miss, never as skipped;
* ``overall`` is correct / counted over all counted joints; ``mean`` is the unweighted mean of the per-joint
  PCKs (joints never counted are left out). The headline keys of :func:`evaluate_keypoints` are ``overall``.

OKS AP / AR are computed by pycocotools' ``COCOeval`` ("keypoints" mode); this module only converts
predictions to COCO's results format and sets ``params.kpt_oks_sigmas``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "pck", "torso_lengths", "box_lengths", "head_lengths", "pck_curve", "auc", "evaluate_keypoints",
    "format_table", "coco_oks_ap", "samples_to_coco", "robustness_summary",
]

#: COCOeval.stats for iouType="keypoints", in order.
COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


# -- input checks --------------------------------------------------------------------------------
def _as_pred(pred) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] not in (2, 3):
        raise ValueError(f"pred must be (N, K, 2) (or (N, K, 3) with scores), got shape {pred.shape}")
    return pred[..., :2]


def _as_gt(gt) -> np.ndarray:
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[-1] != 3:
        raise ValueError(f"gt must be (N, K, 3) x, y, v, got shape {gt.shape}")
    return gt


def _check_pair(pred, gt, norm=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pred, gt = _as_pred(pred), _as_gt(gt)
    if pred.shape[:2] != gt.shape[:2]:
        raise ValueError(f"pred {pred.shape[:2]} and gt {gt.shape[:2]} disagree on (N, K)")
    if norm is not None:
        norm = np.asarray(norm, dtype=np.float64)
        if norm.shape != (gt.shape[0],):
            raise ValueError(f"norm must be (N,) = ({gt.shape[0]},), got shape {norm.shape}")
    return pred, gt, norm


def _joint_mask(joints, num_keypoints: int) -> np.ndarray:
    """(K,) bool: the joints to score. ``joints``: None (all) or a sequence of indices."""
    mask = np.zeros(num_keypoints, bool)
    if joints is None:
        mask[:] = True
        return mask
    indices = np.asarray(list(joints))
    if indices.size == 0:
        raise ValueError("joints is empty")
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"joints must be integer indices here, got {list(joints)!r}")
    if indices.min() < 0 or indices.max() >= num_keypoints:
        raise ValueError(f"joint index out of range 0..{num_keypoints - 1}: {indices.tolist()}")
    mask[indices] = True
    return mask


def _resolve_joints(joints, skeleton) -> list[int] | None:
    """Joint names or indices -> sorted indices of ``skeleton`` (None stays None)."""
    if joints is None:
        return None
    out = []
    for j in joints:
        if isinstance(j, str):
            if j not in skeleton.keypoints:
                raise ValueError(f"joint {j!r} is not in skeleton {skeleton.name}: {list(skeleton.keypoints)}")
            out.append(skeleton.index(j))
        else:
            out.append(int(j))
    return sorted(set(out))


# -- normalisers ---------------------------------------------------------------------------------
def _segment_lengths(gt: np.ndarray, a: int, b: int) -> np.ndarray:
    labelled = (gt[:, a, 2] > 0) & (gt[:, b, 2] > 0)
    length = np.linalg.norm(gt[:, a, :2] - gt[:, b, :2], axis=-1)
    return np.where(labelled, length, np.nan)


def torso_lengths(gt, skeleton) -> np.ndarray:
    """gt: (N, K, 3) -> (N,) ``||left shoulder - right hip||`` (skeleton.torso); NaN when either is unlabelled."""
    gt = _as_gt(gt)
    if gt.shape[1] != skeleton.num_keypoints:
        raise ValueError(f"gt has {gt.shape[1]} keypoints, skeleton {skeleton.name} has {skeleton.num_keypoints}")
    return _segment_lengths(gt, *skeleton.torso)


def head_lengths(gt, skeleton) -> np.ndarray:
    """gt: (N, K, 3) -> (N,) head segment length (skeleton.head); NaN when either joint is unlabelled."""
    gt = _as_gt(gt)
    if skeleton.head is None:
        raise ValueError(f"skeleton {skeleton.name} defines no head segment; PCKh is undefined")
    if gt.shape[1] != skeleton.num_keypoints:
        raise ValueError(f"gt has {gt.shape[1]} keypoints, skeleton {skeleton.name} has {skeleton.num_keypoints}")
    return _segment_lengths(gt, *skeleton.head)


def box_lengths(boxes) -> np.ndarray:
    """boxes: (N, 4) x, y, w, h -> (N,) ``max(w, h)``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) x, y, w, h, got shape {boxes.shape}")
    return np.maximum(boxes[:, 2], boxes[:, 3])


# -- PCK family ----------------------------------------------------------------------------------
def _distances_and_mask(pred, gt, norm, joints) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) distances / norm and (N, K) bool mask of counted joints."""
    pred, gt, norm = _check_pair(pred, gt, norm)
    valid_person = np.isfinite(norm) & (norm > 0)
    counted = (gt[..., 2] > 0) & valid_person[:, None] & _joint_mask(joints, gt.shape[1])[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.linalg.norm(pred - gt[..., :2], axis=-1) / norm[:, None]
    # A NaN prediction is a miss: +inf fails every finite threshold.
    relative = np.where(np.isnan(relative) & counted, np.inf, relative)
    return relative, counted


def _summarise(correct: np.ndarray, counted: np.ndarray) -> dict:
    n = counted.sum(axis=0)
    hits = (correct & counted).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(n > 0, hits / np.maximum(n, 1), np.nan)
    total = int(n.sum())
    return {"per_joint": per_joint,
            "mean": float(np.nanmean(per_joint)) if (n > 0).any() else math.nan,
            "overall": float(hits.sum() / total) if total else math.nan,
            "counted": n.astype(int)}


def pck(pred, gt, norm, alpha: float, joints=None) -> dict:
    """Percentage of correct keypoints.

    pred: (N, K, 2) predicted x, y (a score column, if present, is ignored).
    gt: (N, K, 3) ground truth x, y, v; only v > 0 counts.
    norm: (N,) per-person reference lengths (see torso_lengths / box_lengths / head_lengths); people with
        a NaN or non-positive length are skipped.
    alpha: threshold as a fraction of ``norm``.
    joints: None or a sequence of joint indices to score (the others get NaN / 0).
    Returns ``{"per_joint": (K,) float (NaN where nothing counted), "mean": float, "overall": float,
    "counted": (K,) int}``.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    relative, counted = _distances_and_mask(pred, gt, norm, joints)
    return _summarise(relative <= alpha, counted)


def pck_curve(pred, gt, norm, alphas, joints=None) -> np.ndarray:
    """Overall PCK at each threshold. pred: (N, K, 2), gt: (N, K, 3), norm: (N,), alphas: (A,) -> (A,)."""
    relative, counted = _distances_and_mask(pred, gt, norm, joints)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    total = counted.sum()
    if total == 0:
        return np.full(alphas.shape, np.nan)
    hits = [((relative <= a) & counted).sum() for a in alphas]
    return np.asarray(hits, dtype=np.float64) / total


def _auc_alphas(max_alpha: float, steps: int) -> np.ndarray:
    if steps < 2 or not max_alpha > 0:
        raise ValueError(f"need steps >= 2 and max_alpha > 0, got steps={steps}, max_alpha={max_alpha}")
    return np.linspace(0.0, max_alpha, steps)


def auc(pred, gt, norm, max_alpha: float = 0.2, steps: int = 21, joints=None) -> float:
    """Mean overall PCK over ``np.linspace(0, max_alpha, steps)`` (α = 0 counts exact hits; perfect = 1.0).

    pred: (N, K, 2), gt: (N, K, 3), norm: (N,). NaN when no joint counts.
    """
    return float(np.mean(pck_curve(pred, gt, norm, _auc_alphas(max_alpha, steps), joints=joints)))


def evaluate_keypoints(pred, gt, boxes, skeleton, joints=None) -> dict:
    """The PCK family for one set of people, JSON-able.

    pred: (N, K, 2) (or (N, K, 3); scores ignored), gt: (N, K, 3), boxes: (N, 4) x, y, w, h person boxes.
    skeleton: the :class:`~posekit.skeletons.Skeleton` of the K joints.
    joints: None (all) or joint names / indices to score, e.g. the 12 joints LSP shares with MediaPipe.
    Returns ``{"pck@0.2_torso", "pck@0.05_box", "pckh@0.5" (if skeleton.head), "auc_torso" (0...0.2, 21 steps),
    "n_people", "n_skipped_torso", "n_skipped_head" (if skeleton.head), "per_joint": {name: {metric: value,
    "n": labelled count, "n_torso": count for the torso metrics}}}``; headline values are ``overall`` PCKs
    (NaN when nothing counted).
    """
    pred, gt, _ = _check_pair(pred, gt)
    n, k = gt.shape[:2]
    if k != skeleton.num_keypoints:
        raise ValueError(f"{k} keypoints but skeleton {skeleton.name} has {skeleton.num_keypoints}")
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) = ({n}, 4), got shape {boxes.shape}")
    index = _resolve_joints(joints, skeleton)

    torso = torso_lengths(gt, skeleton)
    results = {
        "pck@0.2_torso": pck(pred, gt, torso, 0.2, index),
        "pck@0.05_box": pck(pred, gt, box_lengths(boxes), 0.05, index),
    }
    out: dict = {}
    if skeleton.head is not None:
        head = head_lengths(gt, skeleton)
        results["pckh@0.5"] = pck(pred, gt, head, 0.5, index)
    alphas = _auc_alphas(0.2, 21)
    curve = [pck(pred, gt, torso, a, index) for a in alphas]
    auc_per_joint = np.mean([c["per_joint"] for c in curve], axis=0)

    for name, r in results.items():
        out[name] = float(r["overall"])
    out["auc_torso"] = float(np.mean([c["overall"] for c in curve]))
    out["n_people"] = int(n)
    out["n_skipped_torso"] = int((~(np.isfinite(torso) & (torso > 0))).sum())
    if skeleton.head is not None:
        out["n_skipped_head"] = int((~(np.isfinite(head) & (head > 0))).sum())

    labelled = (gt[..., 2] > 0).sum(axis=0)
    selected = range(k) if index is None else index
    out["per_joint"] = {
        skeleton.keypoints[j]: {**{name: float(r["per_joint"][j]) for name, r in results.items()},
                                "auc_torso": float(auc_per_joint[j]),
                                "n": int(labelled[j]), "n_torso": int(results["pck@0.2_torso"]["counted"][j])}
        for j in selected}
    return out


def format_table(metrics: dict, skeleton) -> str:
    """Markdown table of ``metrics["per_joint"]`` (from :func:`evaluate_keypoints`), rows in skeleton order,
    then the mean over joints and the overall value of each metric."""
    per_joint = metrics.get("per_joint") or {}
    names = [name for name in skeleton.keypoints if name in per_joint]
    if not names:
        raise ValueError("metrics has no per_joint entries for skeleton " + skeleton.name)
    columns = [c for c in per_joint[names[0]] if not c.startswith("n")]

    def cell(value) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    lines = ["| joint | " + " | ".join(columns) + " | n |", "|---|" + "---|" * (len(columns) + 1)]
    for name in names:
        row = per_joint[name]
        lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in columns) + f" | {row.get('n', '')} |")
    means = []
    for c in columns:
        values = np.array([per_joint[name][c] for name in names], dtype=np.float64)
        means.append(cell(float(np.nanmean(values))) if np.isfinite(values).any() else "-")
    lines.append("| **mean (joints)** | " + " | ".join(means) + " | |")
    lines.append("| **overall** | " + " | ".join(cell(metrics.get(c)) for c in columns)
                 + f" | {sum(per_joint[n].get('n', 0) for n in names)} |")
    return "\n".join(lines)


# -- OKS AP through pycocotools ------------------------------------------------------------------
def _quiet(fn, *args, **kwargs):
    """pycocotools prints progress to stdout; keep library calls silent."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _load_coco(gt):
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        return gt
    if isinstance(gt, (str, os.PathLike)):
        with open(gt) as f:
            dataset = json.load(f)
        source = str(gt)
    elif isinstance(gt, Mapping):
        dataset = copy.deepcopy(dict(gt))  # COCOeval writes 'ignore' flags into the annotations
        source = "ground-truth dict"
    else:
        raise TypeError(f"gt must be a COCO json path, a COCO-format dict or a pycocotools COCO, got {type(gt)}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"{source}: COCO ground truth has no {key!r}")
    for ann in dataset["annotations"]:
        missing = [key for key in ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox")
                   if key not in ann]
        if missing:
            raise ValueError(f"{source}: annotation {ann.get('id', '?')} lacks {missing} (needed by COCOeval)")
        if ann["id"] == 0:
            # COCOeval stores matched gt ids in a zero-initialised array: id 0 would read as "unmatched".
            raise ValueError(f"{source}: annotation id 0 is not allowed (COCOeval treats it as no match)")
    coco = COCO()
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco


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
    value is 0.0 when the ground truth has people.
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = _load_coco(gt)
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
    if not results:
        has_people = any(a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0) for a in annotations)
        return {name: (0.0 if has_people else math.nan) for name in COCO_KEYPOINT_STATS}

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


# -- robustness ----------------------------------------------------------------------------------
SEVERITIES = (1, 2, 3, 4, 5)


def robustness_summary(clean: float, table: Mapping[str, Mapping[int, float]]) -> dict:
    """Corruption robustness (Hendrycks & Dietterich; AdvMix): mPC and rPC.

    clean: the metric on clean images.
    table: ``{corruption: {severity 1..5: metric}}`` (severity keys may be ints or digit strings, as after a
        JSON round trip; a severity-0 "clean" entry is ignored). Every corruption needs all five severities.
    Returns ``{"mPC": mean over corruptions and severities 1-5, "rPC": mPC / clean (NaN if clean == 0),
    "per_corruption": {name: mean over its severities}, "n_corruptions": int}``.
    """
    if not table:
        raise ValueError("empty corruption table")
    per_corruption = {}
    for name, by_severity in table.items():
        values = {int(s): float(v) for s, v in by_severity.items()}
        missing = [s for s in SEVERITIES if s not in values]
        extra = sorted(set(values) - set(SEVERITIES) - {0})
        if missing or extra:
            raise ValueError(f"corruption {name!r}: severities must be 1-5, missing {missing}, unexpected {extra}")
        per_corruption[name] = float(np.mean([values[s] for s in SEVERITIES]))
    mpc = float(np.mean(list(per_corruption.values())))
    clean = float(clean)
    return {"mPC": mpc, "rPC": mpc / clean if clean != 0 else math.nan, "per_corruption": per_corruption,
            "n_corruptions": len(per_corruption)}
