"""Corruption robustness benchmark (COCO-C / MPII-C style, Wang et al., CVPR 2021) for any data spec.

The ImageNet-C corruptions (:mod:`posekit.data.corruptions`) are applied to the **full image before the
person crop**, as the published -C datasets do (they corrupt the image files, then run the usual
pipeline). Every person in an image sees the same corrupted image.

Protocol
--------
* conditions: clean + every (corruption, severity);
* metric: PCK@0.2 (torso) on LSP-style data, OKS AP on COCO data (``--metric`` overrides);
* mPC = mean of the metric over corruptions and severities, rPC = mPC / clean
  (:func:`posekit.metrics.robustness_summary`; over a subset of severities the same means are reported
  and flagged ``"complete": false``, since they are not comparable with five-severity numbers);
* determinism: image ``i`` (the i-th distinct image of the data, in reader order) under corruption ``c``
  at severity ``s`` is corrupted with the seed :func:`image_seed` ``(seed, i, c, s)``, so a rerun, a
  subset run with ``limit`` and a materialised copy all see the same corrupted pixels (the copy up to
  JPEG re-encoding).

The clean row is computed by :func:`posekit.engine.evaluate.evaluate_samples` on the predictor itself,
exactly like ``posekit eval``; corrupted rows wrap the predictor so that its image reading returns the
corrupted image (:class:`CorruptedImages`), with the same crop batching.

Pieces elsewhere (all importable from here too): the per-image seeds, subsets and ``--materialize`` in
:mod:`posekit.data.corrupted`, mPC / rPC in :mod:`posekit.metrics.robustness`, the table, plot and files in
:mod:`posekit.engine.robustness_report`.

Outputs (``out`` folder): ``robustness.json`` (everything), ``robustness.md`` (the table),
``robustness.png`` (corruption x severity heat map) and ``conditions.jsonl`` (finished conditions, so an
interrupted run resumes where it stopped; reused only for the same checkpoint, data, subset and seed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from posekit.data.corrupted import (coco_ground_truth, condition_name, image_indices, image_seed, limit_images,
                                    load_benchmark_samples, materialize, parse_corruptions, parse_severities,
                                    read_corrupted)
from posekit.data.corruptions import CORRUPTIONS
from posekit.data.formats import parse_spec
from posekit.data.io import file_sha256
from posekit.data.sample import Sample
from posekit.engine.robustness_report import format_markdown, plot_table, write_outputs
from posekit.metrics.robustness import SEVERITIES, robustness_summary

__all__ = [
    "CLEAN", "CORRUPTIONS", "SEVERITIES", "CorruptedImages", "evaluate_condition", "run_robustness", "summarise",
    "default_metric", "file_fingerprint",
    # from posekit.data.corrupted
    "parse_corruptions", "parse_severities", "image_seed", "condition_name", "image_indices", "limit_images",
    "coco_ground_truth", "load_benchmark_samples", "materialize",
    # from posekit.engine.robustness_report
    "format_markdown", "plot_table", "write_outputs",
]

log = logging.getLogger(__name__)

CLEAN = "clean"


def default_metric(fmt: str, samples: Sequence[Sample]) -> str:
    """OKS AP for COCO data; PCK@0.2 (torso) otherwise (LSP, MPII and folders with a known skeleton)."""
    from posekit.skeletons import SKELETONS
    if fmt == "coco":
        return "AP"
    if samples and samples[0].skeleton not in SKELETONS:
        raise ValueError(f"no PCK for skeleton {samples[0].skeleton!r}: give COCO data (OKS AP) or --metric")
    return "pck@0.2_torso"


# -- corrupted inference -------------------------------------------------------------------------
class CorruptedImages:
    """Wraps a :class:`~posekit.inference.predictor.Predictor` so that every image it reads is corrupted.

    Duck-types what :func:`~posekit.engine.evaluate.evaluate_samples` uses (``num_keypoints``,
    ``predict_samples``): the predictor's own ``predict_samples`` with a reader that corrupts each image.
    """

    def __init__(self, predictor, corruption: str, severity: int, seed: int, indices: dict[str, int]):
        if corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {corruption!r}")
        self.predictor, self.corruption, self.severity, self.seed = predictor, corruption, int(severity), int(seed)
        self.indices = indices

    @property
    def num_keypoints(self) -> int:
        return self.predictor.num_keypoints

    @property
    def config(self) -> dict | None:
        return getattr(self.predictor, "config", None)

    def read(self, sample: Sample) -> np.ndarray:
        return read_corrupted(sample.image_path, self.corruption, self.severity, self.seed,
                              self.indices[sample.image_path])

    def predict_samples(self, samples: Iterable[Sample], on_error=None) -> Iterator[tuple[Sample, np.ndarray]]:
        return self.predictor.predict_samples(samples, on_error=on_error, read=self.read)


def evaluate_condition(predictor, samples: list[Sample], coco_gt, corruption: str | None = None, severity: int = 0,
                       seed: int = 0, indices: dict[str, int] | None = None) -> dict:
    """Metrics (as ``posekit eval`` reports them) on the clean images (corruption None) or one corruption."""
    from posekit.engine.evaluate import evaluate_samples
    if corruption is None:
        return evaluate_samples(predictor, samples, coco_gt=coco_gt)
    wrapped = CorruptedImages(predictor, corruption, severity, seed, indices or image_indices(samples))
    return evaluate_samples(wrapped, samples, coco_gt=coco_gt)


# -- summary -------------------------------------------------------------------------------------
def summarise(clean: float, table: dict[str, dict[int, float]]) -> dict:
    """mPC / rPC / per-corruption means with a ``complete`` flag: complete tables (severities 1-5) as
    :func:`posekit.metrics.robustness_summary` gives them; partial ones get the same means, flagged incomplete."""
    return robustness_summary(clean, table, partial=True)


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}


# -- the benchmark -------------------------------------------------------------------------------
def file_fingerprint(path) -> str:
    """sha256 of a file (a checkpoint): cached conditions are reused only for the same weights."""
    return file_sha256(path)


def _read_cache(path: pathlib.Path, key: str) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(record, dict) and record.get("key") == key and "condition" in record:
            done[record["condition"]] = record["metrics"]
    return done


def run_robustness(predictor, spec: str, *, corruptions: Sequence[str] = CORRUPTIONS,
                   severities: Sequence[int] = SEVERITIES, limit: int | None = None, seed: int = 0,
                   metric: str | None = None, out=None, fingerprint: str | None = None,
                   checkpoint: str | None = None, progress: bool = False,
                   on_condition: Callable[[str, dict], None] | None = None) -> dict:
    """Evaluate ``predictor`` on ``spec`` clean and under every corruption x severity.

    predictor: a :class:`~posekit.inference.predictor.Predictor` (torch or ONNX backend).
    limit: only the first ``limit`` distinct images. seed: base of the per-image corruption seeds.
    metric: key of the metrics dict to summarise (default :func:`default_metric`).
    out: folder for robustness.json / .md / .png and the resume cache ``conditions.jsonl``.
    fingerprint: identity of the weights (e.g. :func:`file_fingerprint`); without it nothing is reused.
    Returns the result dict written to robustness.json: ``clean``, ``table`` {corruption: {"severity": value}},
    ``mPC``, ``rPC``, ``per_corruption``, ``complete``, ``conditions`` {name: scalar metrics}, settings.
    """
    corruptions, severities = parse_corruptions(list(corruptions)), parse_severities(list(severities))
    fmt, _, _ = parse_spec(spec)
    samples, coco_gt = load_benchmark_samples(spec, limit)
    metric = metric or default_metric(fmt, samples)
    indices = image_indices(samples)
    codec = getattr(predictor, "codec", None)
    settings = {"data": spec, "limit": limit, "seed": int(seed), "flip_test": bool(getattr(predictor, "flip_test", True)),
                "codec": codec.to_config() if hasattr(codec, "to_config") else None}
    out = pathlib.Path(out) if out is not None else None
    cache_path, done = None, {}
    key = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if fingerprint is not None:
            key = hashlib.sha256(json.dumps({"weights": fingerprint, **settings}, sort_keys=True,
                                            default=str).encode()).hexdigest()[:16]
            cache_path = out / "conditions.jsonl"
            done = _read_cache(cache_path, key)
            if done:
                log.info("%s: reusing %d finished conditions", cache_path, len(done))

    conditions = [(None, 0)] + [(c, s) for c in corruptions for s in severities]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(conditions), desc="robustness", unit="cond", file=sys.stderr, dynamic_ncols=True)
    results: dict[str, dict] = {}
    for corruption, severity in conditions:
        name = CLEAN if corruption is None else condition_name(corruption, severity)
        if name in done:
            metrics = done[name]
        else:
            t0 = time.time()
            metrics = _scalars(evaluate_condition(predictor, samples, coco_gt, corruption, severity, seed, indices))
            metrics["seconds"] = round(time.time() - t0, 2)
            if metric not in metrics:
                raise ValueError(f"metric {metric!r} not computed on {spec}; available: "
                                 f"{sorted(k for k, v in metrics.items() if isinstance(v, float))}")
            if cache_path is not None:
                with open(cache_path, "a") as f:
                    f.write(json.dumps({"key": key, "condition": name, "metrics": metrics}) + "\n")
        results[name] = metrics
        if on_condition is not None:
            on_condition(name, metrics)
        if bar is not None:
            bar.update()
            bar.set_postfix_str(f"{name} {metric}={metrics[metric]:.3f}")
        else:
            log.info("%s: %s = %.4f", name, metric, metrics[metric])
    if bar is not None:
        bar.close()

    clean = float(results[CLEAN][metric])
    table = {c: {str(s): float(results[condition_name(c, s)][metric]) for s in severities} for c in corruptions}
    summary = summarise(clean, {c: {int(s): v for s, v in row.items()} for c, row in table.items()})
    from posekit.engine.evaluate import shared_with_model
    shared = shared_with_model(predictor, samples[0].skeleton)
    result = {"checkpoint": checkpoint, "data": spec, "metric": metric,
              "shared_joints": list(shared[0].keypoints) if shared else None,
              "seed": int(seed), "limit": limit,
              "n_images": len(indices), "n_samples": len(samples), "corruptions": list(corruptions),
              "severities": list(severities), "clean": clean, "table": table, **summary,
              "settings": settings, "conditions": results}
    if out is not None:
        write_outputs(result, out)
    return result
