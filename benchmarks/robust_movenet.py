"""AdvMix and AID as fine-tuning of a pretrained model: corruption robustness of the LSPET MoveNet Lightning.

Every trained row starts from ``--base`` (default ``zoo/lspet_movenet_lightning.pt``, 192 px) and trains
``--epochs`` more epochs over the 7,200 LSPET train images (batch 32, AdamW lr ``--lr`` 1e-4, 50 warm-up
iterations + cosine, seed 0, bf16 autocast with ``--amp``):

=====================  ============================================================================================
base                   the starting model itself (no training)
supervised_ft          the control: the same epochs, plain heatmap MSE
aid_ft                 supervised + AID information dropping (aid_prob 0.5)
advmix_ft              AdvMix (U-Net generator, K = 2 copies by AutoAugment-style ops + GridMask), teacher = the
                       base model (frozen, clean crops), alpha 0.1: the paper's fine-tuning recipe
advmix_ft_glr1e-4      the same, generator learning rate 1e-4 instead of 1e-3 (a weaker adversary)
advmix_ft_floor0.5     the same, the clean image keeps at least half of every pixel's weight
advmix_ft_floor0.6     the same, at least 0.6 of every pixel's weight
advmix_ft_every4       the same, one generator step every 4 pose steps (fewer adversarial steps)
=====================  ============================================================================================

Scores: clean PCK@0.2 torso on all of LSPET val (800 people, flip test); mPC (mean over the 15 ImageNet-C
corruptions x 5 severities, :mod:`posekit.engine.robustness`, the full image corrupted before the crop,
per-image seeds) and rPC = mPC / clean on the first ``--limit`` val images (default 200; their clean score
is the rPC denominator). For the AdvMix rows, the generator's mean weight on the clean image per epoch.

Resumable: finished rows are skipped, trainings resume from ``last.pt``, evaluations reuse finished
conditions (``runs/robust_movenet/<budget>/<row>/robustness``)::

    python benchmarks/robust_movenet.py --amp
    python benchmarks/robust_movenet.py --amp --rows base,supervised_ft,advmix_ft --limit 100
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import (add_study_args, add_training_args, command, environment, fill_rows, finish_study, load_average,
                    open_study, pct, repo_path, resolve_spec, selected_rows, table, train_once)

#: row -> (what, method, method kwargs beyond the teacher, augment)
ROWS = {
    "base": ("the starting model, no training", None, {}, {}),
    "supervised_ft": ("supervised fine-tune", "supervised", {}, {}),
    "aid_ft": ("supervised + AID (aid_prob 0.5)", "supervised", {}, {"aid_prob": 0.5}),
    "advmix_ft": ("AdvMix, teacher = base, alpha 0.1", "advmix", {}, {}),
    "advmix_ft_glr1e-4": ("AdvMix, generator lr 1e-4", "advmix", {"generator_lr": 1e-4}, {}),
    "advmix_ft_floor0.5": ("AdvMix, clean weight >= 0.5", "advmix", {"clean_floor": 0.5}, {}),
    "advmix_ft_floor0.6": ("AdvMix, clean weight >= 0.6", "advmix", {"clean_floor": 0.6}, {}),
    "advmix_ft_every4": ("AdvMix, a generator step every 4 steps", "advmix", {"generator_every": 4}, {}),
}
DEFAULT_ROWS = ("base", "supervised_ft", "aid_ft", "advmix_ft")
METRIC = "pck@0.2_torso"


def parse_args(argv=None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="zoo/lspet_movenet_lightning.pt")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--amp", action="store_true", help="bf16 autocast for every training")
    add_training_args(p, workers=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=200, help="val images of the corruption grid")
    p.add_argument("--clean-limit", type=int, help="val people of the clean score (default: all)")
    p.add_argument("--severities", default="1,2,3,4,5")
    p.add_argument("--corruptions", default="all")
    add_study_args(p, "robust_movenet")
    return p, p.parse_args(argv)


def budget(args) -> dict:
    return {"base": args.base, "epochs": args.epochs, "lr": args.lr, "alpha": args.alpha, "amp": args.amp,
            "batch_size": args.batch_size, "max_iters": args.max_iters, "limit": args.limit,
            "clean_limit": args.clean_limit, "severities": args.severities, "corruptions": args.corruptions,
            "seed": 0}


def budget_name(b: dict) -> str:
    return f"e{b['epochs']}_lr{b['lr']:g}" + ("_bf16" if b["amp"] else "") + (f"_m{b['max_iters']}" if b["max_iters"] else "")


def row_config(row: str, args, out: Path):
    from posekit.checkpoint import load_checkpoint
    from posekit.engine.trainer import TrainConfig
    _, method, extra, augment = ROWS[row]
    base = load_checkpoint(repo_path(args.base))["config"]
    kwargs = {"teacher": repo_path(args.base), "alpha": args.alpha, **extra} if method == "advmix" else {}
    return TrainConfig(train=resolve_spec(args.train), val=None, out=str(out), model=base["model"]["name"],
                       model_kwargs={k: v for k, v in base["model"]["kwargs"].items() if k != "num_keypoints"},
                       init=repo_path(args.base), input_size=tuple(base["input_size"]),
                       sigma=base["codec"]["sigma"], decode="dark", epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, weight_decay=1e-4, warmup_iters=50, final_lr_ratio=0.01, seed=0, amp=args.amp,
                       workers=args.workers, threads=args.threads, max_iters_per_epoch=args.max_iters,
                       augment=dict(augment), method=method, method_kwargs=kwargs, progress=sys.stderr.isatty())


def clean_weight_per_epoch(run_dir: Path) -> list[float]:
    """The generator's mean weight on the clean image, per epoch (the trainer's log)."""
    log = run_dir / "log.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return [round(float(r["w_clean"]), 4) for r in lines if "w_clean" in r]


def compute_row(row: str, args, run_root: Path) -> dict:
    from posekit.data.formats import load_samples
    from posekit.engine import robustness as rb
    from posekit.engine.evaluate import evaluate_samples
    from posekit.inference.predictor import Predictor
    out = run_root / row
    record = {"train_seconds": None}
    checkpoint = repo_path(args.base)
    if ROWS[row][1] is not None:
        record = train_once(row_config(row, args, out), out)
        checkpoint = record["checkpoint"]
    predictor = Predictor.load(checkpoint)
    clean = evaluate_samples(predictor, load_samples(resolve_spec(args.val))[:args.clean_limit])
    grid = rb.run_robustness(predictor, resolve_spec(args.val), corruptions=rb.parse_corruptions(args.corruptions),
                             severities=rb.parse_severities(args.severities), limit=args.limit, seed=0,
                             metric=METRIC, out=out / "robustness", fingerprint=rb.file_fingerprint(checkpoint),
                             checkpoint=str(checkpoint))
    return {"what": ROWS[row][0], "checkpoint": str(checkpoint), "train_seconds": record["train_seconds"],
            "clean_all": clean[METRIC], "clean_people": clean["n_evaluated"], "clean": grid["clean"],
            "mPC": grid["mPC"], "rPC": grid["rPC"], "per_corruption": grid["per_corruption"],
            "complete": grid["complete"], "n_images": grid["n_images"], "w_clean": clean_weight_per_epoch(out)}


def markdown(results: dict) -> str:
    rows = results["rows"]
    b = results["budget"]
    ref = rows.get("supervised_ft")

    def delta(row, key):
        return "-" if ref is None or row is ref else f"{100 * (row[key] - ref[key]):+.1f}"
    lines = table(["row", "what", "clean PCK@0.2 (all val)", "vs supervised_ft", f"clean ({b['limit']} img)", "mPC",
                   "rPC", "rPC vs supervised_ft", "clean-image weight per epoch", "train min"],
                  ([name, r["what"], pct(r["clean_all"]), delta(r, "clean_all"), pct(r["clean"]), pct(r["mPC"]),
                    pct(r["rPC"]), delta(r, "rPC"), ", ".join(f"{w:.2f}" for w in r["w_clean"]) or "-",
                    "-" if not r["train_seconds"] else f"{r['train_seconds'] / 60:.1f}"] for name, r in rows.items()),
                  align=["---", "---", *["---:"] * 8])
    return "\n".join([
        f"Fine-tuned from {b['base']}: {b['epochs']} epochs of LSPET train, lr {b['lr']:g}, seed {b['seed']}, "
        f"{'bf16 autocast' if b['amp'] else 'fp32'}, AdvMix alpha {b['alpha']}. Clean on all LSPET val people "
        f"(flip test); mPC / rPC over 15 corruptions x severities {b['severities']} on the first {b['limit']} "
        "val images.", "", *lines, "", f"Command: `{results['command']}`", ""])


def main(argv=None) -> int:
    p, args = parse_args(argv)
    if args.list:
        for name, (what, *_rest) in ROWS.items():
            print(f"{name:20s} {what}")
        return 0
    import torch
    torch.set_num_threads(args.threads)
    rows = selected_rows(p, args, list(ROWS), default=DEFAULT_ROWS)
    b = budget(args)
    results = open_study(args.out, b, command=command("benchmarks/robust_movenet.py", python=True),
                         environment=environment("cpu"))
    results.setdefault("load_average", []).append(load_average())
    run_root = args.runs / budget_name(b)
    fill_rows(results, rows, lambda row: compute_row(row, args, run_root), args.out, markdown, force=args.force)
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
