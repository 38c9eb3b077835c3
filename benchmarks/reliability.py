"""Memory-bounded streaming inference: does ``posekit predict`` on a huge folder keep its memory flat?

Run from the repository root (single-threaded):

    PYTHONPATH=. python benchmarks/reliability.py [--num 10000] [--marks 1000,10000]
    PYTHONPATH=. python benchmarks/reliability.py --round-two     # the round-two attack set (issue #18) instead

Writes ``--num`` small PNG images (64x64, cv2, seeded) plus a few broken files (zero-byte, truncated,
not an image) into a temporary folder, then streams ``Predictor.predict_samples(read_image_folder(...))``
with a tiny random-weight model (simplebaseline_r18, width 0.25, 64x64 input, flip test on), writing one
JSON record per person to disk as ``posekit predict`` does. At each mark (number of predictions so far)
it records the process's peak and current RSS and tracemalloc's current/peak Python-side allocation.
Bounded memory = peak RSS at the last mark is (almost) the peak at the first one.
Writes ``benchmarks/results/reliability_memory.json`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import torch

from common import environment, table, write_results
from posekit.codecs import HeatmapCodec
from posekit.data.formats import read_image_folder
from posekit.inference.predictor import Predictor, prediction_record
from posekit.models import build_model
from posekit.skeletons import get_skeleton

RESULTS = Path(__file__).resolve().parent / "results" / "reliability_memory.json"
INPUT_SIZE = (64, 64)
MODEL_KWARGS = {"width": 0.25, "deconv_channels": 32}


def write_images(folder: Path, num: int, size: int, seed: int) -> None:
    """``num`` PNGs ``000000.png ...``: a seeded noise background with one bright blob each."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    centres = rng.integers(8, size - 8, (num, 2))
    for i in range(num):
        image = background.copy()
        cv2.circle(image, (int(centres[i, 0]), int(centres[i, 1])), 6, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"{i:06d}.png"), image)


def write_broken_files(folder: Path) -> list[str]:
    """A few files the stream must survive; returns their names."""
    (folder / "broken_zero.png").write_bytes(b"")
    good = (folder / "000000.png").read_bytes()
    (folder / "broken_truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "broken_text.jpg").write_text("not an image")
    return ["broken_text.jpg", "broken_truncated.png", "broken_zero.png"]


def tiny_predictor(seed: int) -> Predictor:
    """A random-weight model with the config dict a trainer would write (see Trainer.model_config)."""
    torch.manual_seed(seed)
    skeleton = get_skeleton("coco")
    kwargs = {"num_keypoints": len(skeleton.keypoints), **MODEL_KWARGS}
    config = {"model": {"name": "simplebaseline_r18", "kwargs": kwargs},
              "codec": HeatmapCodec(input_size=INPUT_SIZE).to_config(), "input_size": list(INPUT_SIZE),
              "num_keypoints": kwargs["num_keypoints"], "skeleton": skeleton.name,
              "flip_index": skeleton.flip_index.tolist(), "padding": 1.25}
    return Predictor(build_model("simplebaseline_r18", **kwargs), config, flip_test=True, batch_size=32)


def rss_mb() -> tuple[float, float]:
    """(peak RSS, current RSS) of this process in MB (Linux: ru_maxrss is in KB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return round(peak, 1), round(current, 1)


def measure(folder: Path, predictor: Predictor, marks: list[int], out_file: Path) -> dict:
    """Stream the folder, recording memory at each mark; returns rows, failures and timing."""
    failures: list[str] = []
    rows = []
    tracemalloc.start()
    start = time.perf_counter()
    n = 0
    with open(out_file, "w") as out:
        out.write("[")
        stream = predictor.predict_samples(read_image_folder(folder),
                                           on_error=lambda sample, err: failures.append(sample.file_name))
        for sample, keypoints in stream:
            out.write(("," if n else "") + "\n" + json.dumps(prediction_record(sample, keypoints)))
            n += 1
            if n in marks:
                traced, traced_peak = tracemalloc.get_traced_memory()
                peak, current = rss_mb()
                rows.append({"images": n, "peak_rss_mb": peak, "current_rss_mb": current,
                             "tracemalloc_current_mb": round(traced / 2**20, 2),
                             "tracemalloc_peak_mb": round(traced_peak / 2**20, 2),
                             "seconds": round(time.perf_counter() - start, 1)})
                print(f"  {rows[-1]}", flush=True)
        out.write("\n]\n")
    tracemalloc.stop()
    return {"rows": rows, "predictions": n, "pixel_failures": sorted(failures),
            "seconds": round(time.perf_counter() - start, 1)}


def markdown(result: dict) -> str:
    base = result["baseline"]
    rows = [["0 (model built, warmed up)", base["peak_rss_mb"], base["current_rss_mb"], "-", 0]]
    rows += [[f"{r['images']:,}", r["peak_rss_mb"], r["current_rss_mb"],
              f"{r['tracemalloc_current_mb']} / {r['tracemalloc_peak_mb']}", r["seconds"]] for r in result["rows"]]
    return "\n".join(table(["images streamed", "peak RSS (MB)", "current RSS (MB)", "tracemalloc current / peak (MB)",
                            "seconds"], rows, align="---:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10000, help="number of good images in the folder")
    parser.add_argument("--marks", default="1000,10000", help="prediction counts at which memory is recorded")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the folder here and keep it (default: a temp folder, deleted)")
    parser.add_argument("--round-two", action="store_true",
                        help="instead: run the round-two attack set of malformed inputs (reliability_attacks.py) "
                             "and count the outcomes")
    args = parser.parse_args()
    if args.round_two:
        from reliability_attacks import main as round_two
        raise SystemExit(round_two([]))
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    marks = sorted({int(m) for m in args.marks.split(",")} | {args.num})

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="posekit_reliability_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        write_images(folder, args.num, args.size, args.seed)
        broken = write_broken_files(folder)
        write_seconds = round(time.perf_counter() - t0, 1)
        print(f"wrote {args.num} images + {len(broken)} broken files to {folder} in {write_seconds} s", flush=True)

        predictor = tiny_predictor(args.seed)
        predictor.predict(np.zeros((args.size, args.size, 3), np.uint8), [[0, 0, args.size, args.size]])  # warm-up
        peak, current = rss_mb()
        baseline = {"peak_rss_mb": peak, "current_rss_mb": current}
        result = measure(folder, predictor, marks, folder.parent / f"{folder.name}_predictions.json")
        (folder.parent / f"{folder.name}_predictions.json").unlink()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    first, last = result["rows"][0], result["rows"][-1]
    result.update({
        "baseline": baseline, "num_images": args.num, "image_size": args.size, "broken_files": broken,
        "model": {"name": "simplebaseline_r18", **MODEL_KWARGS, "input_size": list(INPUT_SIZE), "flip_test": True},
        "peak_rss_growth_mb": round(last["peak_rss_mb"] - first["peak_rss_mb"], 1),
        "peak_rss_growth_per_1000_images_mb": round((last["peak_rss_mb"] - first["peak_rss_mb"])
                                                    / max(1, last["images"] - first["images"]) * 1000, 3),
        "write_seconds": write_seconds, "images_per_second": round(result["predictions"] / result["seconds"], 1),
        **environment("torch_threads", "python", "torch", "machine", torch_threads=torch.get_num_threads()),
    })
    result["table"] = markdown(result)
    write_results(result, RESULTS, indent=1)
    print(result["table"])
    print(f"predictions: {result['predictions']}; skipped by pixels: {result['pixel_failures']}; "
          f"peak RSS growth {first['images']} -> {last['images']} images: {result['peak_rss_growth_mb']} MB")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
