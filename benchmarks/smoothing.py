"""Video smoothing: jitter and lag of EMA and One-Euro filters, on known motion.

Two experiments, each scored against the true track (:mod:`posekit.inference.smoothing`):

* **synthetic tracks** — :func:`~posekit.inference.smoothing.synthetic_track` (smooth sinusoidal motion of 14
  joints at 30 fps, plus i.i.d. Gaussian jitter of ``--jitter-px``), and stop-and-go motion (joints rest, then
  move about 50 px in 10 frames) with the same jitter;
* **real clips** — ``--clips`` LSPET val photos (the first ones with all 14 joints visible), each turned into a
  ``--frames``-frame 30 fps mp4 by translating the photo along a known smooth path; the model
  (``--checkpoint``, default the zoo's compact LSPET model, flip test on) runs on every frame exactly as
  ``posekit predict clip.mp4`` does (:func:`posekit.inference.video.predict_video`: the box follows the
  previous frame's keypoints). The true track is the labelled joints moved along the path.

For each filter: jitter (mean acceleration magnitude, px/frame²), lag (frames behind the true track, sub-frame
parabola fit) and mean error to the true track (px). The filters run online, frame by frame, on the raw
predictions; this equals ``posekit predict --smooth ...`` because the person box follows the raw keypoints
(checked by ``tests/cli/test_commands.py::test_predict_video_smooths_the_raw_track_online``). Without a detector
``predict_video`` tracks this one person (``--detector none``); two people crossing, with the detector, are
``benchmarks/tracking.py``.

    python benchmarks/smoothing.py          # writes benchmarks/results/smoothing.json and .md (about a minute)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, command, environment, resolve_spec, table, write_results

FPS = 30.0

#: filter label -> (name, parameters) for posekit.inference.smoothing.make_filter
FILTERS = {
    "none": ("none", {}),
    "EMA alpha 0.5": ("ema", {"alpha": 0.5}),
    "EMA alpha 0.3": ("ema", {"alpha": 0.3}),
    "One-Euro 1.0 Hz, beta 0.007 (default)": ("one-euro", {"min_cutoff": 1.0, "beta": 0.007}),
    "One-Euro 0.5 Hz, beta 0.05": ("one-euro", {"min_cutoff": 0.5, "beta": 0.05}),
    "One-Euro 2.0 Hz, beta 0.01": ("one-euro", {"min_cutoff": 2.0, "beta": 0.01}),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "zoo" / "lspet_compact.pt"))
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val", help="photos for the real clips")
    p.add_argument("--clips", type=int, default=5)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--jitter-px", type=float, default=2.0, help="noise of the synthetic tracks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smoothing.json")
    return p.parse_args(argv)


def smooth(track: np.ndarray, name: str, params: dict) -> np.ndarray:
    """Run a filter online over a (T, K, 2 | 3) track, frame by frame with time stamps t / FPS."""
    from posekit.inference.smoothing import make_filter
    params = {**params, "fps": FPS} if name == "one-euro" else params
    f = make_filter(name, **params)
    return np.stack([f(frame.copy(), t / FPS) for t, frame in enumerate(track)])


def score(tracks: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Mean over clips of jitter, lag and error for every filter; tracks = [(truth (T, K, 2), raw (T, K, 2+))]."""
    from posekit.inference.smoothing import jitter, lag
    table = {"truth": {"jitter": float(np.mean([jitter(t) for t, _ in tracks])), "lag": 0.0, "error_px": 0.0}}
    for label, (name, params) in FILTERS.items():
        rows = []
        for truth, raw in tracks:
            out = smooth(raw, name, params)[..., :2]
            rows.append((jitter(out), lag(out, truth, subframe=True),
                         float(np.linalg.norm(out - truth, axis=-1).mean())))
        table[label] = {key: float(np.mean(values)) for key, values in zip(("jitter", "lag", "error_px"), zip(*rows))}
    return table


def path(frames: int) -> np.ndarray:
    """(T, 2) translation in px: a smooth Lissajous path, up to 20 px sideways and 8 px up and down."""
    t = np.arange(frames) / FPS
    return np.stack([20 * np.sin(2 * np.pi * 0.5 * t), 8 * np.sin(2 * np.pi * 0.3 * t + 1.0)], axis=1)


def real_clips(args) -> tuple[dict[str, list[tuple[np.ndarray, np.ndarray]]], list[str]]:
    """Write each clip and run the model on it three ways: as `posekit predict clip.mp4` does (box from the
    previous frame's keypoints), the same with ``box_passes=2``, and on the true box of each frame (the
    network's own frame-to-frame noise, without tracking). Returns {way: [(truth, raw)]} and the photo names."""
    import cv2

    from posekit.data.formats import load_samples
    from posekit.data.io import read_image
    from posekit.inference.predictor import Predictor
    from posekit.inference.video import predict_video
    predictor = Predictor.load(args.checkpoint)
    samples = [s for s in load_samples(resolve_spec(args.val)) if (s.keypoints[:, 2] > 0).all()][:args.clips]
    shifts = path(args.frames)
    ways, names = {"previous-frame box": [], "previous-frame box, 2 passes": [], "true box": []}, []
    with tempfile.TemporaryDirectory() as tmp:
        for i, sample in enumerate(samples):
            image = read_image(sample.image_path)
            h, w = image.shape[:2]
            clip = Path(tmp) / f"clip{i}.mp4"
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
            for dx, dy in shifts:
                moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
            writer.release()
            truth = sample.keypoints[None, :, :2].astype(np.float64) + shifts[:, None, :]
            for way, passes in (("previous-frame box", 1), ("previous-frame box, 2 passes", 2)):
                records = predict_video(predictor, clip, box_passes=passes)
                raw = np.array([r["people"][0]["keypoints"] for r in records], np.float64)  # one person
                if raw.shape[0] != truth.shape[0]:
                    raise RuntimeError(f"{clip}: decoded {raw.shape[0]} of {truth.shape[0]} frames")
                ways[way].append((truth, raw))
            capture, raw = cv2.VideoCapture(str(clip)), []
            for dx, dy in shifts:
                ok, frame = capture.read()
                if not ok:
                    raise RuntimeError(f"{clip}: could not read every frame back")
                box = sample.box.copy()
                box[:2] += (dx, dy)
                raw.append(predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), box[None])[0])
            capture.release()
            ways["true box"].append((truth, np.array(raw, np.float64)))
            names.append(Path(sample.image_path).name)
    return ways, names


def markdown(results: dict) -> str:
    lines = ["# Video smoothing: jitter and lag on known motion", "",
             "jitter = mean acceleration (px/frame²), lag = frames behind the true track, error = mean distance "
             "to the true track (px). Filters run online at 30 fps.", ""]
    titles = {"synthetic_sine": "Synthetic sinusoidal tracks", "synthetic_stop_and_go": "Synthetic stop-and-go tracks"}
    for way in results["real_clips"]["ways"]:
        titles[f"real:{way}"] = f"Real LSPET val photos moved along a known path, compact zoo model: {way}"
    for key, title in titles.items():
        block = results["real_clips"]["ways"][key[5:]] if key.startswith("real:") else results[key]
        description = results["real_clips"]["description"] if key.startswith("real:") else block["description"]
        lines += [f"## {title}", "", description, ""]
        lines += table(["filter", "jitter", "lag (frames)", "error (px)"],
                       [[label, f"{r['jitter']:.3f}", f"{r['lag']:.2f}", f"{r['error_px']:.2f}"]
                        for label, r in block["table"].items()])
        lines.append("")
    lines.append(f"Command: `{results['command']}`")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from posekit.inference.smoothing import stop_and_go_track, synthetic_track
    rng = np.random.default_rng(args.seed)
    sine = [synthetic_track(300, 14, jitter_px=args.jitter_px, seed=rng) for _ in range(5)]
    stop = [stop_and_go_track(240, 14, jitter_px=args.jitter_px, seed=rng) for _ in range(5)]
    ways, names = real_clips(args)
    results = {
        "synthetic_sine": {"description": f"5 tracks x 300 frames x 14 joints, Gaussian jitter {args.jitter_px} px "
                                          f"(seed {args.seed}).", "table": score(sine)},
        "synthetic_stop_and_go": {"description": f"5 tracks x 240 frames x 14 joints, Gaussian jitter "
                                                 f"{args.jitter_px} px.", "table": score(stop)},
        "real_clips": {"description": f"{len(names)} clips x {args.frames} frames from `{args.val}` "
                                      f"({', '.join(names)}), translated up to 20 px sideways and 8 px vertically "
                                      f"(mp4v-encoded); model `{Path(args.checkpoint).name}` with flip test. "
                                      "Person box: from the previous frame's keypoints as `posekit predict clip.mp4` "
                                      "does (`predict_video`), the same with `--box-passes 2`, or the true box of "
                                      "each frame (the network's own noise, no tracking).",
                       "ways": {way: {"table": score(tracks)} for way, tracks in ways.items()}},
        "checkpoint": args.checkpoint, "seed": args.seed, "environment": environment(),
        "command": command("benchmarks/smoothing.py", python=True),
    }
    write_results(results, args.out, markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
