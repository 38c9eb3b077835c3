"""SCAI evaluated and adapted (see :mod:`posekit.methods.scai`): metrics per mode, the distal joints' PCK, and
:func:`adapt` -- train the nets, adapt C to an unlabelled target by test-time training, evaluate (what
``posekit adapt --method scai`` runs)."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np

from posekit.checkpoint import load_checkpoint, save_checkpoint
from posekit.methods.scai.corrector import MODES, SCAICorrector, load_scai, scai_payload
from posekit.methods.scai.nets import distal_joints
from posekit.methods.scai.train import train_scai
from posekit.strict_json import dumps_strict

__all__ = ["NetworkMemo", "distal_summary", "evaluate_modes", "has_labels", "adapt_on", "adapt", "format_results",
           "ADAPT_OPTIONS", "ADAPT_DEFAULTS"]

log = logging.getLogger(__name__)

#: ``posekit adapt --method scai`` defaults of the run options it shares with the other adaptation methods
ADAPT_DEFAULTS = {"epochs": 10, "batch_size": 32, "lr": 1e-3, "seed": 0}
#: further options of :func:`adapt` (``--scai-kwargs``)
ADAPT_OPTIONS = {"checkpoint", "train", "modes", "adapt_passes", "workers", "max_iters", "augment", "design",
                 "width", "max_offset", "feedback_weight", "tta_steps", "tta_lr", "tta_weighting", "episodic",
                 "weight_decay", "no_flip", "limit"}


def distal_summary(metrics: dict, skeleton, chains) -> dict:
    """Mean PCK of the corrected (distal) joints from ``metrics["per_joint"]``, weighted by their counts."""
    per_joint = metrics.get("per_joint") or {}
    out = {}
    for metric, count in (("pck@0.2_torso", "n_torso"), ("pck@0.05_box", "n")):
        num = den = 0.0
        for j in distal_joints(chains):
            r = per_joint.get(skeleton.keypoints[j])
            if r and r.get(count) and np.isfinite(r[metric]):
                num += r[metric] * r[count]
                den += r[count]
        out[f"distal_{metric}"] = num / den if den else float("nan")
    return out


class NetworkMemo:
    """Memoises a predictor's ``run_network`` by the crops' bytes while installed (``with NetworkMemo(p):``):
    every SCAI mode sees the same frozen, deterministic pose network outputs, so they are computed once.
    ``clear()`` forgets them (e.g. between image conditions)."""

    def __init__(self, predictor):
        self.predictor, self.outputs, self.run = predictor, {}, None

    def __enter__(self) -> "NetworkMemo":
        self.run = self.predictor.run_network
        self.predictor.run_network = self
        return self

    def __exit__(self, *exc) -> None:
        del self.predictor.run_network  # the class's method again
        self.outputs.clear()

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        key = hashlib.blake2b(np.ascontiguousarray(crops).tobytes(), digest_size=16).digest()
        if key not in self.outputs:
            self.outputs[key] = self.run(crops)
        return self.outputs[key]

    def clear(self) -> None:
        self.outputs.clear()


def evaluate_modes(corrector: SCAICorrector, samples, *, modes=MODES, coco_gt=None, wrap=None,
                   reuse_network: bool = False) -> dict:
    """{mode: metrics} on the same samples; test-time training starts from the trained C for every mode.

    ``wrap``: optional ``f(predictor) -> predictor-like`` (e.g. corrupted images) applied around the corrector.
    ``reuse_network``: run the pose network once for all modes (:class:`NetworkMemo`; holds its outputs for the
    samples in memory, about 0.26 MB per person at 14 x 48 x 48 with flip test).
    """
    from posekit.engine.evaluate import evaluate_samples
    from posekit.skeletons import SKELETONS
    results, original = {}, corrector.mode
    memo = NetworkMemo(corrector.predictor) if reuse_network else contextlib.nullcontext()
    with memo:
        for mode in modes:
            corrector.mode = mode
            corrector.reset()
            t0 = time.time()
            metrics = evaluate_samples(wrap(corrector) if wrap else corrector, samples, coco_gt=coco_gt)
            skeleton = SKELETONS.get(corrector.config.get("skeleton"))
            if skeleton is not None and "per_joint" in metrics:
                metrics.update(distal_summary(metrics, skeleton, corrector.chains))
            metrics["seconds"] = round(time.time() - t0, 1)
            if mode == "tta":
                metrics["tta_loss_first"] = corrector.tta.history[0] if corrector.tta.history else None
                metrics["tta_loss_last"] = corrector.tta.history[-1] if corrector.tta.history else None
            results[mode] = metrics
    corrector.reset()
    corrector.mode = original
    return results


def has_labels(samples) -> bool:
    return any((s.keypoints[:, 2] > 0).any() for s in samples)


def adapt_on(corrector: SCAICorrector, samples, *, passes: int = 1) -> int:
    """Test-time training of C over unlabeled samples (predictions discarded); returns the batches seen."""
    corrector.mode = "tta"
    before = len(corrector.tta.history)
    for _ in range(passes):
        for _ in corrector.predict_samples(samples):
            pass
    return len(corrector.tta.history) - before


def adapt(source, target: str, out, *, val: str | None = None, epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, seed: int | None = None, **options) -> dict:
    """Train SCAI's networks for the pose checkpoint ``source``, adapt C to an unlabelled ``target``, evaluate.

    ``epochs``, ``batch_size``, ``lr``, ``seed``: None -> :data:`ADAPT_DEFAULTS`. ``options``
    (:data:`ADAPT_OPTIONS`): ``checkpoint`` (a trained SCAI checkpoint: skip training), ``train`` (labeled spec
    to train on), ``modes`` (evaluated, default ["none", "correct", "tta"]), ``adapt_passes`` (1), ``limit``
    (first N val samples), ``no_flip``, and :func:`train_scai`'s options (``width``, ``max_offset``,
    ``feedback_weight``, ``tta_steps``, ``tta_lr``, ``tta_weighting``, ``episodic``, ``augment``, ``design``,
    ``workers``, ``max_iters``, ``weight_decay``).

    SCAI's networks are trained on *labeled* data (in the paper: the pose model's own training set):

    * ``target`` has labels -> the nets are trained on ``target`` -> ``OUT/scai.pt``;
    * ``target`` has none -> they are trained on ``options["train"]``, else on the training spec recorded in
      the pose checkpoint (``config.train.train``); then C is adapted to the unlabeled target by test-time
      training over its images (``adapt_passes`` passes) -> ``OUT/scai_adapted.pt``.

    With ``val``: metrics of each mode on ``val`` (and ``adapted``: the target-adapted C, mode "correct").
    The report is written to ``OUT/scai_eval.json`` and returned.
    """
    from posekit.data.formats import load_samples, parse_spec
    from posekit.inference.predictor import Predictor

    unknown = set(options) - ADAPT_OPTIONS
    if unknown:
        raise ValueError(f"unknown SCAI options {sorted(unknown)}; known: {sorted(ADAPT_OPTIONS)}")
    run = {k: ADAPT_DEFAULTS[k] if v is None else v
           for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    modes = tuple(options.pop("modes", MODES))
    if any(m not in MODES for m in modes):
        raise ValueError(f"modes must be from {MODES}, got {modes}")
    passes = int(options.pop("adapt_passes", 1))
    limit = options.pop("limit", None)
    flip = not options.pop("no_flip", False)
    given = options.pop("checkpoint", None)
    train_spec = options.pop("train", None)
    target_samples = load_samples(target)
    labeled = has_labels(target_samples)
    report: dict = {"source": str(source), "target": target, "target_labeled": labeled}

    if given:
        scai_path = Path(given)
        report["scai_checkpoint"] = str(scai_path)
    else:
        if train_spec is None:
            train_spec = target if labeled else recorded_training_data(source, target)
        scai_path = train_scai(source, train_spec, out, epochs=run["epochs"], batch_size=run["batch_size"],
                               lr=run["lr"], seed=run["seed"], progress=True, **options)
        report.update({"scai_checkpoint": str(scai_path), "trained_on": train_spec})
    predictor = Predictor.load(source, flip_test=flip, batch_size=run["batch_size"])
    corrector = SCAICorrector.wrap(predictor, scai_path, mode="correct")
    adapted_path = None
    if not labeled:  # adapt C to the unlabeled target by test-time training over its images
        t0 = time.time()
        batches = adapt_on(corrector, target_samples, passes=passes)
        nets, config = load_scai(scai_path)
        nets.correction.load_state_dict(corrector.nets.correction.state_dict())
        config = {**config, "adapted": {"target": target, "passes": passes, "batches": batches}}
        adapted_path = out / "scai_adapted.pt"
        save_checkpoint(adapted_path, scai_payload(nets, config))
        report["adapted"] = {"checkpoint": str(adapted_path), "batches": batches,
                             "seconds": round(time.time() - t0, 1)}
        corrector.reset()
    if val:
        val_samples = load_samples(val)
        if limit:
            val_samples = val_samples[:int(limit)]
        fmt, path, _ = parse_spec(val)
        coco_gt = path if fmt == "coco" and not limit else None
        results = evaluate_modes(corrector, val_samples, modes=modes, coco_gt=coco_gt)
        if adapted_path is not None:
            adapted = SCAICorrector.wrap(predictor, adapted_path, mode="correct")
            results["adapted"] = evaluate_modes(adapted, val_samples, modes=("correct",), coco_gt=coco_gt)["correct"]
        report["val"] = val
        report["results"] = results
    report_path = out / "scai_eval.json"
    report_path.write_text(dumps_strict(report, indent=2) + "\n")
    return report


def recorded_training_data(source, target: str) -> str:
    """The labelled data spec the pose checkpoint ``source`` records it was trained on."""
    train_spec = load_checkpoint(source)["config"].get("train", {}).get("train")
    if not train_spec:
        raise ValueError(f"target {target} has no labels and {source} records no training "
                         f"data: give labeled data with --scai-kwargs '{{\"train\": \"SPEC\"}}'")
    log.info("target is unlabeled: SCAI nets trained on the pose model's training data %s", train_spec)
    return train_spec


def format_results(results: dict) -> str:
    keys = ("pck@0.2_torso", "pck@0.05_box", "distal_pck@0.2_torso", "distal_pck@0.05_box", "AP")
    keys = [k for k in keys if any(k in r for r in results.values())]
    lines = ["| SCAI | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for mode, r in results.items():
        cells = [("-" if r.get(k) is None or not math.isfinite(r[k]) else f"{100 * r[k]:.2f}") for k in keys]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
