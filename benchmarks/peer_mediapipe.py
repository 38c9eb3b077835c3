"""MediaPipe BlazePose (lite / full / heavy) side by side with a posekit checkpoint on LSPET val.

One run scores every method on the same images (the fixed LSPET val split: image number % 10 == 0)
and writes ``benchmarks/results/peer_mediapipe.json`` and ``.md``:

* PCK@0.2 (torso) over the 12 joints both skeletons have (shoulders, elbows, wrists, hips, knees,
  ankles; not neck, not head top), visible ground-truth joints only;
* detection failures: BlazePose finds the person itself on the whole image; an image where it finds
  nobody counts as a failure and all its joints count as wrong. posekit is top-down and is handed the
  box of the annotated joints (posekit's evaluation protocol), so it never misses - the table says so;
* latency per image (median / p90 ms, one image at a time, image decoding excluded) on this machine
  under the thread settings of ``--threads``.

It runs in a separate venv (see ``benchmarks/README_peer_mediapipe.md``) and never downloads a model
at run time: the lite / heavy landmark models come from ``--mediapipe-models DIR`` (the npm package
``@mediapipe/pose``; ``--npm-fetch`` runs ``npm pack`` into DIR when the files are missing) and are
copied into the installed ``mediapipe`` package, where the legacy ``mp.solutions.pose`` API looks.

    /work/mpvenv/bin/python benchmarks/peer_mediapipe.py --mediapipe-models ~/.cache/posekit/mediapipe \\
        --npm-fetch --checkpoint zoo/lspet_compact.pt [--checkpoint zoo/lspet_teacher.pt] [--limit 50] [--threads 1]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

NPM_PACKAGE = "@mediapipe/pose@0.5.1675469404"
VARIANTS = ("lite", "full", "heavy")
MODEL_COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}
DEFAULT_DATA = "lsp:/work/shared/datasets/lspet@val"

#: LSP joints 0..11 (right ankle ... left wrist) -> BlazePose landmark index. LSP's neck (12) and head
#: top (13) have no BlazePose counterpart. Both skeletons name sides from the person's point of view.
LSP_TO_BLAZEPOSE = (28, 26, 24, 23, 25, 27, 16, 14, 12, 11, 13, 15)
SHARED_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
                 "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist")
NUM_SHARED = len(SHARED_JOINTS)
# Indices in LSP order (the first 12 LSP joints are exactly the shared ones, in the same order).
L_SHOULDER, R_HIP, R_SHOULDER, L_HIP = 9, 2, 8, 3


# -- thread settings ----------------------------------------------------------------------------------
def limit_threads(threads: int) -> list[int]:
    """Pin this process to ``threads`` CPUs (before any thread pool exists) and return them.

    MediaPipe's Python API has no thread option: its XNNPACK delegate runs one thread per model on
    Linux desktop builds, but its graph runs calculators on a pool of scheduler threads. Pinning the
    process bounds both MediaPipe and PyTorch by the same number of cores.
    """
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"--threads {threads}: only {len(allowed)} CPUs are available to this process")
    cpus = allowed[:threads]
    os.sched_setaffinity(0, cpus)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    return cpus


# -- MediaPipe models ---------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npm_fetch(models_dir: Path, package: str = NPM_PACKAGE) -> None:
    """``npm pack`` the BlazePose web package into ``models_dir`` and extract its landmark .tflite files.

    npm is a package registry client; nothing is fetched from a model hub.
    """
    if shutil.which("npm") is None:
        raise RuntimeError("--npm-fetch needs npm on PATH (apt-get install npm), or put the .tflite files "
                           f"into {models_dir} by hand (see benchmarks/README_peer_mediapipe.md)")
    models_dir.mkdir(parents=True, exist_ok=True)
    print(f"npm pack {package} -> {models_dir}", file=sys.stderr)
    done = subprocess.run(["npm", "pack", package, "--pack-destination", str(models_dir)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {package} failed:\n{done.stderr.strip()}")
    tarball = models_dir / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        for variant in VARIANTS:
            name = f"pose_landmark_{variant}.tflite"
            member = archive.extractfile(f"package/{name}")  # by exact name: no path from the archive is trusted
            if member is None:
                raise RuntimeError(f"{tarball} has no package/{name}")
            with open(models_dir / name, "wb") as out:
                shutil.copyfileobj(member, out)


def install_landmark_models(variants, models_dir: Path | None, npm: bool) -> dict[str, dict]:
    """Make ``pose_landmark_<variant>.tflite`` present inside the installed mediapipe package.

    The wheel ships only ``full``; ``mp.solutions.pose`` would download the others from a model hub on
    first use. Copying them from ``models_dir`` first (and refusing any download, see
    :func:`forbid_downloads`) keeps the benchmark offline. Returns ``{variant: {path, sha256, source}}``.
    """
    import mediapipe

    package_dir = Path(mediapipe.__file__).parent / "modules" / "pose_landmark"
    if npm and models_dir is None:
        raise ValueError("--npm-fetch needs --mediapipe-models DIR to unpack into")
    if npm and any(not (models_dir / f"pose_landmark_{v}.tflite").is_file() for v in variants):
        npm_fetch(models_dir)
    info = {}
    for variant in variants:
        name = f"pose_landmark_{variant}.tflite"
        target = package_dir / name
        source = models_dir / name if models_dir is not None else None
        if target.is_file():
            if source is not None and source.is_file() and sha256(source) != sha256(target):
                raise ValueError(f"{target} (installed) differs from {source}; delete one of them so that it is "
                                 "clear which model is benchmarked")
            origin = "installed package"
        else:
            if source is None or not source.is_file():
                raise FileNotFoundError(
                    f"{name} is not in the mediapipe package and not in --mediapipe-models "
                    f"({models_dir}); run with --npm-fetch, or: npm pack {NPM_PACKAGE} && tar -xzf "
                    f"mediapipe-pose-*.tgz && pass --mediapipe-models package/")
            shutil.copyfile(source, target)
            origin = str(source)
        info[variant] = {"path": str(target), "sha256": sha256(target), "source": origin}
    return info


def forbid_downloads() -> None:
    """Make mediapipe's on-demand model download an error instead of a network request."""
    from mediapipe.python.solutions import download_utils

    def refuse(model_path: str):
        full = Path(download_utils.__file__).parents[3] / model_path
        if not full.exists():
            raise RuntimeError(f"mediapipe wants to download {model_path}; this benchmark never downloads "
                               "models: pass the file with --mediapipe-models")

    download_utils.download_oss_model = refuse


class BlazePose:
    """One BlazePose variant in static-image mode: person detection + landmarks on every image."""

    def __init__(self, variant: str, min_detection_confidence: float = 0.5):
        import mediapipe as mp

        self.variant = variant
        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=MODEL_COMPLEXITY[variant],
                                           smooth_landmarks=False, enable_segmentation=False,
                                           min_detection_confidence=min_detection_confidence)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """image: (H, W, 3) uint8 RGB -> (12, 2) shared joints in LSP order, image pixels; None = no person."""
        result = self.pose.process(image)
        if result.pose_landmarks is None:
            return None
        height, width = image.shape[:2]
        landmarks = result.pose_landmarks.landmark
        return np.array([[landmarks[i].x * width, landmarks[i].y * height] for i in LSP_TO_BLAZEPOSE])

    def close(self) -> None:
        self.pose.close()


# -- scoring ------------------------------------------------------------------------------------------
def torso_sizes(visible: np.ndarray, coords: np.ndarray, fallback: bool) -> np.ndarray:
    """Reference length per image for PCK: ||left shoulder - right hip|| of the ground truth.

    visible: (N, 14) bool; coords: (N, 14, 2). LSPET stores no position for a joint it marks not
    visible, so the torso is undefined (NaN) unless both joints are visible. ``fallback=True`` then
    uses the other diagonal, ||right shoulder - left hip||, when both of those are visible.
    Returns (N,) float, NaN where undefined.
    """
    def diagonal(a, b):
        length = np.linalg.norm(coords[:, a] - coords[:, b], axis=1)
        return np.where(visible[:, a] & visible[:, b], length, np.nan)

    sizes = diagonal(L_SHOULDER, R_HIP)
    if fallback:
        sizes = np.where(np.isnan(sizes), diagonal(R_SHOULDER, L_HIP), sizes)
    return sizes


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, ref: np.ndarray, alpha: float = 0.2) -> dict:
    """PCK over visible ground-truth joints of images whose reference length is defined.

    pred, gt: (N, J, 2) pixels, pred NaN where a method gave nothing (a missed detection counts as
    wrong); visible: (N, J) bool; ref: (N,) reference length, NaN = image left out.
    Returns {"pck", "per_joint" (J,), "n_joints", "n_images"}.
    """
    if not (pred.shape == gt.shape and gt.shape[:2] == visible.shape and ref.shape == gt.shape[:1]):
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt {gt.shape}, visible {visible.shape}, ref {ref.shape}")
    scored = visible & np.isfinite(ref)[:, None] & (ref > 0)[:, None]
    dist = np.linalg.norm(pred - gt, axis=2)
    correct = np.zeros_like(scored)
    np.less_equal(dist, alpha * ref[:, None], out=correct, where=scored & np.isfinite(dist))
    per_joint_total = scored.sum(axis=0)
    per_joint = np.divide(correct.sum(axis=0), per_joint_total, out=np.full(gt.shape[1], np.nan),
                          where=per_joint_total > 0)
    total = int(scored.sum())
    return {"pck": float(correct.sum() / total) if total else float("nan"),
            "per_joint": [round(float(v), 4) for v in per_joint],
            "n_joints": total, "n_images": int(scored.any(axis=1).sum())}


def score(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, detected: np.ndarray) -> dict:
    """All PCK variants of one method. pred: (N, 12, 2); gt: (N, 14, 2); visible: (N, 14); detected: (N,)."""
    gt12, vis12 = gt[:, :NUM_SHARED], visible[:, :NUM_SHARED]
    strict = torso_sizes(visible, gt, fallback=False)
    either = torso_sizes(visible, gt, fallback=True)
    only_detected = np.where(detected, strict, np.nan)
    return {"pck_torso": pck(pred, gt12, vis12, strict),
            "pck_torso_fallback": pck(pred, gt12, vis12, either),
            "pck_torso_detected_only": pck(pred, gt12, vis12, only_detected)}


def latency_summary(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "mean_ms": round(float(ms.mean()), 2)}


# -- runs ---------------------------------------------------------------------------------------------
class Progress:
    """One line to stderr every ``every`` images: count, rate, time left."""

    def __init__(self, name: str, total: int, every: int = 50):
        self.name, self.total, self.every, self.start = name, total, every, time.perf_counter()

    def step(self, done: int, extra: str = "") -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.total - done)
        print(f"[{self.name}] {done}/{self.total} images, {elapsed:.0f} s, ~{left:.0f} s left {extra}",
              file=sys.stderr, flush=True)


def run_blazepose(variant: str, samples, read_image, min_detection_confidence: float) -> dict:
    """Predictions (N, 12, 2) with NaN rows for misses, per-image latency, missed file names."""
    model = BlazePose(variant, min_detection_confidence)
    try:
        model(read_image(samples[0].image_path))  # warm-up: graph start and delegate set-up are not timed
        preds = np.full((len(samples), NUM_SHARED, 2), np.nan)
        times, missed = [], []
        progress = Progress(f"blazepose-{variant}", len(samples))
        for i, sample in enumerate(samples):
            image = read_image(sample.image_path)
            start = time.perf_counter()
            joints = model(image)
            times.append(time.perf_counter() - start)
            if joints is None:
                missed.append(sample.file_name)
            else:
                preds[i] = joints
            progress.step(i + 1, f"({len(missed)} missed)")
    finally:
        model.close()
    return {"preds": preds, "times": times, "missed": missed}


def run_posekit(checkpoint: Path, samples, read_image, flip_test: bool) -> tuple[dict, dict]:
    """posekit on the annotated-joint box of each sample, one image (one box) per call."""
    from posekit.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, flip_test=flip_test, batch_size=2)
    if predictor.num_keypoints != 14:
        raise ValueError(f"{checkpoint}: the model predicts {predictor.num_keypoints} joints; this benchmark needs "
                         "an LSP (14-joint) checkpoint")
    predictor.predict(read_image(samples[0].image_path), samples[0].box[None])  # warm-up
    preds = np.full((len(samples), NUM_SHARED, 2), np.nan)
    times = []
    progress = Progress("posekit", len(samples))
    for i, sample in enumerate(samples):
        image = read_image(sample.image_path)
        start = time.perf_counter()
        keypoints = predictor.predict(image, sample.box[None])
        times.append(time.perf_counter() - start)
        preds[i] = keypoints[0, :NUM_SHARED, :2]
        progress.step(i + 1)
    info = {"checkpoint": str(checkpoint), "flip_test": flip_test, "input_size": list(predictor.input_size),
            "padding": predictor.padding, "model": predictor.config.get("model", {}).get("name")}
    return {"preds": preds, "times": times, "missed": []}, info


# -- report -------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    rows = result["methods"]
    first = rows[0]["metrics"]
    n = result["n_images"]
    lines = [
        f"# MediaPipe BlazePose vs posekit on LSPET val ({n} images{', --limit run' if result['limit'] else ''})",
        "",
        f"PCK@0.2 (torso) over the {NUM_SHARED} joints both skeletons share, visible ground-truth joints only. "
        f"Torso = ||left shoulder - right hip|| of the ground truth; LSPET has no position for a joint it marks "
        f"not visible, so images without both are left out of the main column "
        f"({first['pck_torso']['n_images']} of {n} scored); the 'diagonal fallback' column uses "
        f"||right shoulder - left hip|| for those when both are visible ({first['pck_torso_fallback']['n_images']} "
        f"scored). A missed detection counts all its joints as wrong.",
        "",
        "**Caveat: the protocols differ.** BlazePose detects the person on the whole image by itself; "
        "posekit is top-down and is given the box of the annotated joints (its evaluation protocol), so it "
        "cannot miss and also gets the person's scale for free. The 'detected only' column scores BlazePose "
        "on the images where it found someone.",
        "",
        "| method | person box | PCK@0.2 torso | PCK@0.2 diagonal fallback | PCK@0.2 detected only | "
        "detection failures | median ms / image | p90 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m = row["metrics"]
        failures = row["detection_failures"]
        lines.append(
            f"| {row['name']} | {row['box']} | {fmt(m['pck_torso']['pck'])} | {fmt(m['pck_torso_fallback']['pck'])} | "
            f"{fmt(m['pck_torso_detected_only']['pck'])} | {failures} ({100 * failures / n:.1f}%) | "
            f"{row['latency']['median_ms']:.1f} | {row['latency']['p90_ms']:.1f} |")
    env = result["environment"]
    lines += [
        "",
        f"Latency: one image per call (batch 1), image decoding excluded, after one untimed warm-up call; "
        f"process pinned to {env['threads']} CPU(s) {env['cpus']} of {env['cpu_count']} "
        f"({env['cpu_model']}); torch.set_num_threads({env['threads']}); MediaPipe's XNNPACK uses its "
        f"Linux default of one thread per model. BlazePose time covers detection + landmarks; posekit time "
        f"covers crop, network{' (with flip test: two crops)' if any(m.get('flip_test') for m in result.get('posekit') or []) else ''}, "
        f"decoding and mapping back.",
        f"mediapipe {env['mediapipe']} (legacy `mp.solutions.pose`, static image mode, "
        f"min_detection_confidence {result['min_detection_confidence']}), torch {env['torch']}, "
        f"numpy {env['numpy']}, Python {env['python']}.",
        "",
    ]
    return "\n".join(lines)


def environment(cpus: list[int], threads: int) -> dict:
    import mediapipe

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"threads": threads, "cpus": cpus, "cpu_count": os.cpu_count(), "cpu_model": cpu_model,
            "mediapipe": mediapipe.__version__, "torch": torch_version, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mediapipe-models", type=Path, default=None,
                        help="folder with pose_landmark_{lite,heavy}.tflite (from the npm package "
                             f"{NPM_PACKAGE}); copied into the installed mediapipe package if missing there")
    parser.add_argument("--npm-fetch", action="store_true",
                        help=f"run `npm pack {NPM_PACKAGE}` into --mediapipe-models when its files are missing")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="BlazePose variants, comma separated")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="posekit LSP checkpoint (.pt); repeat for several; omit to run only MediaPipe")
    parser.add_argument("--no-flip", action="store_true", help="posekit without flip test")
    parser.add_argument("--data", default=DEFAULT_DATA, help="posekit data spec (LSP skeleton)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only (quick run)")
    parser.add_argument("--threads", type=int, default=1, help="CPUs the process is pinned to and torch threads")
    parser.add_argument("--min-detection-confidence", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "peer_mediapipe",
                        help="output path without extension: writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    for checkpoint in args.checkpoint:
        if not checkpoint.is_file():
            parser.error(f"checkpoint not found: {checkpoint}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cpus = limit_threads(args.threads)  # before torch / mediapipe start any thread

    import torch
    from posekit.data.formats import load_samples
    from posekit.data.io import read_image

    torch.set_num_threads(args.threads)
    samples = load_samples(args.data)
    if samples and samples[0].skeleton != "lsp":
        raise ValueError(f"{args.data}: skeleton {samples[0].skeleton!r}; this benchmark scores LSP joints")
    if args.limit is not None:
        samples = samples[:args.limit]
    if not samples:
        raise ValueError(f"{args.data}: no samples")
    gt = np.stack([s.keypoints[:, :2] for s in samples]).astype(np.float64)
    visible = np.stack([s.keypoints[:, 2] > 0 for s in samples])
    print(f"{len(samples)} images from {args.data}; threads {args.threads} (CPUs {cpus})", file=sys.stderr)

    model_info = install_landmark_models(args.variants, args.mediapipe_models, args.npm_fetch)
    forbid_downloads()

    methods, posekit_info = [], []
    for variant in args.variants:
        run = run_blazepose(variant, samples, read_image, args.min_detection_confidence)
        methods.append({"name": f"BlazePose {variant}", "box": "own detector", "model": model_info[variant],
                        "run": run})
    for checkpoint in args.checkpoint:
        run, info = run_posekit(checkpoint, samples, read_image, flip_test=not args.no_flip)
        posekit_info.append(info)
        methods.append({"name": f"posekit {checkpoint.name}", "box": "GT joints (given)", "model": info, "run": run})

    rows = []
    for method in methods:
        run = method.pop("run")
        detected = np.isfinite(run["preds"]).all(axis=(1, 2))
        rows.append({**method, "metrics": score(run["preds"], gt, visible, detected),
                     "detection_failures": len(run["missed"]), "missed_files": run["missed"],
                     "latency": latency_summary(run["times"])})
    result = {"benchmark": "MediaPipe BlazePose vs posekit, LSPET val", "data": args.data, "limit": args.limit,
              "n_images": len(samples), "alpha": 0.2, "joints": list(SHARED_JOINTS),
              "min_detection_confidence": args.min_detection_confidence, "posekit": posekit_info,
              "environment": environment(cpus, args.threads), "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown(result))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
