"""Milliseconds per training sample of the input pipeline, stage by stage, before and after the work of issue #17.

The pipeline is a batch of 32 training items with the crop cache, collated, on LSPET train (people of images 1-8000
only) at 128 px (``--size``) with the default augmentation, seed 0: the random generators, the crop parameters, the
cached crop's warp, the keypoints, colour jitter + normalisation, the heatmap targets, the tensors, the collate.
"before" is the code of commit 388e206 kept in ``loader_reference.py``: ``__getitem__`` item by item, then
``default_collate``, each step timed per item. "after" is the package's ``TopDownDataset.batch`` (what the trainer
loads), which runs the same steps one stage at a time for the whole batch and times its own stages (its ``profile``
argument); it has no collate. Rounds alternate the two in one process. Every step is timed in CPU time
(``time.process_time``, one torch thread): on a shared, niced machine wall time measures the scheduler, not the code.

The run also checks that both give the same batches: every tensor of ``--check-batches`` batches of 32, bit for bit.

    PYTHONPATH=. python benchmarks/loader_speed.py [--items 640] [--rounds 3] [--seed 0] [--size 128 --sigma 2]
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
    p.add_argument("--items", type=int, default=640, help="samples timed per round and version (batches of 32)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="augmentation seed and the sample order's seed")
    p.add_argument("--check-batches", type=int, default=40, help="batches compared bit for bit, before vs after")
    p.add_argument("--size", type=int, default=128, help="input side in pixels (the teacher's: 192)")
    p.add_argument("--sigma", type=float, default=2.0, help="heatmap sigma (the teacher's: 3)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/loader_speed.json"))
    return p.parse_args(argv)


def build_dataset(seed: int, size: int, sigma: float):
    from common import resolve_spec
    from posekit.codecs.heatmap import HeatmapCodec
    from posekit.config import DEFAULT_PADDING
    from posekit.data.crop_cache import training_crop_cache
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import AugmentConfig
    from posekit.skeletons import get_skeleton
    samples = load_samples(resolve_spec(TRAIN))
    augment, input_size = AugmentConfig(), (size, size)
    cache = training_crop_cache(samples, input_size, DEFAULT_PADDING, augment)
    flip_index = np.array(get_skeleton(samples[0].skeleton).flip_index)
    return TopDownDataset(samples, HeatmapCodec(input_size, sigma=sigma), input_size, flip_index=flip_index, train=True,
                          augment=augment, seed=seed, crop_cache=cache)


def time_before(dataset, chunk) -> dict[str, float]:
    """CPU seconds of each step of the reference item (``loader_reference.py``) over the indices ``chunk``, item by
    item, then of the whole items, of their collate and of both ("whole batch")."""
    import loader_reference as ref
    import torch
    clock, spent = time.process_time, {}

    def lap(name, start):
        now = clock()
        spent[name] = spent.get(name, 0.0) + now - start
        return now

    for index in chunk:
        t = clock()
        sample = dataset.samples[index]
        rng = np.random.default_rng([dataset.seed, dataset.epoch, index])
        t = lap("random generator", t)
        matrix, flip = ref.reference_crop(dataset, sample, rng)
        t = lap("crop parameters", t)
        source = ref.cached_rgb(dataset.crop_cache, index)
        t = lap(CONVERSION, t)
        crop = ref.reference_warped_crop(dataset, index, matrix, source)
        t = lap("cache read + warp", t)
        keypoints = sample.keypoints.astype(np.float32).copy()
        keypoints[:, :2] = ref.reference_affine_points(keypoints[:, :2], matrix)
        if flip:
            keypoints = keypoints[dataset.flip_index]
        visible = keypoints[:, 2] > 0
        t = lap("keypoints", t)
        image = ref.reference_normalize_image(ref.reference_color_jitter(crop, rng, dataset.augment.color))
        t = lap("colour jitter + normalisation", t)
        targets = ref.reference_encode(dataset.codec, keypoints[:, :2], visible.astype(np.float32))
        t = lap("heatmap targets", t)
        out = {"image": torch.from_numpy(image), "keypoints": torch.from_numpy(keypoints),
               "matrix": torch.from_numpy(matrix.astype(np.float32)), "index": index, "ok": 1}
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
        lap("tensors", t)
    t = clock()
    items = [ref.reference_item(dataset, index) for index in chunk]
    t = lap("whole item (__getitem__)", t)
    ref.reference_collate(items)
    lap("collate", t)
    # the whole item converts the RGBA cache's crop to the RGB one 388e206 read: not part of that pipeline
    return spent | {"whole batch": spent["whole item (__getitem__)"] + spent["collate"] - spent[CONVERSION]}


def time_after(dataset, chunk) -> dict[str, float]:
    """CPU seconds of each stage of ``TopDownDataset.batch`` on the indices ``chunk`` and of the whole batch (there
    is no separate item, nor a collate)."""
    profile, start = {}, time.process_time()
    dataset.batch(chunk, profile)
    whole = time.process_time() - start
    return {"tensors" if name == "batch tensors" else name: seconds for name, seconds in profile.items()} | {
        CONVERSION: float("nan"), "whole item (__getitem__)": float("nan"), "collate": 0.0, "whole batch": whole}


VERSIONS = {"before": time_before, "after": time_after}
#: the step of "before" that 388e206 did not have (its cache held RGB crops), subtracted from its whole batch
CONVERSION = "(cached RGBA crop -> RGB, not in 388e206)"


def timed_round(dataset, indices, flip: int) -> dict[str, dict[str, float]]:
    """One round: {version: {step: CPU ms per sample}} over ``indices`` in batches of 32, the two versions taking
    turns batch by batch (which goes first alternates, ``flip`` shifts it), so both see the same machine."""
    spent = {name: {} for name in VERSIONS}
    starts = range(0, len(indices) - BATCH + 1, BATCH)
    for k, start in enumerate(starts):
        for name in (list(VERSIONS) if (k + flip) % 2 == 0 else list(VERSIONS)[::-1]):
            for step, seconds in VERSIONS[name](dataset, indices[start:start + BATCH]).items():
                spent[name][step] = spent[name].get(step, 0.0) + seconds
    count = len(starts) * BATCH
    return {name: {step: 1e3 * seconds / count for step, seconds in steps.items()} for name, steps in spent.items()}


def same_batches(dataset, indices) -> dict:
    """Compare ``len(indices) // BATCH`` batches of the two versions: every key, dtype, shape, stride and bit."""
    import loader_reference as ref
    import torch
    compared, differing = 0, []
    for start in range(0, len(indices) - BATCH + 1, BATCH):
        chunk = indices[start:start + BATCH]
        a = ref.reference_collate([ref.reference_item(dataset, i) for i in chunk])
        b = dataset.batch(chunk)
        same = a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].stride() == b[k].stride()
            and torch.equal(a[k], b[k]) and (not a[k].is_floating_point()
                                             or torch.equal(torch.signbit(a[k]), torch.signbit(b[k]))) for k in a)
        compared += 1
        if not same:
            differing.append(start // BATCH)
    return {"batches": compared, "batch_size": BATCH, "identical": not differing, "differing_batches": differing}


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"


def markdown(results: dict) -> str:
    steps = results["steps_ms_per_sample"]
    lines = ["# Input pipeline: CPU ms per training sample", "",
             f"`{results['command']}` ({results['date']}; {results['items']} LSPET train samples x "
             f"{results['rounds']} rounds per version, seed {results['seed']}, {results['size']} px, sigma "
             f"{results['sigma']}, default augmentation, crop cache on, batches of {BATCH}, one torch thread; load "
             f"average {results['load_average']}). CPU time (`time.process_time`), median over the rounds, the versions "
             "taking turns batch by batch; before = "
             "commit 388e206 (`benchmarks/loader_reference.py`) item by item, then `default_collate`; after = this "
             "package's `TopDownDataset.batch`, stage by stage for the whole batch. The crop cache now stores RGBA "
             "crops (a faster warp); before reads the RGB bytes 388e206's cache held through one conversion per item, "
             "timed as its own step and left out of before's whole batch.", "",
             "| step | before ms | after ms | after / before |", "|---|---:|---:|---:|"]
    for name, row in steps.items():
        ratio = row["after"] / row["before"] if row["before"] and row["after"] == row["after"] else float("nan")
        shown = "-" if ratio != ratio else f"{ratio:.2f}"
        lines.append(f"| {name} | {_ms(row['before'])} | {_ms(row['after'])} | {shown} |")
    total, ratios = steps["whole batch"], results["after_over_before_per_round"]
    lines += ["", f"Per-sample pipeline (a whole collated batch): before {total['before']:.3f} ms, after "
                  f"{total['after']:.3f} ms; after / before per round {ratios}, median {np.median(ratios):.2f}.", ""]
    check = results["same_batches"]
    lines.append(f"Same batches: {check['batches']} batches of {check['batch_size']} compared tensor by tensor "
                 f"(dtype, shape, stride, every bit): {'identical' if check['identical'] else 'DIFFERENT: ' + str(check['differing_batches'])}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(1)
    dataset = build_dataset(args.seed, args.size, args.sigma)
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    chosen = [int(i) for i in order[:args.items]]
    for timer in VERSIONS.values():  # warm the page cache and every code path once
        timer(dataset, chosen[:BATCH])
    rounds = {name: [] for name in VERSIONS}
    for r in range(args.rounds):
        for name, steps in timed_round(dataset, chosen, r).items():
            rounds[name].append(steps)
    names = list(rounds["before"][0]) + [n for n in rounds["after"][0] if n not in rounds["before"][0]]
    steps = {step: {name: float(np.median([rnd.get(step, float("nan")) for rnd in rounds[name]])) for name in VERSIONS}
             for step in names}
    ratios = [a["whole batch"] / b["whole batch"] for a, b in zip(rounds["after"], rounds["before"])]
    check_indices = [int(i) for i in order[:args.check_batches * BATCH]]
    results = {"command": "PYTHONPATH=. python benchmarks/loader_speed.py " + shlex.join(sys.argv[1:] if argv is None else argv),
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "items": args.items,
               "rounds": args.rounds, "seed": args.seed, "size": args.size, "sigma": args.sigma,
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "steps_ms_per_sample": steps, "after_over_before_per_round": [round(r, 3) for r in ratios],
               "rounds_raw": rounds, "same_batches": same_batches(dataset, check_indices)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0 if results["same_batches"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
