"""Milliseconds per training sample of the input pipeline, step by step, before and after the work of issue #17.

The pipeline is ``TopDownDataset.__getitem__`` with the crop cache plus the trainer's collate, on LSPET train
(people of images 1-8000 only) at 128 px with the default augmentation, seed 0: the random draws, the crop
parameters, the cached crop's warp, the keypoints, colour jitter + normalisation, the heatmap targets, the item's
tensors, the collate. "before" is the code of commit 388e206 kept in ``loader_reference.py``, "after" the package;
rounds alternate the two in one process. Every step is timed in CPU time (``time.process_time``, one torch
thread): on a shared, niced machine wall time measures the scheduler, not the code.

The run also checks that both give the same batches: every tensor of ``--check-batches`` batches of 32, bit for bit.

    PYTHONPATH=. python benchmarks/loader_speed.py [--items 640] [--rounds 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN = "lsp:../shared/datasets/lspet@train"
INPUT = (128, 128)
BATCH = 32


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=640, help="samples timed per round and version")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="augmentation seed and the sample order's seed")
    p.add_argument("--check-batches", type=int, default=40, help="batches compared bit for bit, before vs after")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/loader_speed.json"))
    return p.parse_args(argv)


def build_dataset(seed: int):
    from common import resolve_spec
    from posekit.codecs.heatmap import HeatmapCodec
    from posekit.config import DEFAULT_PADDING
    from posekit.data.crop_cache import training_crop_cache
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import AugmentConfig
    from posekit.skeletons import get_skeleton
    samples = load_samples(resolve_spec(TRAIN))
    augment = AugmentConfig()
    cache = training_crop_cache(samples, INPUT, DEFAULT_PADDING, augment)
    flip_index = np.array(get_skeleton(samples[0].skeleton).flip_index)
    return TopDownDataset(samples, HeatmapCodec(INPUT), INPUT, flip_index=flip_index, train=True, augment=augment,
                          seed=seed, crop_cache=cache)


def versions():
    """{name: (colour jitter + normalisation, encode, item, collate)} of before and after."""
    import cv2
    import loader_reference as ref
    from posekit.data.transforms import color_jitter_planes, normalize_planes
    from posekit.engine.trainer import collate
    return {
        "before": (lambda crop, rng, amount: ref.reference_normalize_image(ref.reference_color_jitter(crop, rng, amount)),
                   ref.reference_encode, ref.reference_item, ref.reference_collate),
        "after": (lambda crop, rng, amount: normalize_planes(color_jitter_planes(crop, rng, amount)),
                  lambda codec, keypoints, visible: codec.encode(keypoints, visible),
                  lambda dataset, index: dataset[index], collate),
    }, cv2


def time_steps(dataset, indices, version) -> dict[str, float]:
    """CPU milliseconds per sample of each step (the steps of ``__getitem__`` in order, then the whole item and
    the collate) over ``indices``."""
    import torch
    from posekit.data.crop_cache import compose
    from posekit.data.transforms import affine_points, warp_image
    jitter_normalize, encode, item, collate = version
    clock, spent = time.process_time, {}

    def lap(name, start):
        now = clock()
        spent[name] = spent.get(name, 0.0) + now - start
        return now

    for index in indices:
        t = clock()
        sample = dataset.samples[index]
        rng = np.random.default_rng([dataset.seed, dataset.epoch, index])
        t = lap("random generator", t)
        matrix, flip = dataset.crop(sample, rng)
        t = lap("crop parameters", t)
        cache = dataset.crop_cache
        crop = warp_image(cache.crop(index), compose(matrix, cache.to_image[index]), dataset.input_size)
        t = lap("cache read + warp", t)
        keypoints = sample.keypoints.astype(np.float32).copy()
        keypoints[:, :2] = affine_points(keypoints[:, :2], matrix)
        if flip:
            keypoints = keypoints[dataset.flip_index]
        visible = keypoints[:, 2] > 0
        t = lap("keypoints", t)
        image = jitter_normalize(crop, rng, dataset.augment.color)
        t = lap("colour jitter + normalisation", t)
        targets = encode(dataset.codec, keypoints[:, :2], visible.astype(np.float32))
        t = lap("heatmap targets", t)
        out = {"image": torch.from_numpy(image), "keypoints": torch.from_numpy(keypoints),
               "matrix": torch.from_numpy(matrix.astype(np.float32)), "index": index, "ok": 1}
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
        lap("item tensors", t)
    t = clock()
    items = [item(dataset, index) for index in indices]
    t = lap("whole item (__getitem__)", t)
    for start in range(0, len(items) - BATCH + 1, BATCH):
        collate(items[start:start + BATCH])
    lap("collate", t)
    return {name: 1e3 * seconds / len(indices) for name, seconds in spent.items()}


def same_batches(dataset, indices, before, after) -> dict:
    """Compare ``len(indices) // BATCH`` batches of the two versions: every key, dtype, shape, stride and bit."""
    import torch
    compared, differing = 0, []
    for start in range(0, len(indices) - BATCH + 1, BATCH):
        chunk = indices[start:start + BATCH]
        a = before[3]([before[2](dataset, i) for i in chunk])
        b = after[3]([after[2](dataset, i) for i in chunk])
        same = a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].stride() == b[k].stride()
            and torch.equal(a[k], b[k]) and (not a[k].is_floating_point()
                                             or torch.equal(torch.signbit(a[k]), torch.signbit(b[k]))) for k in a)
        compared += 1
        if not same:
            differing.append(start // BATCH)
    return {"batches": compared, "batch_size": BATCH, "identical": not differing, "differing_batches": differing}


def markdown(results: dict) -> str:
    steps = results["steps_ms_per_sample"]
    lines = ["# Input pipeline: CPU ms per training sample", "",
             f"`{results['command']}` ({results['date']}; {results['items']} LSPET train samples x "
             f"{results['rounds']} rounds per version, seed {results['seed']}, {INPUT[0]} px, default augmentation, "
             f"crop cache on, one torch thread; load average {results['load_average']}). CPU time "
             "(`time.process_time`), median over the rounds; before = commit 388e206 (`benchmarks/loader_reference.py`), "
             "after = this package.", "",
             "| step | before ms | after ms | after / before |", "|---|---:|---:|---:|"]
    for name, row in steps.items():
        lines.append(f"| {name} | {row['before']:.3f} | {row['after']:.3f} | {row['after'] / row['before']:.2f} |")
    total = results["per_sample_pipeline_ms"]
    lines += ["", f"Per-sample pipeline (whole item + collate): before {total['before']:.3f} ms, after "
                  f"{total['after']:.3f} ms ({total['after'] / total['before']:.2f}x).", ""]
    check = results["same_batches"]
    lines.append(f"Same batches: {check['batches']} batches of {check['batch_size']} compared tensor by tensor "
                 f"(dtype, shape, stride, every bit): {'identical' if check['identical'] else 'DIFFERENT: ' + str(check['differing_batches'])}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(1)
    dataset = build_dataset(args.seed)
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    chosen = [int(i) for i in order[:args.items]]
    table, _ = versions()
    for name in table:  # warm the page cache and every code path once
        time_steps(dataset, chosen[:BATCH], table[name])
    rounds = {name: [] for name in table}
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            rounds[name].append(time_steps(dataset, chosen, table[name]))
    steps = {step: {name: float(np.median([rnd[step] for rnd in rounds[name]])) for name in table}
             for step in rounds["after"][0]}
    pipeline = {name: steps["whole item (__getitem__)"][name] + steps["collate"][name] for name in table}
    check_indices = [int(i) for i in order[:args.check_batches * BATCH]]
    results = {"command": "PYTHONPATH=. python benchmarks/loader_speed.py " + shlex.join(sys.argv[1:] if argv is None else argv),
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "items": args.items,
               "rounds": args.rounds, "seed": args.seed, "load_average": [round(x, 2) for x in os.getloadavg()],
               "steps_ms_per_sample": steps, "per_sample_pipeline_ms": pipeline, "rounds_raw": rounds,
               "same_batches": same_batches(dataset, check_indices, table["before"], table["after"])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0 if results["same_batches"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
