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
* **OKS AP / AR**: pycocotools' ``COCOeval`` ("keypoints" mode); :mod:`posekit.metrics.coco` only converts
  predictions to COCO's results format and sets ``params.kpt_oks_sigmas``.
* **mPC** = mean metric over the corruptions x severities 1-5; **rPC** = mPC / clean metric.

Counting rules, common to every PCK variant:

* only joints whose ground truth is labelled (v > 0) count, occluded ones (v = 1) included;
* a person whose normaliser is undefined (NaN: a torso / head joint unlabelled) or not positive (the two
  reference joints coincide) is **skipped** for that metric — no length is invented — and
  :func:`evaluate_keypoints` reports how many were skipped (``n_skipped_torso``, ``n_skipped_head``);
* a predicted coordinate that is NaN counts as a miss, never as skipped;
* ``overall`` is correct / counted over all counted joints; ``mean`` is the unweighted mean of the per-joint
  PCKs (joints never counted are left out). The headline keys of :func:`evaluate_keypoints` are ``overall``.

Modules: :mod:`~posekit.metrics.pck_family` (PCK, PCKh, AUC, normalisers, tables), :mod:`~posekit.metrics.coco`
(OKS AP), :mod:`~posekit.metrics.robustness` (mPC / rPC). Everything is importable from here.
"""
from posekit.metrics.coco import COCO_KEYPOINT_STATS, coco_oks_ap, samples_to_coco
from posekit.metrics.pck_family import (auc, box_lengths, evaluate_keypoints, format_table, head_lengths, pck,
                                        pck_curve, segment_lengths, torso_lengths)
from posekit.metrics.robustness import SEVERITIES, robustness_summary

__all__ = [
    "pck", "torso_lengths", "box_lengths", "head_lengths", "pck_curve", "auc", "evaluate_keypoints",
    "format_table", "coco_oks_ap", "samples_to_coco", "robustness_summary",
    "segment_lengths", "COCO_KEYPOINT_STATS", "SEVERITIES",
]
