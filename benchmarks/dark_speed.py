"""Speed of the vectorised DARK decoder against a straightforward per-joint implementation.

Times both on 64 people x 17 joints x 64x48 heatmaps (median of repeats, one thread), checks that the
coordinates agree, writes ``benchmarks/results/dark_speed.json`` and prints a markdown table row.

    python benchmarks/dark_speed.py [--repeats 15] [--seed 0]

Two inputs: "realistic" maps (a unit Gaussian, sigma 2, at a random sub-pixel location plus
N(0, 0.02) noise, like a trained network's output), "uniform noise" maps (U(0, 1) everywhere) and
"normal noise" maps (N(0, 1): negative values near many peaks send about half the joints down the
exact full-blur fallback path, the slow case).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from posekit.codecs import dark_decode


def per_joint_dark(heatmaps: np.ndarray, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """DarkPose's algorithm joint by joint (float64, with the zero-max and non-finite guards)."""
    n, k, h, w = heatmaps.shape
    r = blur_kernel // 2
    coords = np.zeros((n, k, 2))
    scores = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            py, px = np.unravel_index(np.argmax(hm), hm.shape)
            peak = hm[py, px]
            coords[i, j] = px, py
            scores[i, j] = peak
            padded = np.zeros((h + 2 * r, w + 2 * r))
            padded[r:r + h, r:r + w] = hm
            blurred = cv2.GaussianBlur(padded, (blur_kernel, blur_kernel), 0)[r:r + h, r:r + w]
            scale = peak / blurred.max() if blurred.max() != 0 else 1.0
            lg = np.log(np.maximum(blurred * scale, 1e-10))
            if 1 < px < w - 2 and 1 < py < h - 2:
                dx = 0.5 * (lg[py, px + 1] - lg[py, px - 1])
                dy = 0.5 * (lg[py + 1, px] - lg[py - 1, px])
                dxx = 0.25 * (lg[py, px + 2] - 2 * lg[py, px] + lg[py, px - 2])
                dyy = 0.25 * (lg[py + 2, px] - 2 * lg[py, px] + lg[py - 2, px])
                dxy = 0.25 * (lg[py + 1, px + 1] - lg[py - 1, px + 1] - lg[py + 1, px - 1] + lg[py - 1, px - 1])
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                if dxx * dyy - dxy ** 2 != 0:
                    step = -np.linalg.solve(hessian, np.array([dx, dy]))
                    if np.isfinite(step).all():
                        coords[i, j] += step
    return coords.astype(np.float32), scores.astype(np.float32)


def realistic_heatmaps(rng: np.random.Generator, n=64, k=17, h=64, w=48, sigma=2.0) -> np.ndarray:
    centers = rng.uniform([3, 3], [w - 4, h - 4], size=(n, k, 2))
    xs, ys = np.arange(w), np.arange(h)
    gx = np.exp(-(xs - centers[..., :1]) ** 2 / (2 * sigma ** 2))
    gy = np.exp(-(ys - centers[..., 1:]) ** 2 / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :] + rng.normal(0, 0.02, size=(n, k, h, w))
    return maps.astype(np.float32)


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dark_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    inputs = {"realistic": realistic_heatmaps(rng),
              "uniform noise": rng.random((64, 17, 64, 48), dtype=np.float32),
              "normal noise": rng.normal(size=(64, 17, 64, 48)).astype(np.float32)}

    rows = []
    for name, maps in inputs.items():
        ref_coords, ref_scores = per_joint_dark(maps)
        fast_coords, fast_scores = dark_decode(maps)
        diff = float(np.abs(ref_coords - fast_coords).max())
        score_diff = float(np.abs(ref_scores - fast_scores).max())
        ref_ms = median_ms(lambda: per_joint_dark(maps), max(3, args.repeats // 3))
        fast_ms = median_ms(lambda: dark_decode(maps), args.repeats)
        rows.append({"input": name, "shape": list(maps.shape), "per_joint_ms": round(ref_ms, 2),
                     "vectorised_ms": round(fast_ms, 3), "speedup": round(ref_ms / fast_ms, 1),
                     "max_coord_diff_px": diff, "max_score_diff": score_diff})

    result = {"benchmark": "dark_decode vs per-joint reference", "threads": 1, "repeats": args.repeats,
              "seed": args.seed, "python": platform.python_version(), "numpy": np.__version__,
              "opencv": cv2.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print("| input | N x K x H x W | per-joint (ms) | vectorised (ms) | speed-up | max coord diff (hm px) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['input']} | {' x '.join(map(str, row['shape']))} | {row['per_joint_ms']:.1f} | "
              f"{row['vectorised_ms']:.2f} | {row['speedup']:.0f}x | {row['max_coord_diff_px']:.1e} |")


if __name__ == "__main__":
    main()
