"""The scene-cut score (:mod:`posekit.inference.scene_cuts`) on real photos: what a cut scores and what motion and
a brightness jump within a shot score, the measurements behind its threshold of 0.35.

On the first ``--photos`` LSPET val photos (``--val``, sorted by name): a *cut* is a photo followed by the next one
(resized to the same size); *motion* a photo against itself moved 20 px right and 8 px down (edges replicated), and
6 px / 2 px; a *brightness jump* a photo against itself 15 grey levels brighter. Reported: minimum, 1st and 5th
percentiles of the cuts, maximum and 95th percentile of the others, and how many of each the default threshold
calls a cut.

    python benchmarks/scene_cuts.py        # results/scene_cuts.json and .md, about 10 seconds
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, command, environment, finish_study, resolve_spec, table


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--photos", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scene_cuts.json")
    return p.parse_args(argv)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)


def scores(photos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """{case: (n,) cut scores}: consecutive photos, and each photo against itself moved or brightened."""
    from posekit.inference.scene_cuts import colour_histogram, histogram_distance

    def score(a, b):
        return histogram_distance(colour_histogram(a), colour_histogram(b))

    cases = {"cut: the next photo": [score(a, cv2.resize(b, (a.shape[1], a.shape[0])))
                                     for a, b in zip(photos, photos[1:])]}
    cases["motion: moved 20 px, 8 px"] = [score(p, shifted(p, 20, 8)) for p in photos]
    cases["motion: moved 6 px, 2 px"] = [score(p, shifted(p, 6, 2)) for p in photos]
    cases["brightness: +15 grey levels"] = [score(p, np.clip(p.astype(int) + 15, 0, 255).astype(np.uint8))
                                            for p in photos]
    return {k: np.array(v) for k, v in cases.items()}


def markdown(r: dict) -> str:
    rows = [[case, s["n"], f"{s['min']:.3f}", f"{s['p1']:.3f}", f"{s['p5']:.3f}", f"{s['p95']:.3f}", f"{s['max']:.3f}",
             s["called_a_cut"]] for case, s in r["cases"].items()]
    return "\n".join([
        "# Scene-cut scores on LSPET val photos", "",
        f"HSV histogram distance to the previous frame (`posekit/inference/scene_cuts.py`), first {r['photos']} "
        f"photos of `{r['val']}`; threshold {r['threshold']}.", "",
        *table(["case", "n", "min", "1st pct", "5th pct", "95th pct", "max", "called a cut"], rows), "",
        f"Command: `{r['command']}`", ""])


def main(argv=None) -> int:
    args = parse_args(argv)
    from posekit.data.formats import load_samples
    from posekit.data.io import read_image
    from posekit.inference.scene_cuts import DEFAULT_CUT_THRESHOLD
    paths = sorted({s.image_path for s in load_samples(resolve_spec(args.val))})[:args.photos]
    photos = [read_image(p) for p in paths]
    cases = {case: {"n": len(v), "min": float(v.min()), "p1": float(np.percentile(v, 1)),
                    "p5": float(np.percentile(v, 5)), "p95": float(np.percentile(v, 95)), "max": float(v.max()),
                    "called_a_cut": int((v > DEFAULT_CUT_THRESHOLD).sum())} for case, v in scores(photos).items()}
    results = {"cases": cases, "threshold": DEFAULT_CUT_THRESHOLD, "photos": len(photos), "val": args.val,
               "first_and_last": [Path(paths[0]).name, Path(paths[-1]).name], "environment": environment("opencv"),
               "command": command("benchmarks/scene_cuts.py", python=True)}
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
