"""LSPET ablation of fast pose estimation: distillation (FPD, OKDHP), re-parameterisation and activations for one
compact student at one training budget.

Every student trains for the same budget, ``--epochs`` (default 10, i.e. 2250 iterations of batch 32 on the
7200 LSPET training images) with :class:`posekit.engine.trainer.Trainer` on ``--train``
(``lsp:../shared/datasets/lspet@train``), 128x128 input and the optimiser settings of
``configs/lspet_compact.json`` (AdamW, lr 2e-3, 200 warm-up iterations, cosine decay, default augmentation,
seed 0), and is evaluated on ``--val`` (``@val``, 800 images, flip test on).

Rows (training -> evaluation):

=========================  =============================================================================
teacher                    ``--teacher CKPT``, or ``--teacher-model`` (default ``simplebaseline_r18``, full
                           width) trained here for ``--teacher-epochs`` (default: ``--epochs``)
student                    ``--student-model`` / ``--student-kwargs`` (default the compact
                           ``simplebaseline_r18 {"width": 0.4, "deconv_channels": 96}``), supervised
student + FPD              the student distilled from the teacher: alpha * MSE(teacher) + (1 - alpha) * MSE(GT)
student + FPD, alpha A     the same with alpha 0.9 instead of ``--alpha`` (more weight on the teacher)
student + FPD + unlabeled  the same, plus one batch per step of ``--unlabeled`` crops, labels withheld,
                           supervised by the teacher alone (default: the training images again -- pass a
                           folder of other people, ``folder:DIR``, for a real semi-supervised run)
student + OKDHP            online distillation: 3 branches + FAU ensemble teacher (``--okdhp-kwargs``);
                           the checkpoint and the row are the deployed single branch
RepVGG (train form)        ``--repvgg-model`` / ``--repvgg-kwargs`` student, supervised, 3x3 + 1x1 + identity
                           branches and BatchNorm as trained
RepVGG (deployed)          the SAME checkpoint after ``reparameterize()``: one 3x3 conv per block, no BN --
                           accuracy equal up to float rounding, only the latency (and FLOPs) change
student, HardSwish / Mish  the student with ``act="hardswish"`` / ``act="mish"`` instead of ReLU
=========================  =============================================================================

Each row: PCK@0.2 (torso), PCK@0.05 (box), AUC (PCK@0..0.2 torso), parameters, FLOPs (2 per multiply-add,
:func:`posekit.models.flops.count_flops`, one view at the input size) and CPU latency of the network alone at
batch 1 with ONE thread (median ms over ``--repeats`` runs). **Requirement: every student needs at most 20%
of the teacher's FLOPs**; the ratio is printed for every student row and stored in the json
(``flops_ratio_to_teacher``, ``flops_requirement_met``). With the defaults at 128x128: teacher 1.93 GFLOPs,
compact student 0.30 GFLOPs (15.8%).

Results go to ``benchmarks/results/fpd.json`` (every number, the budget, the environment) and ``fpd.md`` next to
it (the table, also printed). Resumable: rows already in the json for the same budget are skipped, finished
trainings are reused (``done.json`` in their run folder), and an interrupted training continues from its run
folder's ``last.pt`` via ``Trainer(..., resume=True)`` (run folders: ``runs/fpd/<budget>/<training>``).
Latency is wall-clock: other jobs on the machine (see the recorded load average) slow it down.

    python benchmarks/fpd.py                                   # everything, 10 epochs per training
    python benchmarks/fpd.py --teacher runs/teacher/model.pt   # distil from an existing teacher
    python benchmarks/fpd.py --rows student,student_fpd --epochs 20
    python benchmarks/fpd.py --list                            # row names
    # the committed table: the zoo compact model as teacher, a lite hourglass student at 17% of its FLOPs
    python benchmarks/fpd.py --teacher zoo/lspet_compact.pt --student-model lite_hourglass \\
        --student-kwargs '{"num_stacks": 2, "channels": 32, "depth": 4}' \\
        --repvgg-kwargs '{"widths": [16, 16, 32, 64, 96], "deconv_channels": 32}' --workers 1 --train-threads 1
    # smoke test on synthetic data (a minute):
    posekit synth --out /tmp/fpd --num 24 --size 96
    python benchmarks/fpd.py --train coco:/tmp/fpd/annotations.json --val coco:/tmp/fpd/annotations.json \\
        --unlabeled folder:/tmp/fpd/images --epochs 1 --max-iters 2 --batch-size 8 --workers 0 --input-size 64 \\
        --student-kwargs '{"width": 0.25, "deconv_channels": 32}' --teacher-kwargs '{"width": 0.5}' \\
        --repvgg-kwargs '{"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}' --repeats 3 \\
        --out /tmp/fpd/fpd.json --runs /tmp/fpd/runs
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

from common import (add_study_args, add_training_args, command, environment, fill_rows, finish_study, list_rows,
                    load_average, median_ms, open_study, repo_path, resolve_spec, reused_checkpoint, selected_rows,
                    table, train_config, train_once, write_results)

#: FPD rows with their own distillation weight instead of --alpha (the "find out why" sweep): row -> alpha
ALPHA_ROWS = {"student_fpd_a0.9": 0.9}
FLOPS_REQUIREMENT = 0.20  # a student may use at most this fraction of the teacher's FLOPs

#: row name -> (training, label, evaluate the re-parameterised deploy form)
ROWS = {
    "teacher": ("teacher", "teacher", False),
    "student": ("student", "student", False),
    "student_fpd": ("student_fpd", "student + FPD", False),
    "student_fpd_a0.9": ("student_fpd_a0.9", "student + FPD, alpha 0.9", False),
    "student_fpd_unlabeled": ("student_fpd_unlabeled", "student + FPD + unlabeled images", False),
    "student_okdhp": ("student_okdhp", "student + OKDHP", False),
    "repvgg_train": ("repvgg", "RepVGG student (train form)", False),
    "repvgg_deploy": ("repvgg", "RepVGG student (re-parameterised)", True),
    "student_hardswish": ("student_hardswish", "student, HardSwish", False),
    "student_mish": ("student_mish", "student, Mish", False),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="training epochs of every student (the one budget)")
    add_training_args(p)
    p.add_argument("--input-size", type=int, default=128, help="square model input side (default 128)")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train",
                   help="training data spec (relative paths are taken from the repository root)")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val", help="evaluation data spec")
    p.add_argument("--unlabeled", help="unlabeled data spec for FPD + unlabeled (labels withheld; default --train)")
    p.add_argument("--teacher", type=Path, help="teacher checkpoint; otherwise the teacher is trained here")
    p.add_argument("--teacher-model", default="simplebaseline_r18", help="teacher to train (without --teacher)")
    p.add_argument("--teacher-kwargs", default="{}", help="JSON model kwargs of the teacher")
    p.add_argument("--teacher-epochs", type=int, help="teacher training epochs (default: --epochs)")
    p.add_argument("--student-model", default="simplebaseline_r18")
    p.add_argument("--student-kwargs", default='{"width": 0.4, "deconv_channels": 96}', help="JSON model kwargs")
    p.add_argument("--repvgg-model", default="repvgg_lite")
    p.add_argument("--repvgg-kwargs", default='{"deconv_channels": 96}', help="JSON model kwargs")
    p.add_argument("--alpha", type=float, default=0.5, help="FPD distillation weight (0.5 as the paper)")
    p.add_argument("--okdhp-kwargs", default="{}", help='JSON OKDHP options, e.g. \'{"branches": 3}\'')
    p.add_argument("--threads", type=int, default=1, help="torch threads for the latency measurement")
    p.add_argument("--train-threads", type=int,
                   help="torch threads of each training (default: all cores; 1 lets two benchmarks share 2 cores)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per latency measurement")
    add_study_args(p, "fpd")
    p.add_argument("--remeasure-latency", action="store_true",
                   help="only re-measure the latency of every finished row, all in one go (run it on a quiet "
                        "machine: rows trained in parallel were timed under different loads)")
    args = p.parse_args(argv)
    if min(args.epochs, args.batch_size, args.repeats, args.threads, args.input_size) < 1:
        p.error("--epochs, --batch-size, --repeats, --threads and --input-size must be >= 1")
    for key in ("teacher_kwargs", "student_kwargs", "repvgg_kwargs", "okdhp_kwargs"):
        value = json.loads(getattr(args, key))
        if not isinstance(value, dict):
            p.error(f"--{key.replace('_', '-')} must be a JSON object")
        setattr(args, key, value)
    args.teacher_epochs = args.teacher_epochs or args.epochs
    args.unlabeled = args.unlabeled or args.train
    args.row_names = selected_rows(p, args, ROWS)
    return args


def budget(args) -> dict:
    """Everything that makes two tables comparable; a different budget starts a new table."""
    teacher = ({"checkpoint": str(args.teacher.resolve())} if args.teacher else
               {"model": args.teacher_model, "kwargs": args.teacher_kwargs, "epochs": args.teacher_epochs})
    return {"epochs": args.epochs, "max_iters_per_epoch": args.max_iters, "batch_size": args.batch_size,
            "input_size": args.input_size, "train": args.train, "val": args.val, "unlabeled": args.unlabeled,
            "teacher": teacher, "student": {"model": args.student_model, "kwargs": args.student_kwargs},
            "repvgg": {"model": args.repvgg_model, "kwargs": args.repvgg_kwargs}, "alpha": args.alpha,
            "okdhp": args.okdhp_kwargs}


def budget_name(b: dict) -> str:
    return (f"e{b['epochs']}" + (f"_i{b['max_iters_per_epoch']}" if b["max_iters_per_epoch"] else "")
            + (f"_b{b['batch_size']}" if b["batch_size"] != 32 else "") + f"_s{b['input_size']}")


# -- trainings -------------------------------------------------------------------------------------
def trainings(args, teacher_ckpt: str | None) -> dict:
    """training name -> TrainConfig options that differ from the shared ones."""
    student = {"model": args.student_model, "model_kwargs": dict(args.student_kwargs)}
    fpd = {"teacher": teacher_ckpt, "alpha": args.alpha}
    return {
        "teacher": {"model": args.teacher_model, "model_kwargs": dict(args.teacher_kwargs),
                    "epochs": args.teacher_epochs},
        "student": student,
        "student_fpd": {**student, "method": "fpd", "method_kwargs": fpd},
        "student_fpd_unlabeled": {**student, "method": "fpd",
                                  "method_kwargs": {**fpd, "unlabeled": resolve_spec(args.unlabeled)}},
        "student_okdhp": {**student, "method": "okdhp", "method_kwargs": dict(args.okdhp_kwargs)},
        "repvgg": {"model": args.repvgg_model, "model_kwargs": dict(args.repvgg_kwargs)},
        "student_hardswish": {**student, "model_kwargs": {**args.student_kwargs, "act": "hardswish"}},
        "student_mish": {**student, "model_kwargs": {**args.student_kwargs, "act": "mish"}},
        **{name: {**student, "method": "fpd", "method_kwargs": {**fpd, "alpha": alpha}}
           for name, alpha in ALPHA_ROWS.items()},
    }


def train(name: str, args, run_dir: Path, teacher_ckpt: str | None = None) -> dict:
    """Train (or finish training) one configuration; returns its ``done.json`` record (checkpoint, seconds, final
    training log, config)."""
    options = {"epochs": args.epochs, **trainings(args, teacher_ckpt)[name]}
    side = args.input_size
    cfg = train_config(resolve_spec(args.train), run_dir, args, input_size=(side, side), seed=0,
                       threads=args.train_threads, **options)
    return train_once(cfg, run_dir)


def teacher_training(args, run_root: Path) -> dict:
    """The given teacher checkpoint, or the teacher trained here (reused once finished)."""
    if args.teacher:
        if not args.teacher.is_file():
            raise SystemExit(f"error: teacher checkpoint not found: {args.teacher}")
        return reused_checkpoint(args.teacher.resolve())
    print(f"teacher: training {args.teacher_model} {json.dumps(args.teacher_kwargs)} for {args.teacher_epochs} "
          "epochs ...", flush=True)
    return train("teacher", args, run_root / "teacher")


# -- measurement -----------------------------------------------------------------------------------
def network_latency(model: torch.nn.Module, input_size, repeats: int, threads: int) -> float:
    """Median ms of the network alone on one (1, 3, H, W) crop, ``threads`` torch threads, channels_last."""
    w, h = input_size
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last).eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        def run():
            with torch.inference_mode():
                model(x)
        return median_ms(run, repeats)
    finally:
        torch.set_num_threads(previous)


def evaluate_row(row: str, training: dict, args) -> dict:
    from posekit.checkpoint import build_from_checkpoint
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    from posekit.models import reparameterize
    from posekit.models.flops import count_flops, count_params

    training_name, label, deploy = ROWS[row]
    model, config = build_from_checkpoint(training["checkpoint"])
    if deploy:
        model = reparameterize(model).eval()
    input_size = tuple(config["input_size"])
    predictor = Predictor(model, config, flip_test=True)
    metrics = evaluate(predictor, resolve_spec(args.val))
    train_cfg = config.get("train", {})
    return {"label": label, "training": training_name, "model": config["model"],
            "method": train_cfg.get("method", "supervised"), "method_kwargs": train_cfg.get("method_kwargs", {}),
            "deploy_form": deploy, "input_size": list(input_size),
            "pck@0.2_torso": metrics["pck@0.2_torso"], "pck@0.05_box": metrics["pck@0.05_box"],
            "auc_torso": metrics["auc_torso"], "n_evaluated": metrics["n_evaluated"],
            "params": count_params(model), "flops": count_flops(model, input_size),
            "latency_ms": network_latency(model, input_size, args.repeats, args.threads),
            "latency_threads": args.threads, "checkpoint": training["checkpoint"],
            "train_seconds": training.get("train_seconds"),
            "final_train_loss": (training.get("final_epoch") or {}).get("loss"),
            "load_average_1_5_15_min": load_average()}


def remeasure_latency(results: dict, args) -> None:
    """Time every finished row's network again, back to back, with the same threads and repeats."""
    from posekit.checkpoint import build_from_checkpoint
    from posekit.models import reparameterize
    for name, r in results["rows"].items():
        model, config = build_from_checkpoint(repo_path(r["checkpoint"]))
        if r.get("deploy_form"):
            model = reparameterize(model)
        r["latency_ms"] = network_latency(model, tuple(config["input_size"]), args.repeats, args.threads)
        r["latency_threads"] = args.threads
        r["latency_load_average_1_5_15_min"] = load_average()
        print(f"{name}: {r['latency_ms']:.2f} ms", flush=True)
    results["latency_remeasured"] = datetime.datetime.now().isoformat(timespec="seconds")


def flops_check(results: dict) -> list[str]:
    """Fill ``flops_ratio_to_teacher`` / ``flops_requirement_met`` of every student row; the printed lines."""
    teacher = results["rows"].get("teacher")
    lines = []
    if teacher is None:
        return lines
    for name, r in results["rows"].items():
        if name == "teacher":
            continue
        r["flops_ratio_to_teacher"] = round(r["flops"] / teacher["flops"], 4)
        r["flops_requirement_met"] = r["flops_ratio_to_teacher"] <= FLOPS_REQUIREMENT
        lines.append(f"FLOPs {r['label']}: {r['flops'] / 1e9:.3f} G = {100 * r['flops_ratio_to_teacher']:.1f}% of the "
                     f"teacher's {teacher['flops'] / 1e9:.3f} G (requirement <= {100 * FLOPS_REQUIREMENT:.0f}%: "
                     f"{'met' if r['flops_requirement_met'] else 'NOT MET'})")
    return lines


def markdown(results: dict) -> str:
    b = results["budget"]
    teacher = b["teacher"]
    teacher_text = (f"checkpoint `{teacher['checkpoint']}`" if "checkpoint" in teacher else
                    f"`{teacher['model']}` {json.dumps(teacher['kwargs'])}, {teacher['epochs']} epochs")
    lines = [f"# Fast pose: distillation, re-parameterisation, activations on LSPET "
             f"(student `{b['student']['model']}` {json.dumps(b['student']['kwargs'])})", "",
             f"Budget per student: {b['epochs']} epochs"
             + (f" x at most {b['max_iters_per_epoch']} iterations" if b["max_iters_per_epoch"] else "")
             + f", batch {b['batch_size']}, input {b['input_size']}x{b['input_size']}; train `{b['train']}`, "
             f"evaluated on `{b['val']}` with flip test. Teacher: {teacher_text}. FPD alpha {b['alpha']}; "
             f"unlabeled data `{b['unlabeled']}` (labels withheld). Latency: network alone, batch 1, "
             f"{results.get('latency_threads', 1)} thread, median ms. FLOPs: 2 per multiply-add, one view. "
             f"Requirement: a student uses <= {100 * FLOPS_REQUIREMENT:.0f}% of the teacher's FLOPs.", ""]
    rows = []
    for name in ROWS:
        r = results["rows"].get(name)
        if r is None:
            continue
        ratio = r.get("flops_ratio_to_teacher")
        ratio_text = "-" if ratio is None else f"{100 * ratio:.1f}" + ("" if r["flops_requirement_met"] else " (!)")
        minutes = "-" if r.get("train_seconds") is None else f"{r['train_seconds'] / 60:.1f}"
        rows.append([r["label"], f"{r['pck@0.2_torso']:.3f}", f"{r['pck@0.05_box']:.3f}", f"{r['auc_torso']:.3f}",
                     f"{r['params'] / 1e6:.2f}", f"{r['flops'] / 1e9:.3f}", ratio_text, f"{r['latency_ms']:.2f}",
                     minutes])
    lines += table(["row", "PCK@0.2 torso", "PCK@0.05 box", "AUC", "params (M)", "GFLOPs", "% teacher FLOPs",
                    "latency ms", "train min"], rows)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        return list_rows({name: f"{label}  (training {training}{', re-parameterised' if deploy else ''})"
                          for name, (training, label, deploy) in ROWS.items()}, 24)
    b = budget(args)
    command_key = "latency_command" if args.remeasure_latency else "command"
    results = open_study(args.out, b, environment=environment(), latency_threads=args.threads,
                         **{command_key: command("benchmarks/fpd.py", argv)})
    run_root = args.runs / budget_name(b)
    if args.remeasure_latency:
        remeasure_latency(results, args)
        write_results(results, args.out, markdown(results))
        print(markdown(results))
        return 0
    teacher = None

    def compute(row: str) -> dict:
        nonlocal teacher
        training_name = ROWS[row][0]
        if training_name == "teacher" or trainings(args, None)[training_name].get("method") == "fpd":
            teacher = teacher or teacher_training(args, run_root)
        if training_name == "teacher":
            training = teacher
        else:
            print(f"{row}: training {training_name} ...", flush=True)
            training = train(training_name, args, run_root / training_name, teacher["checkpoint"] if teacher else None)
        r = evaluate_row(row, training, args)
        print(f"{row}: PCK@0.2 torso {r['pck@0.2_torso']:.3f}, PCK@0.05 box {r['pck@0.05_box']:.3f}, "
              f"AUC {r['auc_torso']:.3f}, {r['params'] / 1e6:.2f} M params, {r['flops'] / 1e9:.3f} GFLOPs, "
              f"{r['latency_ms']:.2f} ms", flush=True)
        return r

    # the teacher row is always measured (the FLOPs requirement is relative to it)
    names = args.row_names if "teacher" in results["rows"] or "teacher" in args.row_names else ["teacher",
                                                                                                *args.row_names]
    fill_rows(results, names, compute, args.out, markdown, force=args.force, before_write=flops_check)
    return finish_study(results, args.out, markdown, notes=flops_check(results))


if __name__ == "__main__":
    sys.exit(main())
