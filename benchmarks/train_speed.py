"""Training throughput on the CPU: model-only against end-to-end images/s, fp32 against bf16 autocast.

Three trainings, batch 32 on LSPET train (``lsp:../shared/datasets/lspet@train``, 7,200 people), from scratch
(the speed of a step does not depend on the weights):

* ``compact``: ``simplebaseline_r18`` {width 0.4, deconv_channels 96} at 128x128, sigma 2 (zoo/lspet_compact.md);
* ``teacher``: the same network at 192x192, sigma 3 (zoo/lspet_teacher.md);
* ``movenet_lightning`` at 192x192, sigma 2 (configs/lspet_movenet_lightning.json).

Both modes time the trainer's own step (``Trainer.train_epoch``: autocast, the head loss, the NaN guard, AdamW):

* **model-only**: every step gets one batch held in memory (no input pipeline at all);
* **end-to-end**: batches from the trainer's DataLoader (the crop cache, the default workers and threads).

A measurement runs ``--warmup`` untimed steps (the DataLoader's workers start during them), then ``--steps``
timed ones: images/s = 32 x steps / the wall time from the end of the last warm-up step to the end of the last
step (data waits included). One round measures every (training, precision, mode) once, interleaved; rounds
alternate which mode goes first. The machine may be shared: the ratios (end-to-end / model-only, bf16 / fp32)
are computed within each round and their median over the rounds is reported, with the load average.
Also recorded: the crop cache's mean absolute pixel difference against decoding (first 400 train people).

``--train-epochs N`` instead trains the compact model (configs/lspet_compact.json, seed 0; the default loader
unless --workers / --threads) for N epochs in fp32 and in bf16 and scores LSPET val (800 people, flip test)
after the last epoch. Run folders ``runs/train_speed/compact_{fp32,bf16}_{N}ep`` resume from their ``last.pt``;
a finished one is reused.

    python benchmarks/train_speed.py                      # seed 0, 3 rounds, 4 warm-up + 24 timed steps each
    python benchmarks/train_speed.py --train-epochs 10    # 2 x 10 epochs: 15-30 min on 2 idle cores
    python benchmarks/train_speed.py --train-epochs 10 --precisions fp32 --workers 0 --threads 1 --out runs/f.json &
    python benchmarks/train_speed.py --train-epochs 10 --precisions bf16 --workers 0 --threads 1 --out runs/b.json
    python benchmarks/train_speed.py --train-epochs 10 --workers 0 --threads 1   # both at once, one core each (as
                                                          # committed: ~17 + 12 min), then collect them (reused)
    python benchmarks/train_speed.py --quick --out /tmp/train_speed.json   # smoke test (1 round, 2 + 3 steps)

Budget: a round took about 9 minutes while this machine was shared (the committed table: 2 rounds, the third
stopped to leave time for the trainings); ``--no-loader-sweep`` halves it. Results:
``benchmarks/results/train_speed.json`` (``speed`` and ``training`` sections, each written by its own mode; the
table is rewritten after every round) and ``train_speed.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, command, environment, load_average, resolve_spec, table, train_once, write_results

SEED = 0
BATCH = 32
TRAIN = "lsp:../shared/datasets/lspet@train"
VAL = "lsp:../shared/datasets/lspet@val"
COMPACT_KWARGS = {"width": 0.4, "deconv_channels": 96}
#: name -> the TrainConfig options that differ between the three trainings
TRAININGS = {
    "compact": {"model": "simplebaseline_r18", "model_kwargs": COMPACT_KWARGS, "input_size": (128, 128), "sigma": 2.0},
    "teacher": {"model": "simplebaseline_r18", "model_kwargs": COMPACT_KWARGS, "input_size": (192, 192), "sigma": 3.0},
    "movenet_lightning": {"model": "movenet_lightning", "model_kwargs": {}, "input_size": (192, 192), "sigma": 2.0},
}
PRECISIONS = {"fp32": False, "bf16": True}
MODES = ("model_only", "end_to_end")
#: the compact model's end-to-end loader variants (how the defaults were chosen): name -> TrainConfig options
LOADER_SWEEP = {"workers=0": {"workers": 0}, "workers=0 loader_threads=1": {"workers": 0, "loader_threads": 1},
                "workers=1": {"workers": 1}, "workers=2": {"workers": 2},
                "workers=1 threads=1": {"workers": 1, "threads": 1}, "workers=1 no cache": {"workers": 1, "crop_cache": False}}
QUICK = {"rounds": 1, "warmup": 2, "steps": 3}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=4, help="untimed steps before each measurement")
    p.add_argument("--steps", type=int, default=24, help="timed steps per measurement")
    p.add_argument("--trainings", default=",".join(TRAININGS), help=f"comma-separated subset of {list(TRAININGS)}")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: TrainConfig's)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: TrainConfig's)")
    p.add_argument("--no-crop-cache", action="store_true", help="end-to-end without the crop cache")
    p.add_argument("--no-loader-sweep", dest="loader_sweep", action="store_false",
                   help="skip the compact model's loader variants (workers, threads, cache)")
    p.add_argument("--train-epochs", type=int, help="train the compact model this many epochs in fp32 and bf16")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="with --train-epochs: the precisions to train (e.g. one per process; a run with both collects them)")
    p.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK}")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_speed.json")
    args = p.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    args.trainings = [t.strip() for t in args.trainings.split(",") if t.strip()]
    unknown = set(args.trainings) - set(TRAININGS)
    if unknown or args.rounds < 1 or args.steps < 1 or args.warmup < 1:
        p.error(f"unknown trainings {sorted(unknown)}" if unknown else "--rounds, --steps, --warmup must be >= 1")
    return args


# -- timing the trainer's step ----------------------------------------------------------------------
class TimedBatches:
    """Iterates ``batches``, noting the time each batch is asked for (= when the previous step ended)."""

    def __init__(self, batches):
        self.batches, self.asked = iter(batches), []

    def __iter__(self):
        return self

    def __next__(self):
        self.asked.append(time.perf_counter())
        return next(self.batches)

    def images_per_s(self, warmup: int) -> float:
        """Images per second from the end of step ``warmup`` (the first timed one starts) to the end of the last."""
        seconds = self.asked[-1] - self.asked[warmup]
        return BATCH * (len(self.asked) - 1 - warmup) / seconds


def speed_config(name: str, amp: bool, out: Path, args, **loader):
    """The TrainConfig of training ``name`` for speed runs; ``loader`` (workers, threads, crop_cache) overrides the
    command line's, which override TrainConfig's defaults."""
    from posekit.engine.trainer import TrainConfig
    options = {"workers": args.workers, "threads": args.threads, "crop_cache": False if args.no_crop_cache else None}
    options = {k: v for k, v in (options | loader).items() if v is not None}
    return TrainConfig(train=resolve_spec(TRAIN), val=None, out=str(out), batch_size=BATCH, epochs=1000, seed=SEED,
                       max_iters_per_epoch=args.warmup + args.steps, progress=False, amp=amp, **TRAININGS[name], **options)


def measure(trainer, mode: str, epoch: int, held_batch: dict, args, threads: int) -> float:
    """One measurement of ``mode``: images/s of ``trainer.train_epoch`` after ``args.warmup`` steps, with
    ``trainer.cfg.threads`` torch threads (``threads`` when it sets none)."""
    import torch
    torch.set_num_threads(trainer.cfg.threads or threads)
    real_loader = type(trainer).loader.__get__(trainer)
    steps = args.warmup + args.steps
    timed = TimedBatches(itertools.repeat(held_batch, steps) if mode == "model_only" else real_loader(epoch))
    trainer.loader = lambda epoch: timed
    try:
        trainer.train_epoch(epoch)
    finally:
        del trainer.loader
    return timed.images_per_s(args.warmup)


def round_plan(args, r: int) -> list[tuple[str, str, str, str]]:
    """Round ``r``'s (row, training, precision, mode) in order: every training's two modes (which goes first
    alternates between rounds), then the compact model's loader variants end to end (:data:`LOADER_SWEEP`)."""
    modes = MODES if r % 2 == 0 else MODES[::-1]
    plan = [(n, n, p, m) for n in args.trainings for p in PRECISIONS for m in modes]
    if args.loader_sweep and "compact" in args.trainings:
        plan += [(f"compact {v}", "compact", p, "end_to_end") for v in LOADER_SWEEP for p in PRECISIONS]
    return plan


def run_speed(args, on_round=lambda partial: None) -> dict:
    """Every round of :func:`round_plan`; ``on_round(partial)`` gets the summary of the rounds so far after each
    round (so an interrupted run keeps them). Returns the summary of all rounds."""
    import torch
    from posekit.methods import build_trainer
    threads = torch.get_num_threads()
    pixels = crop_cache_difference()
    rates = {key: [] for key in round_plan(args, 0)}
    loads = [load_average()]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for row, name, precision, _ in rates:
            if (row, precision) not in trainers:
                loader = LOADER_SWEEP.get(row.partition(" ")[2], {})
                out = Path(tmp) / f"{row.replace(' ', '_')}_{precision}"
                trainers[row, precision] = build_trainer(speed_config(name, PRECISIONS[precision], out, args, **loader))
        held = {n: next(iter(trainers[n, "fp32"].loader(0))) for n in args.trainings}
        default = trainers[args.trainings[0], "fp32"].cfg
        fixed = {"workers": default.workers, "threads": default.threads or threads, "crop_cache": default.crop_cache,
                 "loader_threads": default.loader_threads or default.threads or threads, "crop_cache_pixels": pixels}
        for r in range(args.rounds):
            for row, name, precision, mode in round_plan(args, r):
                rate = measure(trainers[row, precision], mode, r, held[name], args, threads)
                rates[row, name, precision, mode].append(round(rate, 1))
                print(f"round {r + 1}: {row} {precision} {mode}: {rate:.1f} images/s", file=sys.stderr, flush=True)
            loads.append(load_average())
            on_round({**speed_summary(rates, args), "load_average_per_round": loads, "rounds_done": r + 1, **fixed})
    torch.set_num_threads(threads)
    return {**speed_summary(rates, args), "load_average_per_round": loads, "rounds_done": args.rounds, **fixed}


def speed_summary(rates: dict, args) -> dict:
    """{"rows": per training (:func:`summarise`), "loader_sweep": per loader variant (:func:`sweep_summary`)}."""
    rows = {n: summarise({p: {m: rates[n, n, p, m] for m in MODES} for p in PRECISIONS}) for n in args.trainings}
    sweep = {}
    for (row, _, precision, _), values in rates.items():
        if row not in rows:
            sweep.setdefault(row, {})[precision] = values
    return {"rows": rows, "loader_sweep": sweep_summary(sweep, rows.get("compact"))}


def sweep_summary(sweep: dict, compact: dict | None) -> dict:
    """Per loader variant and precision: rounds, median images/s and the median per-round ratio to the compact
    model's model-only rate of the same round."""
    out = {}
    for row, precisions in sweep.items():
        out[row] = {p: {"end_to_end_rounds": v, "end_to_end": round(float(np.median(v)), 1),
                        "over_model_only": round(float(np.median([e / m for e, m in zip(
                            v, compact[p]["model_only_rounds"])])), 3)} for p, v in precisions.items()}
    return out


def summarise(row: dict) -> dict:
    """Per precision: rounds and medians of both modes, the median per-round end-to-end / model-only ratio; and the
    median per-round bf16 / fp32 ratios."""
    out = {}
    for precision, modes in row.items():
        ratios = [e / m for e, m in zip(modes["end_to_end"], modes["model_only"])]
        out[precision] = {**{f"{m}_rounds": v for m, v in modes.items()},
                          **{m: round(float(np.median(v)), 1) for m, v in modes.items()},
                          "end_to_end_over_model_only": round(float(np.median(ratios)), 3)}
    for mode in MODES:
        ratios = [b / f for b, f in zip(row["bf16"][mode], row["fp32"][mode])]
        out[f"bf16_over_fp32_{mode}"] = round(float(np.median(ratios)), 3)
    return out


def crop_cache_difference(count: int = 400) -> dict:
    """Mean absolute difference (uint8 levels) of cached and decoded training crops, first ``count`` train people,
    epoch 0 of seed 0 with the default augmentation, per input size."""
    from posekit.codecs import HeatmapCodec
    from posekit.data.crop_cache import training_crop_cache
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import IMAGE_STD, AugmentConfig
    from posekit.skeletons import LSP
    samples, out = load_samples(resolve_spec(TRAIN))[:count], {}
    for size in (128, 192):
        codec, augment = HeatmapCodec(input_size=(size, size)), AugmentConfig()
        cache = training_crop_cache(samples, (size, size), 1.25, augment)
        make = lambda c: TopDownDataset(samples, codec, (size, size), flip_index=LSP.flip_index, train=True,
                                        augment=augment, seed=SEED, crop_cache=c)
        plain, cached = make(None), make(cache)
        diffs = [np.abs((plain[i]["image"] - cached[i]["image"]).numpy() * IMAGE_STD[:, None, None]).mean()
                 for i in range(len(samples))]
        out[f"{size}px_mean_abs_diff_levels"] = round(float(np.mean(diffs)), 3)
    return out


# -- the 10-epoch trainings -------------------------------------------------------------------------
def run_trainings(args) -> dict:
    from posekit.engine.trainer import TrainConfig
    # the recipe of the config; the loader settings are TrainConfig's defaults (or --workers / --threads), as in
    # the speed rows
    base = {k: v for k, v in json.loads((ROOT / "configs" / "lspet_compact.json").read_text()).items()
            if k not in ("workers", "threads")}
    rows = {}
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        amp = PRECISIONS[precision]
        run_dir = ROOT / "runs" / "train_speed" / f"compact_{precision}_{args.train_epochs}ep"
        cfg = TrainConfig.from_dict({**base, "train": resolve_spec(base["train"]), "val": resolve_spec(base["val"]),
                                     "epochs": args.train_epochs, "val_every": args.train_epochs, "out": str(run_dir),
                                     "amp": amp, "progress": sys.stderr.isatty()})
        if args.workers is not None or args.threads is not None:
            cfg = dataclasses.replace(cfg, **{k: v for k, v in (("workers", args.workers), ("threads", args.threads))
                                              if v is not None})
        record = train_once(cfg, run_dir)
        epochs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        rows[precision] = {"val_pck@0.2_torso": epochs[-1]["val"]["pck@0.2_torso"],
                           "val_pckh@0.5": epochs[-1]["val"].get("pckh@0.5"),
                           "train_minutes": round(sum(e["seconds"] for e in epochs) / 60, 1),
                           "images_per_s_per_epoch": [e["images_per_s"] for e in epochs],
                           "final_loss": epochs[-1]["loss"], "run_dir": str(run_dir.relative_to(ROOT)),
                           "workers": cfg.workers, "threads": cfg.threads, "resumed_at_epoch": record.get("resumed_at_epoch")}
        print(f"{precision}: {rows[precision]}", file=sys.stderr, flush=True)
    out = {"epochs": args.train_epochs, "config": "configs/lspet_compact.json", "rows": rows}
    if set(rows) == set(PRECISIONS):
        out["pck_difference_points"] = round(100 * (rows["bf16"]["val_pck@0.2_torso"] - rows["fp32"]["val_pck@0.2_torso"]), 2)
        out["bf16_speedup_of_train_time"] = round(rows["fp32"]["train_minutes"] / rows["bf16"]["train_minutes"], 3)
    return out


# -- the tables ---------------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    lines = []
    speed = results.get("speed")
    if speed:
        lines += [f"Speed ({speed['date']}; `{speed['command']}`; {speed['budget']}, {speed['rounds_done']} rounds done; "
                  f"workers {speed['workers']}, threads {speed['threads']}, crop threads "
                  f"{speed.get('loader_threads', 1)}, crop cache {'on' if speed['crop_cache'] else 'off'}; load average per "
                  f"round {speed['load_average_per_round']}). Images/s are medians over the rounds; ratios are medians "
                  "of the per-round ratios.", ""]
        lines += table(["training", "precision", "model-only img/s", "end-to-end img/s", "end-to-end / model-only",
                        "bf16 / fp32 model-only", "bf16 / fp32 end-to-end"],
                       [(name, p, r[p]["model_only"], r[p]["end_to_end"], f"{r[p]['end_to_end_over_model_only']:.2f}",
                         f"{r['bf16_over_fp32_model_only']:.2f}" if p == "bf16" else "",
                         f"{r['bf16_over_fp32_end_to_end']:.2f}" if p == "bf16" else "")
                        for name, r in speed["rows"].items() for p in PRECISIONS],
                       align=["---", "---", "---:", "---:", "---:", "---:", "---:"])
        if speed.get("loader_sweep"):
            lines += ["", "The compact model end to end with other loader settings (the ratio is to the same round's "
                      "model-only rate with the default threads):", ""]
            lines += table(["loader", "fp32 img/s", "fp32 / model-only", "bf16 img/s", "bf16 / model-only"],
                           [(row, v["fp32"]["end_to_end"], f"{v['fp32']['over_model_only']:.2f}",
                             v["bf16"]["end_to_end"], f"{v['bf16']['over_model_only']:.2f}")
                            for row, v in speed["loader_sweep"].items()], align=["---", "---:", "---:", "---:", "---:"])
        pixels = speed["crop_cache_pixels"]
        lines += ["", "Crop cache against decoding every image: mean absolute pixel difference "
                  + ", ".join(f"{v} levels at {k.split('_')[0]}" for k, v in pixels.items())
                  + " (400 train people, seed 0 augmentation; keypoints, targets and matrices identical)."]
    training = results.get("training")
    if training:
        rows = training["rows"]
        lines += ["", f"{training['epochs']}-epoch LSPET training of the compact model ({training['config']}, seed 0; "
                  f"`{training['command']}`, {training['date']}); val = LSPET val, flip test:", ""]
        lines += table(["precision", "val PCK@0.2 torso", "val PCKh@0.5", "train minutes", "images/s per epoch"],
                       [(p, f"{100 * r['val_pck@0.2_torso']:.2f}", f"{100 * r['val_pckh@0.5']:.2f}", r["train_minutes"],
                         ", ".join(str(v) for v in r["images_per_s_per_epoch"])) for p, r in rows.items()],
                       align=["---", "---:", "---:", "---:", "---"])
        if "pck_difference_points" in training:
            lines += ["", f"bf16 - fp32: {training['pck_difference_points']:+.2f} PCK points; fp32 minutes / bf16 "
                      f"minutes: {training['bf16_speedup_of_train_time']:.2f}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["environment"] = environment("python", "torch", "numpy", "opencv", "cpu", "logical_cpus")
    stamp = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
             "command": command("benchmarks/train_speed.py", python=True), "seed": SEED}
    title = "# Training throughput on the CPU\n\n"
    if args.train_epochs:
        results["training"] = {**run_trainings(args), **stamp}
    else:
        budget = {"rounds": args.rounds, "warmup_steps": args.warmup, "timed_steps": args.steps, "batch": BATCH}

        def write_round(partial: dict) -> None:
            results["speed"] = {**partial, **stamp, "budget": budget}
            write_results(results, args.out, title + markdown(results))
        write_round(run_speed(args, on_round=write_round))
    write_results(results, args.out, title + markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
