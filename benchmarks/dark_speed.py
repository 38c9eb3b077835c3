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
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch

from common import ROOT, environment, median_ms, table, write_results
from posekit.codecs import dark_decode


def _load_reference():
    """``reference_dark`` of ``tests/codecs/test_dark.py``: DarkPose's algorithm joint by joint (float64, with the
    zero-max and non-finite guards), the one reference the DARK tests check the vectorised decoder against."""
    spec = importlib.util.spec_from_file_location("_test_dark", ROOT / "tests" / "codecs" / "test_dark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_dark


_REFERENCE_DARK = _load_reference()


def per_joint_dark(heatmaps: np.ndarray, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """The per-joint reference, cast to float32 as :func:`~posekit.codecs.dark_decode` returns."""
    coords, scores = _REFERENCE_DARK(heatmaps, blur_kernel)
    return coords.astype(np.float32), scores.astype(np.float32)


def realistic_heatmaps(rng: np.random.Generator, n=64, k=17, h=64, w=48, sigma=2.0) -> np.ndarray:
    centers = rng.uniform([3, 3], [w - 4, h - 4], size=(n, k, 2))
    xs, ys = np.arange(w), np.arange(h)
    gx = np.exp(-(xs - centers[..., :1]) ** 2 / (2 * sigma ** 2))
    gy = np.exp(-(ys - centers[..., 1:]) ** 2 / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :] + rng.normal(0, 0.02, size=(n, k, h, w))
    return maps.astype(np.float32)


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
        ref_ms = median_ms(lambda: per_joint_dark(maps), max(3, args.repeats // 3), warmup=0, digits=None)
        fast_ms = median_ms(lambda: dark_decode(maps), args.repeats, warmup=0, digits=None)
        rows.append({"input": name, "shape": list(maps.shape), "per_joint_ms": round(ref_ms, 2),
                     "vectorised_ms": round(fast_ms, 3), "speedup": round(ref_ms / fast_ms, 1),
                     "max_coord_diff_px": diff, "max_score_diff": score_diff})

    result = {"benchmark": "dark_decode vs per-joint reference", "threads": 1, "repeats": args.repeats,
              "seed": args.seed, **environment("python", "numpy", "opencv"), "rows": rows}
    write_results(result, args.out)
    print("\n".join(table(["input", "N x K x H x W", "per-joint (ms)", "vectorised (ms)", "speed-up",
                           "max coord diff (hm px)"],
                          [[row["input"], " x ".join(map(str, row["shape"])), f"{row['per_joint_ms']:.1f}",
                            f"{row['vectorised_ms']:.2f}", f"{row['speedup']:.0f}x", f"{row['max_coord_diff_px']:.1e}"]
                           for row in rows])))


if __name__ == "__main__":
    main()
