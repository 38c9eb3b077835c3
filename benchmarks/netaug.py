"""NetAug on the compact LSPET student: network augmentation alone and stacked on FPD, against the same student
without it at equal training compute.

Student: posekit's compact ``simplebaseline_r18`` (width 0.4, ``deconv_channels`` 96, 0.30 GFLOPs) at 128x128
(heatmap sigma 2), started from ``zoo/lspet_compact_pretrained.pt``; AdamW lr 5e-4, weight decay 1e-4, 100
warm-up iterations + cosine to 1%, seed 0, batch 32, ``--epochs`` over the 7,200 LSPET train images, bf16
autocast with ``--amp``. Rows:

===========  ====================================================================================================
alone        supervised heatmap MSE
netaug       ``--method netaug``: each step the student's loss plus the loss of ONE augmented model (the student
             ``r`` x wider, ``r`` drawn uniformly from ``--widths``, default 1.8, 2.6: at 2.6 about the full-size
             SimpleBaseline-R18) that holds the student's weights in its leading slices, weight ``--aug-weight``
alone_equal  the control of netaug: alone for ``round(epochs * C)`` epochs, C = netaug's training compute per
             step over alone's (below)
fpd          FPD from ``--teacher`` (default ``zoo/lspet_movenet_thunder.pt``): 0.5 MSE(teacher) + 0.5 MSE(labels)
fpd_netaug   netaug with FPD's loss on the student and on the augmented model (``--teacher``, ``--alpha``)
fpd_equal    (not run by default) the control of fpd_netaug: fpd for ``round(epochs * C_fpd)`` epochs
===========  ====================================================================================================

**Equal compute** is matched on FLOPs, not on wall time (the 2-core machine this runs on is shared, so measured
time says as much about the other jobs as about the method): a training step costs 3x the forward FLOPs of every
network it trains (forward + a backward of about twice the forward) plus 1x the forward of a frozen teacher;
NetAug's augmented pass costs the mean over ``--widths`` of the wider model's 3x forward FLOPs. Data loading and
the optimiser are not counted. C, the epochs it gives and the measured seconds per step of every row are in the
table, so the time-matched reading can be made from the same numbers.

Every row: LSPET val (800 people, flip test, DARK decoding), PCK@0.2 torso on the 14 joints and on the 12 that
BlazePose shares (``posekit.zoo.LSP_SHARED_WITH_BLAZEPOSE``), PCK@0.05 box, the deployed checkpoint's FLOPs (the
same for every row: NetAug deploys the plain student), the training wall time and seconds per step.

Resumable (``fill_rows``; run folders ``runs/netaug/<budget>/<row>`` resume from ``last.pt``)::

    python benchmarks/netaug.py --amp                         # the five default rows, 2 epochs each
    python benchmarks/netaug.py --amp --rows alone,netaug --widths 1.5,2.0
    python benchmarks/netaug.py --max-iters 2 --limit 20 --out OUT/netaug.json --runs OUT/runs   # smoke test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (add_study_args, add_training_args, checkpoint_flops, command, environment, fill_rows,
                    finish_study, list_rows, load_average, lsp_scores, open_study, repo_path, resolve_spec,
                    selected_rows, table, train_once)

STUDENT = {"model": "simplebaseline_r18", "model_kwargs": {"width": 0.4, "deconv_channels": 96},
           "init": "zoo/lspet_compact_pretrained.pt", "sigma": 2.0, "lr": 5e-4}
#: row -> (method, with the teacher, NetAug on, the row whose compute it matches (None: its own), what)
ROWS = {
    "alone": ("supervised", False, False, None, "supervised"),
    "netaug": ("netaug", False, True, None, "NetAug"),
    "alone_equal": ("supervised", False, False, "netaug", "supervised, epochs for netaug's compute"),
    "fpd": ("fpd", True, False, None, "FPD"),
    "fpd_netaug": ("netaug", True, True, None, "NetAug with FPD's loss on both models"),
    "fpd_equal": ("fpd", True, False, "fpd_netaug", "FPD, epochs for fpd_netaug's compute"),
}
DEFAULT_ROWS = ("alone", "netaug", "alone_equal", "fpd", "fpd_netaug")


def parse_args(argv=None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="zoo/lspet_movenet_thunder.pt")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--widths", default="1.8,2.6", help="NetAug's augmented widths (factors of the student's)")
    p.add_argument("--aug-weight", type=float, default=1.0, help="weight of the augmented model's loss")
    p.add_argument("--alpha", type=float, default=0.5, help="FPD's distillation weight")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for every training")
    add_training_args(p, workers=1)
    p.add_argument("--threads", type=int, default=2, help="training threads")
    p.add_argument("--limit", type=int, help="first N val people only (smoke tests)")
    add_study_args(p, "netaug")
    args = p.parse_args(argv)
    from posekit.methods.netaug import parse_widths
    args.widths = parse_widths(args.widths)
    return p, args


def budget(args) -> dict:
    return {"epochs": args.epochs, "input_size": args.input_size, "batch_size": args.batch_size, "amp": args.amp,
            "widths": list(args.widths), "aug_weight": args.aug_weight, "alpha": args.alpha, "teacher": args.teacher,
            "seed": 0, "max_iters": args.max_iters, "val_people": args.limit}


def budget_name(b: dict) -> str:
    return f"e{b['epochs']}_i{b['input_size']}_w{'-'.join(f'{w:g}' for w in b['widths'])}" + \
        (f"_a{b['aug_weight']:g}" if b["aug_weight"] != 1.0 else "") + ("_bf16" if b["amp"] else "") + \
        (f"_m{b['max_iters']}" if b["max_iters"] else "")


def step_compute(args) -> dict:
    """Forward FLOPs of one crop through each network, and every row's training FLOPs per step over alone's."""
    from posekit.methods.netaug import widened_kwargs
    from posekit.models.flops import model_info
    size, kwargs = (args.input_size, args.input_size), STUDENT["model_kwargs"]
    student = model_info(STUDENT["model"], size, 14, **kwargs)["flops"]
    augmented = [model_info(STUDENT["model"], size, 14, **widened_kwargs(kwargs, r))["flops"] for r in args.widths]
    teacher = checkpoint_flops(repo_path(args.teacher))  # it sees the crop resampled to its own input
    per_step = {"alone": 3 * student, "fpd": 3 * student + teacher}
    extra = 3 * sum(augmented) / len(augmented)
    per_step |= {"netaug": per_step["alone"] + extra, "fpd_netaug": per_step["fpd"] + extra}
    return {"flops": {"student": student, "teacher": teacher, **{f"augmented_{r:g}": f for r, f in
                                                                 zip(args.widths, augmented)}},
            "per_step_over_alone": {row: round(f / per_step["alone"], 3) for row, f in per_step.items()},
            "per_step": per_step}


def step_kind(row: str) -> str:
    """The key of ``step_compute()["per_step"]`` that one training step of ``row`` costs."""
    method, distil, netaug, _, _ = ROWS[row]
    return ("fpd_netaug" if distil else "netaug") if netaug else ("fpd" if distil else "alone")


def row_epochs(row: str, args, compute: dict) -> int:
    """``--epochs``, or the epochs that give the matched row's training compute."""
    matched, per_step = ROWS[row][3], compute["per_step"]
    if matched is None:
        return args.epochs
    return max(1, round(args.epochs * per_step[step_kind(matched)] / per_step[step_kind(row)]))


def row_config(row: str, args, out: Path, epochs: int):
    from posekit.engine.trainer import TrainConfig
    method, distil, _, _, _ = ROWS[row]
    kwargs = {"teacher": repo_path(args.teacher), "alpha": args.alpha} if distil else {}
    if method == "netaug":
        kwargs |= {"widths": list(args.widths), "aug_weight": args.aug_weight}
    return TrainConfig(train=resolve_spec(args.train), val=None, out=str(out), model=STUDENT["model"],
                       model_kwargs=dict(STUDENT["model_kwargs"]), init=repo_path(STUDENT["init"]),
                       input_size=(args.input_size, args.input_size), sigma=STUDENT["sigma"], decode="dark",
                       epochs=epochs, batch_size=args.batch_size, lr=STUDENT["lr"], weight_decay=1e-4,
                       warmup_iters=100, final_lr_ratio=0.01, seed=0, amp=args.amp, workers=args.workers,
                       threads=args.threads, max_iters_per_epoch=args.max_iters, method=method,
                       method_kwargs=kwargs, progress=sys.stderr.isatty())


def compute_row(row: str, args, samples, run_root: Path, compute: dict) -> dict:
    from posekit.inference.predictor import Predictor
    epochs = row_epochs(row, args, compute)
    record = train_once(row_config(row, args, run_root / row, epochs), run_root / row)
    images_per_s = record["final_epoch"].get("images_per_s")
    per_step = compute["per_step"]
    step = per_step[step_kind(row)] / per_step["alone"]
    return {"what": ROWS[row][4], "checkpoint": record["checkpoint"], "epochs": epochs,
            "train_seconds": record["train_seconds"],
            "seconds_per_step": round(args.batch_size / images_per_s, 3) if images_per_s else None,
            "step_flops_over_alone": round(step, 3), "train_flops_over_alone": round(step * epochs / args.epochs, 3),
            "deployed_gflops": round(checkpoint_flops(record["checkpoint"]) / 1e9, 3),
            **lsp_scores(Predictor.from_checkpoint(record["checkpoint"]), samples)}


def markdown(results: dict) -> str:
    def cells(name, row):
        minutes = "-" if not row.get("train_seconds") else f"{row['train_seconds'] / 60:.1f}"
        return [name, row["what"], row["epochs"], f"{100 * row['pck@0.2_torso_12']:.1f}",
                f"{100 * row['pck@0.2_torso']:.1f}", f"{100 * row['pck@0.05_box']:.1f}",
                f"{row['deployed_gflops']:.2f}",
                f"{row['step_flops_over_alone']:.2f}", f"{row['train_flops_over_alone']:.2f}",
                row.get("seconds_per_step") or "-", minutes]
    b, c = results["budget"], results["compute"]
    lines = table(["row", "what", "epochs", "PCK@0.2 (12)", "PCK@0.2 (14)", "PCK@0.05 box", "deployed GFLOPs",
                   "step FLOPs / alone's", "training FLOPs / alone's", "s / step", "train min"],
                  (cells(n, r) for n, r in results["rows"].items()), align=["---", "---", *["---:"] * 9])
    first = next(iter(results["rows"].values()), {})
    return "\n".join([
        f"LSPET val ({first.get('n_people', '-')} people, flip test, DARK). Student simplebaseline_r18 width 0.4, "
        f"deconv 96, {b['input_size']} px, from zoo/lspet_compact_pretrained.pt; {b['epochs']} epochs of batch "
        f"{b['batch_size']} (the *_equal rows: more), seed {b['seed']}, {'bf16 autocast' if b['amp'] else 'fp32'}. "
        f"NetAug widths {b['widths']} (one per step, uniform), augmented loss weight {b['aug_weight']}; FPD teacher "
        f"{b['teacher']}, alpha {b['alpha']}.", "", *lines, "",
        "Compute per training step, forward FLOPs of one crop x 3 for each trained network (+ 1x the frozen "
        f"teacher): student {c['flops']['student'] / 1e9:.2f} G, augmented "
        + ", ".join(f"{k[len('augmented_'):]}x {v / 1e9:.2f} G" for k, v in c["flops"].items()
                    if k.startswith("augmented_"))
        + f", teacher {c['flops']['teacher'] / 1e9:.2f} G. s / step: measured in the last epoch (shared machine).",
        "", f"Command: `{results['command']}`", ""])


def main(argv=None) -> int:
    p, args = parse_args(argv)
    names = selected_rows(p, args, list(ROWS), DEFAULT_ROWS)
    if args.list:
        return list_rows({name: spec[4] for name, spec in ROWS.items()}, 12)
    import torch
    torch.set_num_threads(args.threads)
    from posekit.data.formats import load_samples

    b = budget(args)
    compute = step_compute(args)
    results = open_study(args.out, b, command=command("benchmarks/netaug.py", python=True),
                         environment=environment("cpu"), threads=args.threads, compute=compute)
    results.setdefault("load_average", []).append(load_average())
    samples = load_samples(resolve_spec(args.val))[:args.limit]
    run_root = args.runs / budget_name(b)
    fill_rows(results, names, lambda name: compute_row(name, args, samples, run_root, compute), args.out, markdown,
              force=args.force)
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
