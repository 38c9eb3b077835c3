"""The PCK family: PCK (torso, box), PCKh, AUC over thresholds, and the per-joint table.

Definitions (DESIGN.md, "Metric definitions"; the package docstring of :mod:`posekit.metrics` has the
counting rules):

* **PCK@α (torso)**: joint k of person n is correct when ``||p - g|| <= α · ||g[ls] - g[rh]||`` where
  ``(ls, rh) = skeleton.torso`` (left shoulder, right hip of the *ground truth*).
* **PCK@α (box)**: threshold ``α · max(box w, box h)`` (α = 0.05 is the domain-adaptation papers' PCK@0.05).
* **PCKh@α**: threshold ``α · ||g[a] - g[b]||`` with ``(a, b) = skeleton.head`` (the head *segment*, not
  MPII's official 0.6 x head-box diagonal).
* **AUC**: mean of the overall PCK over ``np.linspace(0, max_alpha, steps)`` (default 0 ... 0.2 in 21 steps).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["pck", "torso_lengths", "box_lengths", "head_lengths", "segment_lengths", "pck_curve", "auc",
           "evaluate_keypoints", "format_table"]


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


def _joint_index(joint, skeleton) -> int:
    """A joint name or index -> its index in ``skeleton``."""
    if isinstance(joint, str):
        if joint not in skeleton.keypoints:
            raise ValueError(f"joint {joint!r} is not in skeleton {skeleton.name}: {list(skeleton.keypoints)}")
        return skeleton.index(joint)
    return int(joint)


def _resolve_joints(joints, skeleton) -> list[int] | None:
    """Joint names or indices -> sorted indices of ``skeleton`` (None stays None)."""
    if joints is None:
        return None
    return sorted({_joint_index(j, skeleton) for j in joints})


# -- normalisers ---------------------------------------------------------------------------------
def _segment_lengths(gt: np.ndarray, a: int, b: int) -> np.ndarray:
    labelled = (gt[:, a, 2] > 0) & (gt[:, b, 2] > 0)
    length = np.linalg.norm(gt[:, a, :2] - gt[:, b, :2], axis=-1)
    return np.where(labelled, length, np.nan)


def _check_skeleton(gt: np.ndarray, skeleton) -> None:
    if gt.shape[1] != skeleton.num_keypoints:
        raise ValueError(f"gt has {gt.shape[1]} keypoints, skeleton {skeleton.name} has {skeleton.num_keypoints}")


def torso_lengths(gt, skeleton) -> np.ndarray:
    """gt: (N, K, 3) -> (N,) ``||left shoulder - right hip||`` (skeleton.torso); NaN when either is unlabelled."""
    gt = _as_gt(gt)
    _check_skeleton(gt, skeleton)
    return _segment_lengths(gt, *skeleton.torso)


def head_lengths(gt, skeleton) -> np.ndarray:
    """gt: (N, K, 3) -> (N,) head segment length (skeleton.head); NaN when either joint is unlabelled."""
    gt = _as_gt(gt)
    if skeleton.head is None:
        raise ValueError(f"skeleton {skeleton.name} defines no head segment; PCKh is undefined")
    _check_skeleton(gt, skeleton)
    return _segment_lengths(gt, *skeleton.head)


def segment_lengths(gt, skeleton, a, b) -> np.ndarray:
    """gt: (N, K, 3) -> (N,) ``||g[a] - g[b]||`` for two joints of ``skeleton`` (names or indices); NaN when
    either is unlabelled. E.g. the other torso diagonal: ``segment_lengths(gt, LSP, "right_shoulder", "left_hip")``."""
    gt = _as_gt(gt)
    _check_skeleton(gt, skeleton)
    return _segment_lengths(gt, _joint_index(a, skeleton), _joint_index(b, skeleton))


def box_lengths(boxes) -> np.ndarray:
    """boxes: (N, 4) x, y, w, h -> (N,) ``max(w, h)``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) x, y, w, h, got shape {boxes.shape}")
    return np.maximum(boxes[:, 2], boxes[:, 3])


# -- PCK family ----------------------------------------------------------------------------------
def _defined(norm: np.ndarray) -> np.ndarray:
    """(N,) bool: the people whose reference length is usable (finite and positive); the others are skipped."""
    return np.isfinite(norm) & (norm > 0)


def _distances_and_mask(pred, gt, norm, joints) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) distances / norm and (N, K) bool mask of counted joints."""
    pred, gt, norm = _check_pair(pred, gt, norm)
    valid_person = _defined(norm)
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
            "counted": n.astype(int), "n_people": int(counted.any(axis=1).sum())}


def pck(pred, gt, norm, alpha: float, joints=None) -> dict:
    """Percentage of correct keypoints.

    pred: (N, K, 2) predicted x, y (a score column, if present, is ignored).
    gt: (N, K, 3) ground truth x, y, v; only v > 0 counts.
    norm: (N,) per-person reference lengths (see torso_lengths / box_lengths / head_lengths); people with
        a NaN or non-positive length are skipped.
    alpha: threshold as a fraction of ``norm``.
    joints: None or a sequence of joint indices to score (the others get NaN / 0).
    Returns ``{"per_joint": (K,) float (NaN where nothing counted), "mean": float, "overall": float,
    "counted": (K,) int, "n_people": people with at least one counted joint}``.
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
    out["n_skipped_torso"] = int((~_defined(torso)).sum())
    if skeleton.head is not None:
        out["n_skipped_head"] = int((~_defined(head)).sum())

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
