"""LSPET corruption robustness: standard training vs AID vs AdvMix (with / without the teacher).

Run from the repository root:

    PYTHONPATH=. python benchmarks/robustness.py --epochs 80                # the full experiment
    PYTHONPATH=. python benchmarks/robustness.py --epochs 80 --limit 200 --severities 1,3,5   # cheaper eval
    PYTHONPATH=. python benchmarks/robustness.py ... --checkpoint zoo/lspet_compact.pt      # + extra models

Every row trains the same model (simplebaseline_r18, width 0.4, 96 deconv channels, 128x128 input) with
the same budget (``--epochs`` over LSPET train, batch 32, AdamW 2e-3, warm-up + cosine: the settings of
``configs/lspet_compact.json``), then is evaluated on LSPET val clean and under the 15 ImageNet-C
corruptions x 5 severities (:mod:`posekit.engine.robustness`: the full image is corrupted before the
crop, per-image seeds), metric PCK@0.2 (torso):

* ``standard``          supervised heatmap MSE;
* ``aid``               the same + AID information dropping (``augment.aid_prob``, ``--aid-prob``);
* ``advmix``            AdvMix, teacher = the ``standard`` row's final model, alpha 0.1;
* ``advmix_noteacher``  AdvMix without knowledge distillation;
* ``advmix_ft``         AdvMix as the official code runs it: the pose network starts from the ``standard``
                        row's final model, which is also the frozen teacher, and trains ``--finetune-epochs``
                        more epochs with AdvMix (alpha 0.1);
* ``standard_ft``       its control: the same start and ``--finetune-epochs`` more epochs, plain supervised.

The ``*_ft`` rows use the same optimiser and schedule (warm-up + cosine) over their extra epochs.

Reported per row: clean PCK, mPC, rPC, drop (clean - mPC), and the per-corruption means. Extra
``--checkpoint`` models (``PATH`` or ``NAME=PATH``) are only evaluated (their clean -> corrupted drop).

Resumable at three levels: finished rows with the same settings are skipped (``--results`` json);
training resumes from the run's ``last.pt``; an interrupted evaluation reuses its finished conditions.
Writes ``benchmarks/results/robustness.json`` and ``.md`` (``--results``). Runs go to ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from common import ROOT, resolve_spec, write_results
from posekit.data.corruptions import CORRUPTIONS
from posekit.engine import robustness as rb

RESULTS = ROOT / "benchmarks" / "results" / "robustness.json"
ROWS = ("standard", "aid", "advmix", "advmix_noteacher", "standard_ft", "advmix_ft")
#: rows that need the standard row's final model (as teacher or starting point)
NEEDS_STANDARD = ("advmix", "standard_ft", "advmix_ft")
METRIC = "pck@0.2_torso"
MODEL = {"model": "simplebaseline_r18", "model_kwargs": {"width": 0.4, "deconv_channels": 96}, "input_size": [128, 128]}

log = logging.getLogger("robustness_benchmark")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--epochs", type=int, default=80, help="training epochs of every row (the budget)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    p.add_argument("--limit", type=int, help="evaluate on the first N val images only")
    p.add_argument("--severities", default="1,2,3,4,5")
    p.add_argument("--corruptions", default="all")
    p.add_argument("--checkpoint", action="append", default=[], help="extra model to evaluate: PATH or NAME=PATH")
    p.add_argument("--force", action="store_true",
                   help="retrain and re-evaluate the --rows even when finished rows with the same settings exist")
    p.add_argument("--aid-prob", type=float, default=0.5, help="augment.aid_prob of the aid row")
    p.add_argument("--alpha", type=float, default=0.1, help="AdvMix distillation weight")
    p.add_argument("--finetune-epochs", type=int, default=5,
                   help="extra epochs of the *_ft rows, started from the standard row's model")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="training seed and corruption seed")
    p.add_argument("--max-iters", type=int, help="cap iterations per epoch (smoke tests only)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "robustness_bench"), help="training / evaluation folders")
    p.add_argument("--results", default=str(RESULTS), help="results json (the markdown goes next to it)")
    p.add_argument("--threads", type=int,
                   help="torch threads for training and evaluation (default: all cores; 1 lets two jobs share 2 cores)")
    p.add_argument("--standard-from", type=Path,
                   help="a finished run folder (config.json + model.pt) to use as the standard row instead of "
                        "training it again, e.g. benchmarks/tricks.py's heatmap_128 run; refused unless its "
                        "training config equals this row's")
    return p.parse_args(argv)


# -- rows ----------------------------------------------------------------------------------------
def train_config(args, name: str, run_dir: Path, teacher: Path | None) -> dict:
    base = json.loads((ROOT / "configs" / "lspet_compact.json").read_text())
    cfg = {**base, **MODEL, "train": resolve_spec(args.train), "val": None, "out": str(run_dir), "epochs": args.epochs,
           "batch_size": args.batch_size, "workers": args.workers, "seed": args.seed, "progress": False,
           "threads": args.threads,
           "max_iters_per_epoch": args.max_iters, "augment": {}, "method": "supervised", "method_kwargs": {}}
    if name == "aid":
        cfg["augment"] = {"aid_prob": args.aid_prob}
    elif name.startswith("advmix"):
        cfg["method"] = "advmix"
        cfg["method_kwargs"] = {"alpha": args.alpha}
        if name != "advmix_noteacher":
            cfg["method_kwargs"]["teacher"] = str(teacher)
    if name.endswith("_ft"):
        cfg["epochs"] = args.finetune_epochs
        cfg["init"] = str(teacher)
    return cfg


def train_row(args, name: str, run_dir: Path, teacher: Path | None) -> tuple[Path, dict]:
    """Train (or finish training) one row; returns (final checkpoint, its training config)."""
    from posekit.engine.checkpoint import load_checkpoint
    from posekit.engine.trainer import TrainConfig
    from posekit.methods import build_trainer as Trainer
    cfg = train_config(args, name, run_dir, teacher)
    if name == "standard" and args.standard_from:
        return reuse_run(args.standard_from, cfg), cfg
    final, last = run_dir / "model.pt", run_dir / "last.pt"
    if final.exists() and last.exists() and load_checkpoint(last)["epoch"] >= cfg["epochs"]:
        log.info("%s: already trained (%s)", name, final)
        return final, cfg
    log.info("%s: training %d epochs in %s", name, cfg["epochs"], run_dir)
    t0 = time.time()
    Trainer(TrainConfig.from_dict(cfg), resume=True).fit()
    (run_dir / "train_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")
    return final, cfg


#: TrainConfig fields that change only speed or bookkeeping, never the trained weights (augmentation and
#: shuffling derive from (seed, epoch, index), so the worker count does not matter)
NOT_TRAINING = {"out", "val", "val_every", "workers", "threads", "progress"}


def reuse_run(run_dir: Path, cfg: dict) -> Path:
    """The ``model.pt`` of a finished run whose training config equals ``cfg`` (ignoring NOT_TRAINING fields)."""
    from posekit.engine.trainer import TrainConfig
    run_dir = Path(run_dir)
    final, config = run_dir / "model.pt", run_dir / "config.json"
    if not final.exists() or not config.exists():
        raise SystemExit(f"--standard-from {run_dir}: no finished run there (model.pt and config.json needed)")
    theirs = TrainConfig.from_dict(json.loads(config.read_text())).to_dict()
    ours = TrainConfig.from_dict(cfg).to_dict()
    differ = sorted(k for k in set(ours) | set(theirs)
                    if k not in NOT_TRAINING and json.dumps(ours.get(k)) != json.dumps(theirs.get(k)))
    if differ:
        raise SystemExit(f"--standard-from {run_dir}: trained with other settings ({', '.join(differ)}): "
                         + "; ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differ))
    log.info("standard: reusing %s (same training config)", final)
    return final


def evaluate(args, checkpoint: Path, out: Path) -> dict:
    from posekit.inference.predictor import Predictor
    predictor = Predictor.load(checkpoint)
    t0 = time.time()
    result = rb.run_robustness(predictor, args.val, corruptions=rb.parse_corruptions(args.corruptions),
                               severities=rb.parse_severities(args.severities), limit=args.limit, seed=args.seed,
                               metric=METRIC, out=out, fingerprint=rb.file_fingerprint(checkpoint),
                               checkpoint=str(checkpoint))
    return {"clean": result["clean"], "mPC": result["mPC"], "rPC": result["rPC"],
            "drop": result["clean"] - result["mPC"], "per_corruption": result["per_corruption"],
            "table": result["table"], "complete": result["complete"], "n_images": result["n_images"],
            "eval_seconds": round(time.time() - t0, 1), "robustness_dir": str(out)}


def eval_settings(args) -> dict:
    return {"val": args.val, "limit": args.limit, "severities": list(rb.parse_severities(args.severities)),
            "corruptions": list(rb.parse_corruptions(args.corruptions)), "seed": args.seed, "metric": METRIC}


def row_settings(args, name: str) -> dict:
    s = {"train": args.train, "epochs": args.epochs, "batch_size": args.batch_size, "max_iters": args.max_iters,
         **MODEL, **eval_settings(args)}
    if name == "aid":
        s["aid_prob"] = args.aid_prob
    if name.startswith("advmix"):
        s["alpha"] = None if name == "advmix_noteacher" else args.alpha
    if name.endswith("_ft"):
        s["finetune_epochs"] = args.finetune_epochs
    return s


def measured_aid_rate(args, n: int = 64) -> float:
    """Fraction of training crops AID actually changes at ``aid_prob`` (compared with the same crops at 0)."""
    from posekit.codecs import HeatmapCodec
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import AugmentConfig
    from posekit.engine.trainer import skeleton_of
    samples = load_samples(args.train)[:n]
    _, flip_index = skeleton_of(samples)
    codec = HeatmapCodec(input_size=tuple(MODEL["input_size"]))

    def build(p):
        return TopDownDataset(samples, codec, tuple(MODEL["input_size"]), flip_index=np.array(flip_index), train=True,
                              augment=AugmentConfig(aid_prob=p), seed=args.seed)
    plain, aid = build(0.0), build(args.aid_prob)
    return float(np.mean([not np.array_equal(plain[i]["image"], aid[i]["image"]) for i in range(len(samples))]))


# -- report --------------------------------------------------------------------------------------
def pct(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def markdown(results: dict) -> str:
    rows = results["rows"]
    s = results["settings"]
    current = {k: s[k] for k in ("val", "limit", "severities", "corruptions", "seed", "metric")}
    stale = {name for name, r in rows.items() if {k: r["settings"].get(k) for k in current} != current}
    lines = ["| model | training | clean PCK@0.2 | mPC | rPC | drop (clean - mPC) |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        mark = " (†)" if name in stale else ""
        lines.append(f"| {name}{mark} | {r.get('training', '-')} | {pct(r['clean'])} | {pct(r['mPC'])} | "
                     f"{pct(r['rPC'])} | {pct(r['drop'])} |")
    corruptions = [c for c in CORRUPTIONS if any(c in r["per_corruption"] for r in rows.values())]
    if rows and corruptions:
        lines += ["", "Mean PCK@0.2 (%) over the severities, per corruption:", "",
                  "| model | " + " | ".join(c.replace("_", " ") for c in corruptions) + " |",
                  "|---|" + "---|" * len(corruptions)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(pct(r["per_corruption"].get(c)) for c in corruptions) + " |")
    lines += ["", f"LSPET val ({s['val']}), {s.get('n_images', '?')} images, severities "
                  f"{','.join(map(str, s['severities']))}, corruption seed {s['seed']}; "
                  f"every trained row: {s['epochs']} epochs of {s['train']}"
                  + (f"; the *_ft rows {s['finetune_epochs']} more, from the standard row's model."
                     if any(name.endswith("_ft") for name in rows) and s.get("finetune_epochs") else ".")]
    if stale:
        lines.append("(†) evaluated with other settings (subset, severities, corruptions or seed): see the json.")
    if any(not r.get("complete", True) for r in rows.values()):
        lines.append("Not all five severities: mPC/rPC are means over the evaluated grid, not comparable with "
                     "published five-severity numbers.")
    return "\n".join(lines) + "\n"


def save(results: dict, path: Path) -> None:
    """The json (with the table in ``results["markdown"]``) and the titled ``.md`` next to it."""
    results["markdown"] = markdown(results)
    write_results(results, path, "# Corruption robustness on LSPET\n\n" + results["markdown"])


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {ROWS}")
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("rows", {})
    results["settings"] = {"train": args.train, "epochs": args.epochs, "finetune_epochs": args.finetune_epochs,
                           **MODEL, **eval_settings(args),
                           "machine": platform.platform(), "processor": platform.processor() or platform.machine()}
    runs = Path(args.runs) / (f"e{args.epochs}" + ("" if args.max_iters is None else f"_it{args.max_iters}"))
    tag = "eval_" + ("all" if args.limit is None else f"limit{args.limit}")

    teacher = None
    needed = list(rows)
    if any(r in NEEDS_STANDARD for r in rows) and "standard" not in rows:
        needed.insert(0, "standard")  # the teacher
    for name in sorted(needed, key=ROWS.index):
        settings = row_settings(args, name)
        done = results["rows"].get(name)
        run_dir = runs / ("seed%d" % args.seed) / name
        if name == "standard":
            teacher = Path(args.standard_from) / "model.pt" if args.standard_from else run_dir / "model.pt"
        if (done and done.get("settings") == settings and (name != "standard" or teacher.exists())
                and not (args.force and name in rows)):
            log.info("%s: finished with the same settings, skipped", name)
            continue
        checkpoint, cfg = train_row(args, name, run_dir, teacher)
        if name not in rows:
            continue
        row = {"training": {"standard": "supervised", "aid": f"supervised + AID (aid_prob {args.aid_prob})",
                            "advmix": f"AdvMix, teacher = standard, alpha {args.alpha}",
                            "advmix_noteacher": "AdvMix without teacher",
                            "standard_ft": f"standard + {args.finetune_epochs} more supervised epochs",
                            "advmix_ft": f"standard + {args.finetune_epochs} AdvMix epochs, teacher = standard, "
                                         f"alpha {args.alpha}"}[name],
               "checkpoint": str(checkpoint), "settings": settings, "config": cfg}
        seconds = run_dir / "train_seconds.txt"
        if seconds.exists():
            row["train_seconds"] = float(seconds.read_text())
        if name == "aid":
            row["aid_effective_rate"] = measured_aid_rate(args)
        row.update(evaluate(args, checkpoint, run_dir / tag))
        results["rows"][name] = row
        results["settings"]["n_images"] = row["n_images"]
        save(results, results_path)
        log.info("%s: clean %.4f, mPC %.4f, rPC %.4f", name, row["clean"], row["mPC"], row["rPC"])

    for spec in args.checkpoint:
        name, _, path = spec.rpartition("=")
        path = Path(path)
        name = f"extra:{name or path.stem}"
        settings = {**eval_settings(args), "checkpoint": str(path), "weights": rb.file_fingerprint(path)}
        done = results["rows"].get(name)
        if done and done.get("settings") == settings:
            log.info("%s: finished with the same settings, skipped", name)
            continue
        row = {"training": "(given checkpoint)", "checkpoint": str(path), "settings": settings}
        row.update(evaluate(args, path, Path(args.runs) / "extra" / f"{path.stem}_{settings['weights'][:8]}" / tag))
        results["rows"][name] = row
        results["settings"]["n_images"] = row["n_images"]
        save(results, results_path)
        log.info("%s: clean %.4f -> mPC %.4f (drop %.4f)", name, row["clean"], row["mPC"], row["drop"])

    if "n_images" not in results["settings"]:  # every row was skipped: take the count from a current one
        current = eval_settings(args)
        for r in results["rows"].values():
            if all(r["settings"].get(k) == v for k, v in current.items()):
                results["settings"]["n_images"] = r["n_images"]
                break
    save(results, results_path)
    print(results["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
