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

    ../mpvenv/bin/python benchmarks/peer_mediapipe.py --mediapipe-models ~/.cache/posekit/mediapipe \\
        --npm-fetch --checkpoint zoo/lspet_compact.pt [--checkpoint zoo/lspet_teacher.pt] [--limit 50] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from common import Progress, cpu_model, resolve_spec, environment, latency_ms, table, write_results
from posekit.data.io import file_sha256  # (NumPy and PIL only: no thread pool starts before limit_threads)

NPM_PACKAGE = "@mediapipe/pose@0.5.1675469404"
VARIANTS = ("lite", "full", "heavy")
MODEL_COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}
DEFAULT_DATA = "lsp:../shared/datasets/lspet@val"  # relative to the repository root
ALPHA = 0.2

#: The joints are those of :data:`posekit.zoo.LSP_SHARED_WITH_BLAZEPOSE` (LSP's 14 less neck and head top), by name:
#: BlazePose's landmark of an LSP joint is ``mediapipe.solutions.pose.PoseLandmark[NAME.upper()]`` (both skeletons
#: name sides from the person's point of view). Scores come from :func:`posekit.metrics.pck` on the LSP skeleton.


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
            if source is not None and source.is_file() and file_sha256(source) != file_sha256(target):
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
        info[variant] = {"path": str(target), "sha256": file_sha256(target), "source": origin}
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

    def __init__(self, variant: str, joints, min_detection_confidence: float = 0.5):
        import mediapipe as mp
        from posekit.skeletons import LSP

        self.variant, self.num_keypoints = variant, LSP.num_keypoints
        #: (LSP index, BlazePose landmark index) of every shared joint, matched by name
        self.landmarks = [(LSP.index(name), mp.solutions.pose.PoseLandmark[name.upper()].value) for name in joints]
        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=MODEL_COMPLEXITY[variant],
                                           smooth_landmarks=False, enable_segmentation=False,
                                           min_detection_confidence=min_detection_confidence)

    def __call__(self, image: np.ndarray, sample=None) -> np.ndarray | None:
        """image: (H, W, 3) uint8 RGB -> (14, 2) LSP joints in image pixels (NaN where BlazePose has no such
        landmark); None = no person. The whole image: BlazePose finds the person itself."""
        result = self.pose.process(image)
        if result.pose_landmarks is None:
            return None
        height, width = image.shape[:2]
        landmarks = result.pose_landmarks.landmark
        joints = np.full((self.num_keypoints, 2), np.nan)
        for k, i in self.landmarks:
            joints[k] = [landmarks[i].x * width, landmarks[i].y * height]
        return joints

    def close(self) -> None:
        self.pose.close()


# -- scoring ------------------------------------------------------------------------------------------
def score(pred: np.ndarray, gt: np.ndarray, joints, detected: np.ndarray) -> dict:
    """All PCK@0.2 variants of one method over the visible ground-truth joints ``joints`` (names) of the people
    whose reference length is defined. pred: (N, 14, 2) LSP joints in pixels, NaN where a method gave nothing (a
    miss); gt: (N, 14, 3); detected: (N,). Each variant: {"pck", "per_joint" (``joints`` order), "n_joints",
    "n_images"}.

    Torso = ||left shoulder - right hip|| of the ground truth (:func:`posekit.metrics.torso_lengths`). LSPET stores
    no position for a joint it marks not visible, so it is undefined unless both are visible; the fallback uses
    the other diagonal, ||right shoulder - left hip||, for those people when both of its joints are visible.
    """
    from posekit.metrics import pck, segment_lengths, torso_lengths
    from posekit.skeletons import LSP

    index = [LSP.index(name) for name in joints]

    def variant(norm: np.ndarray) -> dict:
        r = pck(pred, gt, norm, ALPHA, joints=index)
        return {"pck": r["overall"], "per_joint": [round(float(r["per_joint"][j]), 4) for j in index],
                "n_joints": int(r["counted"].sum()), "n_images": r["n_people"]}

    strict = torso_lengths(gt, LSP)
    either = np.where(np.isnan(strict), segment_lengths(gt, LSP, "right_shoulder", "left_hip"), strict)
    return {"pck_torso": variant(strict), "pck_torso_fallback": variant(either),
            "pck_torso_detected_only": variant(np.where(detected, strict, np.nan))}


# -- runs ---------------------------------------------------------------------------------------------
def timed_run(name: str, predict, samples, read_image, show_misses: bool = False) -> dict:
    """``predict(image, sample) -> (14, 2) | None`` on every sample, one image per call, after one untimed warm-up
    call (graph start and delegate set-up are not timed); image decoding is not timed either.
    Returns predictions (N, 14, 2) with NaN rows for misses, per-image seconds, missed file names."""
    predict(read_image(samples[0].image_path), samples[0])
    preds = np.full((len(samples), 14, 2), np.nan)
    times, missed = [], []
    progress = Progress(name, len(samples))
    for i, sample in enumerate(samples):
        image = read_image(sample.image_path)
        start = time.perf_counter()
        joints = predict(image, sample)
        times.append(time.perf_counter() - start)
        if joints is None:
            missed.append(sample.file_name)
        else:
            preds[i] = joints
        progress.step(i + 1, f"({len(missed)} missed)" if show_misses else "")
    return {"preds": preds, "times": times, "missed": missed}


def run_blazepose(variant: str, joints, samples, read_image, min_detection_confidence: float) -> dict:
    """BlazePose on the whole image of each sample (:func:`timed_run`)."""
    model = BlazePose(variant, joints, min_detection_confidence)
    try:
        return timed_run(f"blazepose-{variant}", model, samples, read_image, show_misses=True)
    finally:
        model.close()


def run_posekit(checkpoint: Path, samples, read_image, flip_test: bool) -> tuple[dict, dict]:
    """posekit on the annotated-joint box of each sample, one image (one box) per call."""
    from posekit.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, flip_test=flip_test, batch_size=2)
    if predictor.num_keypoints != 14:
        raise ValueError(f"{checkpoint}: the model predicts {predictor.num_keypoints} joints; this benchmark needs "
                         "an LSP (14-joint) checkpoint")
    run = timed_run("posekit", lambda image, sample: predictor.predict(image, sample.box[None])[0, :, :2], samples,
                    read_image)
    info = {"checkpoint": str(checkpoint), "flip_test": flip_test, "input_size": list(predictor.input_size),
            "padding": predictor.padding, "model": predictor.config.get("model", {}).get("name")}
    return run, info


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
        f"PCK@0.2 (torso) over the {len(result['joints'])} joints both skeletons share, visible ground-truth joints "
        "only. "
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
        *table(["method", "person box", "PCK@0.2 torso", "PCK@0.2 diagonal fallback", "PCK@0.2 detected only",
                "detection failures", "median ms / image", "p90 ms"],
               [[row["name"], row["box"], fmt(row["metrics"]["pck_torso"]["pck"]),
                 fmt(row["metrics"]["pck_torso_fallback"]["pck"]),
                 fmt(row["metrics"]["pck_torso_detected_only"]["pck"]),
                 f"{row['detection_failures']} ({100 * row['detection_failures'] / n:.1f}%)",
                 f"{row['latency']['median_ms']:.1f}", f"{row['latency']['p90_ms']:.1f}"] for row in rows]),
    ]
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


def peer_environment(cpus: list[int], threads: int) -> dict:
    return environment("threads", "cpus", "cpu_count", "cpu_model", "mediapipe", "torch", "numpy", "python",
                       "platform", threads=threads, cpus=cpus, cpu_count=os.cpu_count(), cpu_model=cpu_model("unknown"))


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
    from posekit.skeletons import LSP
    from posekit.zoo import LSP_SHARED_WITH_BLAZEPOSE as joints

    torch.set_num_threads(args.threads)
    samples = load_samples(resolve_spec(args.data))
    if samples and samples[0].skeleton != "lsp":
        raise ValueError(f"{args.data}: skeleton {samples[0].skeleton!r}; this benchmark scores LSP joints")
    if args.limit is not None:
        samples = samples[:args.limit]
    if not samples:
        raise ValueError(f"{args.data}: no samples")
    gt = np.stack([s.keypoints for s in samples]).astype(np.float64)  # (N, 14, 3): x, y, visible
    print(f"{len(samples)} images from {args.data}; threads {args.threads} (CPUs {cpus})", file=sys.stderr)

    model_info = install_landmark_models(args.variants, args.mediapipe_models, args.npm_fetch)
    forbid_downloads()

    methods, posekit_info = [], []
    for variant in args.variants:
        run = run_blazepose(variant, joints, samples, read_image, args.min_detection_confidence)
        methods.append({"name": f"BlazePose {variant}", "box": "own detector", "model": model_info[variant],
                        "run": run})
    for checkpoint in args.checkpoint:
        run, info = run_posekit(checkpoint, samples, read_image, flip_test=not args.no_flip)
        posekit_info.append(info)
        methods.append({"name": f"posekit {checkpoint.name}", "box": "GT joints (given)", "model": info, "run": run})

    shared = [LSP.index(name) for name in joints]
    rows = []
    for method in methods:
        run = method.pop("run")
        detected = np.isfinite(run["preds"][:, shared]).all(axis=(1, 2))
        rows.append({**method, "metrics": score(run["preds"], gt, joints, detected),
                     "detection_failures": len(run["missed"]), "missed_files": run["missed"],
                     "latency": latency_ms(run["times"], digits=2, mean=True)})
    result = {"benchmark": "MediaPipe BlazePose vs posekit, LSPET val", "data": args.data, "limit": args.limit,
              "n_images": len(samples), "alpha": ALPHA, "joints": list(joints),
              "min_detection_confidence": args.min_detection_confidence, "posekit": posekit_info,
              "environment": peer_environment(cpus, args.threads), "methods": rows}
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    write_results(result, json_path, markdown(result))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
