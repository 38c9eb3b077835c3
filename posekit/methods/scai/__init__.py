"""SCAI: Self-Correctable and Adaptable Inference (Z. Kan et al., "Self-Correctable and Adaptable Inference
for Generalizable Human Pose Estimation", CVPR 2023; it builds on the same group's SCIO, "Self-Constrained
Inference Optimization on Structural Groups for Human Pose Estimation", ECCV 2022).

A trained pose network is frozen. Three small networks learn the geometry of the body's local chains and
correct the hardest joints, the distal ones (wrists, ankles), at inference:

1. **Local chains.** The body is split into six chains of four joints ordered from a proximal joint to a
   distal one, ``(p, m1, m2, d)``: two arms, two legs and two head-torso chains
   (:attr:`posekit.skeletons.Skeleton.chains`; "a|b" = LSP's joint | MPII's joint):

   =======  =============================================  ========================================
   chain    LSP-14 / MPII-16                               COCO-17 (no neck: the other shoulder/hip)
   =======  =============================================  ========================================
   r. arm   neck|thorax, r shoulder, r elbow, r wrist      l shoulder, r shoulder, r elbow, r wrist
   l. arm   neck|thorax, l shoulder, l elbow, l wrist      r shoulder, l shoulder, l elbow, l wrist
   r. leg   l hip|pelvis, r hip, r knee, r ankle           l hip, r hip, r knee, r ankle
   l. leg   r hip|pelvis, l hip, l knee, l ankle           r hip, l hip, l knee, l ankle
   r. body  head top, neck|upper neck, r shoulder, r hip   nose, r shoulder, r hip, r knee
   l. body  head top, neck|upper neck, l shoulder, l hip   nose, l shoulder, l hip, l knee
   =======  =============================================  ========================================

   Walking a chain moves away from its proximal joint along the limbs (checked in the tests). The distal
   slots (wrists, ankles, and the hips -- COCO: the knees) are the six joints SCAI corrects.

2. **Prediction network** Φ: heatmaps of ``p, m1, m2`` -> a heatmap of ``d`` (what the chain's geometry
   says the distal joint should be).
3. **Correction network** C: corrects the pose network's estimate of ``d`` by an offset, conditioned on the
   chain, on Φ's opinion and on the **fitness feedback** of the uncorrected estimate (below).
4. **Self-referee** (the paper's *fitness feedback network*) Γ: heatmaps of ``m1, m2`` and the (corrected)
   distal joint -> the proximal joint. Mapping the prediction back to the observed input and comparing,
   ``e = || Γ(m1, m2, d') - p_observed ||``, gives a self-referential error that needs no label: the paper's
   central finding is that it correlates strongly with the true error of ``d'`` (we log the correlation,
   ``feedback_corr``, every training epoch; in a small synthetic check we measured only 0.1-0.15 there:
   the proximal joint is mostly determined by the middle ones).
5. **Training** (labeled data, pose network frozen): Φ and Γ with ground truth; C moves the distal estimate
   toward the ground truth and, with weight ``feedback_weight``, lowers the referee's error of its corrected
   joint (the referee is held fixed inside that term).
6. **Test-time training** (mode ``"tta"``): Γ frozen, C keeps training on the unlabeled test images with
   ``e`` as its only loss -- its own Adam optimizer, a small learning rate (``tta_lr``), ``tta_steps``
   steps per batch -- then corrects the batch. The corrected distal joints replace the pose network's.

What follows the paper and what is ours
---------------------------------------
Only the public abstracts and third-party summaries of SCAI and of its predecessor SCIO were available to
us (their full texts were not; no code was released). They give: keypoints partitioned into groups by
the body's structure, each split into high-confidence base joints and a low-confidence terminal joint
(SCIO); a forward prediction from base to terminal joints and a backward verification from the terminal
joint to the base ones, whose error on the base joints needs no label and serves as the objective at
inference (SCIO); a correction network that corrects the prediction conditioned on this fitness feedback
error, a fitness feedback network that maps the prediction back to the input side and compares it with
what was observed, the finding that this self-referential error correlates strongly with the true error,
and its use as the loss that adapts the correction network during inference (SCAI); everything trained
after, and on top of, a fixed pose network. Our own choices (everything the summaries do not pin down):

* the six chains of four joints (three base joints, the distal one terminal), fixed per skeleton;
* all three networks work on the pose network's *heatmaps* of the chain only (no image features), at the
  heatmap resolution (stride 4), so they are tiny (``width`` 16: 0.16 M parameters in all) and
  backbone-agnostic; one set of weights serves the six chains, told apart by six one-hot input planes (plus
  two coordinate planes);
* Φ and Γ are small encoder-decoders (two stride-2 stages, dilated context, skip connections, GroupNorm);
  Φ is trained with heatmap MSE to the Gaussian target; Γ outputs logits read by a spatial soft-argmax and
  is trained with the Euclidean error of the proximal joint, fed the *ground-truth* distal joint rendered as a
  Gaussian (so it learns to depend on where the distal joint is) and the observed middle joints;
* C reads the chain's heatmaps, Φ's heatmap and Γ's proximal map given the uncorrected distal joint, plus
  the decoded joint coordinates, the fitness error and the peak scores; it outputs an offset ``(dx, dy)``
  in heatmap pixels, ``max_offset * tanh(.)`` (default a quarter of the heatmap side), its last layer
  initialised to zero (a fresh C changes nothing). The offset moves the codec's decoded distal joint;
  the corrected joint is rendered as a Gaussian of the codec's sigma for Γ (differentiable in the offset);
* training losses: smooth-L1 (heatmap px) of the corrected distal joint to the ground truth, plus
  ``feedback_weight`` (0.1) x the referee's error of the corrected joint; pose-network crops come from the
  training augmentation (scale, rotation, flip, colour), which exposes realistic mistakes of the frozen
  pose network on its own training data;
* the observed proximal joint ``p_observed`` is the codec's decoded proximal joint of the same crop;
  ``e`` is Euclidean, in heatmap pixels; optional ``tta_weighting="confidence"`` weights each chain's
  error by the pose network's peak score of its proximal joint (default: the plain mean);
* test-time training: Adam, ``tta_steps`` 1, ``tta_lr`` 1e-4 by default (stored in the checkpoint,
  overridable at inference); it is *online* (C keeps its adapted weights and optimizer from batch to batch,
  ``reset()`` restores the trained ones) unless ``episodic=True`` (reset before every batch); with flip
  test the correction runs on the fused heatmaps of the two views (``Predictor.decode_views``); chains are
  corrected in parallel from the uncorrected estimates.

The coordinate design (``design="coords"``)
------------------------------------------
The reading note's closing question -- do these nets need heatmaps at all? -- is the second design,
:class:`~posekit.methods.scai.coord_nets.CoordSCAINets`: the same three roles, each an MLP (two hidden layers
of ``width`` 64, one set of weights for the six chains plus a one-hot chain code) on the chain's decoded
joint coordinates (heatmap px, relative to a neighbouring joint, over the heatmap side) and peak scores.
Φ predicts the distal joint from ``p, m1, m2``; Γ the proximal joint from ``m1, m2, d``; C reads the four
joints, scores, Φ's opinion and Γ's feedback (17 numbers) and outputs a ``max_offset * tanh`` offset, its
last layer zero. Losses, test-time training, the corrector and the checkpoints are the heatmap design's;
``design`` is recorded in the checkpoint (``config["nets"]["design"]``, absent = heatmap).

Use
---
* ``train_scai(pose_checkpoint, "lsp:DATA@train", "runs/scai", epochs=10[, design="coords"])`` ->
  ``runs/scai/scai.pt``;
* ``SCAICorrector.from_checkpoint("runs/scai/scai.pt", mode="tta")`` is a drop-in
  :class:`~posekit.inference.predictor.Predictor` (``predict``, ``predict_samples``, ``predict_crops``);
* ``Predictor.load("POSE.pt", scai="runs/scai/scai.pt", tta="scai")`` -- the same from the predictor's loader;
* ``posekit eval|predict --checkpoint POSE.pt --scai runs/scai/scai.pt [--tta scai]``;
* ``python -m posekit.methods.scai.publish runs/scai/scai.pt --name N --base ZOO_ENTRY ...`` -- a zoo entry
  (:mod:`~posekit.methods.scai.publish`) whose ``base`` is the pose model the nets belong to;
* ``posekit adapt --method scai --source POSE.pt --target SPEC --val SPEC --out DIR`` (:func:`adapt`).

Files: :mod:`~posekit.methods.scai.nets` (chains and the three heatmap networks, with their training losses),
:mod:`~posekit.methods.scai.coord_nets` (the coordinate design), :mod:`~posekit.methods.scai.designs` (choosing one),
:mod:`~posekit.methods.scai.publish` (zoo entries),
:mod:`~posekit.methods.scai.corrector` (inference: the Predictor wrapper, test-time training, checkpoints),
:mod:`~posekit.methods.scai.train` (training on labels), :mod:`~posekit.methods.scai.adapt` (evaluation per
mode and the adaptation run). A package and not ``posekit.models``: the networks read SCAI's chain rows and
make sense only with its corrector; they are not pose models (no registry entry, no PoseModel contract).
"""
from __future__ import annotations

from posekit.methods.scai.adapt import (ADAPT_DEFAULTS, ADAPT_OPTIONS, NetworkMemo, adapt, adapt_on,
                                        distal_summary, evaluate_modes, format_results, has_labels)
from posekit.methods.scai.coord_nets import CoordSCAINets
from posekit.methods.scai.corrector import (MODES, TTA_WEIGHTINGS, SCAICorrector, TestTimeTrainer, check_compatible,
                                            load_scai, scai_payload)
from posekit.methods.scai.designs import DESIGNS, build_nets, design_of, nets_from_config
from posekit.methods.scai.nets import (DISTAL, MIDDLE, PROXIMAL, SCAINets, chains_of, distal_joints, gather_chains,
                                       hard_argmax, referee_error, render_gaussian, soft_argmax)
from posekit.methods.scai.train import pose_chains, train_scai, training_rows

__all__ = ["SCAINets", "CoordSCAINets", "DESIGNS", "build_nets", "design_of", "nets_from_config", "SCAICorrector",
           "TestTimeTrainer", "train_scai", "adapt", "evaluate_modes", "load_scai",
           "scai_payload", "chains_of", "distal_joints", "gather_chains", "render_gaussian", "soft_argmax",
           "hard_argmax", "referee_error", "check_compatible", "distal_summary", "adapt_on", "has_labels",
           "format_results", "pose_chains", "training_rows", "MODES", "TTA_WEIGHTINGS", "ADAPT_OPTIONS",
           "ADAPT_DEFAULTS", "PROXIMAL", "MIDDLE", "DISTAL", "NetworkMemo"]
