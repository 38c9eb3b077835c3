"""Time every ImageNet-C corruption of :mod:`posekit.data.corruptions` per image.

Run from the repository root (single-threaded, so numbers are comparable across machines):

    PYTHONPATH=. python benchmarks/corruption_speed.py [--repeats 5]

For each corruption, severity 1..5 and image size (256x256 and 512x384, W x H) it reports the median
of ``--repeats`` timed calls (seed fixed, one untimed warm-up); the table shows the mean over the five
severities and the slowest severity. If the reference ``imagecorruptions`` package imports, it is
timed the same way; it does not import with current NumPy / scikit-image / setuptools (its glass
blur alone takes 0.4-1.2 s per 256x256 image in its pure-Python pixel-swap loop).
Writes ``benchmarks/results/corruption_speed.json`` (including the markdown table) and prints the table.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np

from common import environment, median_ms, table, write_results
from posekit.data.corruptions import CORRUPTIONS, corrupt

SIZES = ((256, 256), (512, 384))  # (W, H)
RESULTS = Path(__file__).resolve().parent / "results" / "corruption_speed.json"


def natural_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with shapes and some texture: (height, width, 3) uint8 RGB."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([60 + 120 * xs / width, 80 + 100 * ys / height, 160 - 80 * xs / width], -1)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(8):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, centre, int(rng.integers(5, min(width, height) // 5)), colour, -1)
    return img


def time_call(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds (2 decimals), after one warm-up call."""
    return median_ms(fn, repeats, warmup=1, digits=2)


def reference_corrupt():
    """The reference package's ``corrupt`` if it imports, else (None, reason)."""
    try:
        from imagecorruptions import corrupt as ref_corrupt  # noqa: PLC0415 - optional
    except Exception as error:  # it fails on modern stacks in several ways
        return None, f"{type(error).__name__}: {error}"
    return ref_corrupt, "imported"


def run(repeats: int) -> dict:
    cv2.setNumThreads(1)
    ref_corrupt, ref_status = reference_corrupt()
    timings: dict = {}
    for width, height in SIZES:
        image = natural_image(width, height)
        size_key = f"{width}x{height}"
        timings[size_key] = {}
        for name in CORRUPTIONS:
            per_severity = [time_call(lambda s=s: corrupt(image, name, s, seed=0), repeats) for s in range(1, 6)]
            entry = {"posekit_ms": per_severity}
            if ref_corrupt is not None:
                entry["imagecorruptions_ms"] = [
                    time_call(lambda s=s: ref_corrupt(image, corruption_name=name, severity=s), 1)
                    for s in range(1, 6)]
            timings[size_key][name] = entry
    return {"repeats": repeats, "sizes_wxh": [list(s) for s in SIZES], "timings": timings,
            "imagecorruptions": ref_status,
            "note": "imagecorruptions' glass_blur swaps pixels in a pure-Python double loop: about 0.4 s "
                    "per shuffle pass at 256x256 (1-3 passes by severity, so 0.4-1.2 s per image; "
                    "measured on this machine with a throwaway re-creation of the loop); its numba "
                    "variant needs numba and an old scikit-image",
            "machine": environment("python", "numpy", "opencv", "processor", cv2_threads=1)}


def markdown_table(result: dict) -> str:
    sizes = list(result["timings"])
    has_ref = any("imagecorruptions_ms" in e for e in result["timings"][sizes[0]].values())
    header = ["corruption", *(f"{s} {kind} ms" for s in sizes for kind in ("mean", "worst"))]
    header += [f"ref {s} mean ms" for s in sizes] if has_ref else []
    lines = table(header)
    for name in CORRUPTIONS:
        cells = []
        for size in sizes:
            ms = result["timings"][size][name]["posekit_ms"]
            cells += [f"{statistics.mean(ms):.1f}", f"{max(ms):.1f}"]
        if has_ref:
            cells += [f"{statistics.mean(result['timings'][s][name]['imagecorruptions_ms']):.1f}" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = []
    for size in sizes:
        totals += [f"{sum(statistics.mean(e['posekit_ms']) for e in result['timings'][size].values()):.1f}", ""]
    lines.append("| **all 15** | " + " | ".join(totals) + (" |" + " |" * len(sizes) if has_ref else " |"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = run(args.repeats)
    result["markdown"] = markdown_table(result)
    write_results(result, RESULTS, indent=1)
    print(result["markdown"])
    print(f"\nimagecorruptions: {result['imagecorruptions']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
