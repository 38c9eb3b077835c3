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

Outputs (``out`` folder): ``robustness.json`` (everything), ``robustness.md`` (the table),
``robustness.png`` (corruption x severity heat map) and ``conditions.jsonl`` (finished conditions, so an
interrupted run resumes where it stopped; reused only for the same checkpoint, data, subset and seed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from posekit.data.corruptions import CORRUPTIONS, corrupt
from posekit.data.formats import load_samples, parse_spec
from posekit.data.io import load_json, read_image
from posekit.data.sample import DataError, Sample
from posekit.metrics import SEVERITIES, robustness_summary

log = logging.getLogger(__name__)

CLEAN = "clean"


# -- options -------------------------------------------------------------------------------------
def parse_corruptions(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'all' / None -> the 15 corruptions; 'fog,snow' -> ('fog', 'snow') in the given order."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return CORRUPTIONS
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(f"unknown corruption(s) {unknown or names}; expected 'all' or names from: {', '.join(CORRUPTIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"corruption listed twice: {names}")
    return tuple(names)


def parse_severities(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """'1,2,3,4,5' / None -> (1, 2, 3, 4, 5); sorted, each in 1..5."""
    if text is None:
        return SEVERITIES
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    except ValueError:
        raise ValueError(f"severities must be integers 1-5 separated by commas, got {text!r}") from None
    if not values or any(not 1 <= v <= 5 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"severities must be distinct integers in 1..5, got {text!r}")
    return tuple(sorted(values))


def image_seed(seed: int, index: int, corruption: str, severity: int) -> int:
    """The corruption seed of the ``index``-th image: a hash of (seed, index, corruption, severity)."""
    entropy = [int(seed), int(index), CORRUPTIONS.index(corruption), int(severity)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def condition_name(corruption: str, severity: int) -> str:
    return f"{corruption}/{severity}"


def default_metric(fmt: str, samples: Sequence[Sample]) -> str:
    """OKS AP for COCO data; PCK@0.2 (torso) otherwise (LSP, MPII and folders with a known skeleton)."""
    from posekit.skeletons import SKELETONS
    if fmt == "coco":
        return "AP"
    if samples and samples[0].skeleton not in SKELETONS:
        raise ValueError(f"no PCK for skeleton {samples[0].skeleton!r}: give COCO data (OKS AP) or --metric")
    return "pck@0.2_torso"


# -- data ----------------------------------------------------------------------------------------
def image_indices(samples: Iterable[Sample]) -> dict[str, int]:
    """image path -> its index: distinct images numbered in order of first appearance."""
    index: dict[str, int] = {}
    for s in samples:
        index.setdefault(s.image_path, len(index))
    return index


def limit_images(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The samples of the first ``limit`` distinct images (all people of those images), reader order kept."""
    if limit is None:
        return samples
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    keep = {p for p, i in image_indices(samples).items() if i < limit}
    return [s for s in samples if s.image_path in keep]


def coco_ground_truth(ann_path, samples: Sequence[Sample]) -> dict:
    """The COCO json restricted to the images of ``samples`` (all their annotations, crowds included)."""
    data = load_json(ann_path)
    ids = {int(s.image_id) for s in samples}
    return {**data, "images": [e for e in data["images"] if int(e["id"]) in ids],
            "annotations": [a for a in data["annotations"] if int(a["image_id"]) in ids]}


def load_benchmark_samples(spec: str, limit: int | None = None) -> tuple[list[Sample], object]:
    """(samples of the first ``limit`` images, the COCO ground truth to score against or None)."""
    samples = limit_images(load_samples(spec), limit)
    if not samples:
        raise ValueError(f"no samples in {spec}")
    fmt, path, _ = parse_spec(spec)
    gt = None
    if fmt == "coco":
        gt = path if limit is None else coco_ground_truth(path, samples)
    return samples, gt


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
        image = read_image(sample.image_path)
        index = self.indices[sample.image_path]
        return corrupt(image, self.corruption, self.severity, image_seed(self.seed, index, self.corruption, self.severity))

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
    """mPC / rPC / per-corruption means. Complete tables (severities 1-5) go through
    :func:`posekit.metrics.robustness_summary`; partial ones get the same means, flagged incomplete."""
    complete = all(sorted(int(s) for s in row) == list(SEVERITIES) for row in table.values())
    if complete:
        return {**robustness_summary(clean, table), "complete": True}
    per_corruption = {name: float(np.mean([float(v) for v in row.values()])) for name, row in table.items()}
    mpc = float(np.mean(list(per_corruption.values())))
    return {"mPC": mpc, "rPC": mpc / clean if clean else math.nan, "per_corruption": per_corruption,
            "n_corruptions": len(per_corruption), "complete": False}


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{100 * value:.1f}"


def format_markdown(result: dict) -> str:
    """The per-corruption table: rows = corruptions, columns = severities and their mean (percent)."""
    severities = result["severities"]
    metric = result["metric"]
    lines = [f"Robustness of `{result.get('checkpoint') or 'model'}` on `{result['data']}`: {metric} (%), "
             f"{result['n_images']} images, {result['n_samples']} people, seed {result['seed']}."
             + (f" Scored on the {len(result['shared_joints'])} joints that the model's and the data's skeletons share "
                f"({', '.join(result['shared_joints'])})." if result.get("shared_joints") else ""), "",
             "| corruption | " + " | ".join(f"s{s}" for s in severities) + " | mean |",
             "|---|" + "---|" * (len(severities) + 1),
             "| clean | " + " | ".join("" for _ in severities) + f" | {_pct(result['clean'])} |"]
    for name, row in result["table"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(row.get(str(s))) for s in severities)
                     + f" | {_pct(result['per_corruption'][name])} |")
    if result["table"]:
        by_severity = [np.mean([row[str(s)] for row in result["table"].values()]) for s in severities]
        lines.append("| **mean** | " + " | ".join(_pct(float(v)) for v in by_severity) + f" | **{_pct(result['mPC'])}** |")
        note = "" if result["complete"] else f" (severities {','.join(map(str, severities))} only: not comparable " \
                                               "with five-severity mPC)"
        lines += ["", f"clean {_pct(result['clean'])} | mPC {_pct(result['mPC'])} | "
                      f"rPC {_pct(result['rPC'])}{note}"]
    return "\n".join(lines) + "\n"


def plot_table(result: dict, path) -> pathlib.Path:
    """Heat map of the metric, corruptions x severities, annotated; the title gives clean, mPC and rPC."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, severities = list(result["table"]), result["severities"]
    values = np.array([[result["table"][n][str(s)] for s in severities] for n in names], dtype=np.float64) * 100
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(severities), 1.2 + 0.38 * max(1, len(names))), dpi=120)
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=max(100 * result["clean"], np.nanmax(values), 1e-6),
                      aspect="auto")
    for i in range(len(names)):
        for j in range(len(severities)):
            ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] < 0.6 * image.norm.vmax else "black")
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title(f"{result['metric']} (%): clean {_pct(result['clean'])}, mPC {_pct(result['mPC'])}, "
                 f"rPC {_pct(result['rPC'])}", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# -- the benchmark -------------------------------------------------------------------------------
def file_fingerprint(path) -> str:
    """sha256 of a file (a checkpoint): cached conditions are reused only for the same weights."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def write_outputs(result: dict, out) -> dict[str, pathlib.Path]:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "robustness.json", "markdown": out / "robustness.md", "plot": out / "robustness.png"}
    _atomic_write(paths["json"], json.dumps(result, indent=2, default=float) + "\n")
    _atomic_write(paths["markdown"], format_markdown(result))
    plot_table(result, paths["plot"])
    return paths


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- materialising a -C dataset ------------------------------------------------------------------
def _write_image(path: pathlib.Path, image: np.ndarray) -> None:
    """RGB uint8 -> file, format from the extension; written atomically.

    JPEG at quality 95 without chroma subsampling (4:4:4): 4:2:0 would average away most of the colour
    noise corruptions (a mean error of ~19 grey levels on gaussian_noise instead of ~3).
    """
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    params = ([cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
              if ext in (".jpg", ".jpeg") else [])
    ok, data = cv2.imencode(ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") else ".png",
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def _relative_name(sample: Sample, fmt: str) -> str:
    name = sample.file_name or os.path.basename(sample.image_path)
    if fmt == "folder":
        return name
    parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
    if not parts or any(p in ("..", "") for p in parts) or pathlib.PurePath(name).is_absolute():
        raise DataError(sample.image_path, f"cannot place image name {name!r} inside the output folder")
    return str(pathlib.PurePosixPath(*parts))


def materialize(spec: str, out_dir, *, corruptions: Sequence[str] = CORRUPTIONS,
                severities: Sequence[int] = SEVERITIES, limit: int | None = None, seed: int = 0,
                progress: bool = False) -> dict:
    """Write the corrupted data set to disk, one folder per condition, in the source's own layout.

    * ``lsp:DIR`` -> ``OUT/<corruption>/<severity>/images/im*.jpg`` + a copy of ``joints.mat``;
    * ``coco:ANN.json`` -> ``OUT/<corruption>/<severity>/images/<file_name>`` + ``ANN.json`` restricted to
      the written images;
    * ``folder:DIR`` -> ``OUT/<corruption>/<severity>/<name>``.

    Pixels are those :func:`run_robustness` evaluates (same seeds), re-encoded in the source's format
    (JPEG quality 95, 4:4:4). Existing files are kept, so an interrupted run continues. Writes ``OUT/index.json``
    mapping each condition to its data spec. Returns that index.
    """
    corruptions, severities = parse_corruptions(list(corruptions)), parse_severities(list(severities))
    fmt, path_text, split = parse_spec(spec)
    if fmt not in ("lsp", "coco", "folder"):
        raise ValueError(f"--materialize supports lsp, coco and folder data, not {fmt}")
    samples = limit_images(load_samples(spec), limit)
    if not samples:
        raise ValueError(f"no samples in {spec}")
    indices = image_indices(samples)
    first = {}
    for s in samples:
        first.setdefault(s.image_path, s)
    out = pathlib.Path(out_dir)
    src = pathlib.Path(path_text)
    coco_json = coco_ground_truth(src, samples) if fmt == "coco" else None
    index = {"source": spec, "seed": int(seed), "limit": limit, "corruptions": list(corruptions),
             "severities": list(severities), "conditions": {}}
    jobs = [(c, s) for c in corruptions for s in severities]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs) * len(indices), desc="materialize", unit="img", file=sys.stderr, dynamic_ncols=True)
    for corruption, severity in jobs:
        cond_dir = out / corruption / str(severity)
        image_root = cond_dir if fmt == "folder" else cond_dir / "images"
        for image_path, i in indices.items():
            target = image_root / _relative_name(first[image_path], fmt)
            if not target.exists():
                image = corrupt(read_image(image_path), corruption, severity, image_seed(seed, i, corruption, severity))
                _write_image(target, image)
            if bar is not None:
                bar.update()
        if fmt == "lsp":
            shutil.copyfile(src / "joints.mat", cond_dir / "joints.mat")
            cond_spec = f"lsp:{cond_dir}"
        elif fmt == "coco":
            _atomic_write(cond_dir / src.name, json.dumps(coco_json))
            cond_spec = f"coco:{cond_dir / src.name}"
        else:
            cond_spec = f"folder:{cond_dir}"
        index["conditions"][condition_name(corruption, severity)] = cond_spec
        if len(index["conditions"]) == 1 and fmt != "folder":
            # the copy must read back as the same people (e.g. an LSP subset whose joints columns follow
            # the image numbers); checked once, on the first condition
            found = len(load_samples(cond_spec))
            if found != len(samples):
                raise ValueError(f"{cond_spec} reads back as {found} people instead of {len(samples)}")
    if bar is not None:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "index.json", json.dumps(index, indent=2) + "\n")
    return index
