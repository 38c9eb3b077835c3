"""FPD from a strong teacher: the fine-tuned MoveNet Thunder distilled into fast students on LSPET.

Teacher: ``--teacher`` (default ``zoo/lspet_movenet_thunder.pt``, 256 px, frozen). Students (``--students``):

* ``lightning128`` -- the MoveNet Lightning architecture at 128x128 input (heatmaps 32x32, sigma 1.5, i.e.
  the same width in box units as the teacher's), started from ``zoo/lspet_movenet_lightning.pt`` (its
  192-px LSPET fine-tune), AdamW lr 3e-4;
* ``compact`` -- posekit's compact ``simplebaseline_r18`` (width 0.4, 0.3 GFLOPs) at 128x128 (sigma 2),
  started from ``zoo/lspet_compact_pretrained.pt``, AdamW lr 5e-4.

Rows per student (``<student>_<row>``), all seed 0, batch 32, ``--epochs`` over the 7,200 LSPET train
images, 100 warm-up iterations + cosine, bf16 autocast with ``--amp``:

=================  ============================================================================================
alone              supervised heatmap MSE
fpd                FPD on the labelled images: 0.5 MSE(teacher) + 0.5 MSE(labels) (``--method fpd``)
fpd_unlabeled      fpd, plus every step as many crops of ``--unlabeled`` people (LSPET train with its labels
                   withheld + COCO-MINI train by default), supervised by the teacher alone
alone_2x           the control of fpd_unlabeled: alone for twice the epochs, the same number of student
                   forward/backward passes (``alone`` is the control of ``fpd``: the same passes)
=================  ============================================================================================

The teacher sees the student's crop upsampled to 256 px (``TeacherInStudentFrame``); row
``teacher_on_student_crops`` scores what that costs the teacher. Reference rows: the teacher and
``lspet_movenet_lightning`` as they are. Every row: LSPET val (800 people, flip test, DARK decoding),
PCK@0.2 torso on 14 and on the 12 joints COCO shares with LSP, PCK@0.05 box, FLOPs, the training's wall
time, and the batch-1 latency of the network through ONNX Runtime at ``--threads`` threads, measured for
every architecture in one phase at the end (``--rounds`` interleaved rounds, median), beside the released
``movenet-lightning.onnx`` graph (the latency the targets halve).

Resumable (``fill_rows``; run folders ``runs/fpd_movenet/<budget>/<row>`` resume from ``last.pt``)::

    python benchmarks/fpd_movenet.py --amp                         # all rows, 3 epochs each
    python benchmarks/fpd_movenet.py --students lightning128 --rows lightning128_alone,lightning128_fpd
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

from common import (ROOT, add_study_args, add_training_args, checkpoint_flops, command, environment, export_latency,
                    fill_rows, finish_study, load_average, lsp_scores, onnx_latency, open_study, repo_path,
                    resolve_spec, table, train_once)

UNLABELED = ("lsp:../shared/datasets/lspet@train"
             "+coco:../shared/datasets/coco-mini/annotations/person_keypoints_train2017.json")

#: student -> its architecture, start and recipe
STUDENTS = {
    "lightning128": {"model": "movenet_lightning", "model_kwargs": {}, "init": "zoo/lspet_movenet_lightning.pt",
                     "sigma": 1.5, "lr": 3e-4},
    "compact": {"model": "simplebaseline_r18", "model_kwargs": {"width": 0.4, "deconv_channels": 96},
                "init": "zoo/lspet_compact_pretrained.pt", "sigma": 2.0, "lr": 5e-4},
}
#: row -> (method, unlabeled data, epoch factor, what)
ROWS = {
    "alone": ("supervised", False, 1, "supervised"),
    "fpd": ("fpd", False, 1, "FPD, labelled images"),
    "fpd_unlabeled": ("fpd", True, 1, "FPD, labelled + unlabeled images"),
    "alone_2x": ("supervised", False, 2, "supervised, 2x epochs (control of fpd_unlabeled)"),
}
REFERENCES = ("teacher", "teacher_on_student_crops", "lspet_movenet_lightning")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="zoo/lspet_movenet_thunder.pt")
    p.add_argument("--students", default="lightning128,compact", help=f"comma-separated, from {list(STUDENTS)}")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--unlabeled", default=UNLABELED, help="data spec(s), 'A+B' for a union")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--amp", action="store_true", help="bf16 autocast for every training")
    add_training_args(p, workers=1)
    p.add_argument("--threads", type=int, default=2, help="training and latency threads")
    p.add_argument("--limit", type=int, help="first N val people only (smoke tests)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds")
    p.add_argument("--repeats", type=int, default=30, help="latency calls per round")
    p.add_argument("--graph", type=Path, default=ROOT / ".." / "shared" / "models" / "movenet-lightning.onnx")
    add_study_args(p, "fpd_movenet")
    args = p.parse_args(argv)
    args.student_names = [s.strip() for s in args.students.split(",") if s.strip()]
    unknown = sorted(set(args.student_names) - set(STUDENTS))
    if unknown:
        p.error(f"unknown students {unknown}; choose from {list(STUDENTS)}")
    names = [*REFERENCES, *(f"{s}_{r}" for s in args.student_names for r in ROWS)]
    args.row_names = names if not args.rows else [r.strip() for r in args.rows.split(",") if r.strip()]
    if set(args.row_names) - set(names):
        p.error(f"unknown rows {sorted(set(args.row_names) - set(names))}; choose from {names}")
    return args


def resolve_union(spec: str) -> str:
    from posekit.data.formats import split_union
    return "+".join(resolve_spec(part) for part in split_union(spec))


def budget(args) -> dict:
    return {"epochs": args.epochs, "input_size": args.input_size, "batch_size": args.batch_size, "amp": args.amp,
            "alpha": args.alpha, "teacher": args.teacher, "unlabeled": args.unlabeled, "seed": 0,
            "max_iters": args.max_iters, "val_people": args.limit}


def budget_name(b: dict) -> str:
    return f"e{b['epochs']}_i{b['input_size']}" + ("_bf16" if b["amp"] else "") + \
        (f"_m{b['max_iters']}" if b["max_iters"] else "")


def student_config(student: str, row: str, args, out: Path):
    from posekit.engine.trainer import TrainConfig
    recipe = STUDENTS[student]
    method, unlabeled, factor, _ = ROWS[row]
    kwargs = {"teacher": repo_path(args.teacher), "alpha": args.alpha} if method == "fpd" else {}
    if unlabeled:
        kwargs["unlabeled"] = resolve_union(args.unlabeled)
    return TrainConfig(train=resolve_spec(args.train), val=None, out=str(out), model=recipe["model"],
                       model_kwargs=dict(recipe["model_kwargs"]), init=repo_path(recipe["init"]),
                       input_size=(args.input_size, args.input_size), sigma=recipe["sigma"], decode="dark",
                       epochs=args.epochs * factor, batch_size=args.batch_size, lr=recipe["lr"],
                       weight_decay=1e-4, warmup_iters=100, final_lr_ratio=0.01, seed=0, amp=args.amp,
                       workers=args.workers, threads=args.threads, max_iters_per_epoch=args.max_iters,
                       method=method, method_kwargs=kwargs, progress=sys.stderr.isatty())


def teacher_in_student_frame(args):
    """The teacher as a predictor that sees 128-px crops upsampled, answering on the student's heatmap grid."""
    import torch
    from posekit.checkpoint import load_checkpoint
    from posekit.inference.predictor import Predictor
    from posekit.training.teacher import load_teacher
    cfg = copy.deepcopy(load_checkpoint(repo_path(args.teacher))["config"])
    size = [args.input_size, args.input_size]
    cfg["input_size"], cfg["codec"]["input_size"] = size, size
    cfg["codec"]["heatmap_size"] = [args.input_size // 4] * 2
    teacher = load_teacher(repo_path(args.teacher), cfg)

    class Wrapped(torch.nn.Module):
        def forward(self, x):
            return teacher(x)
    return Predictor(Wrapped(), cfg)


def compute_row(name: str, args, samples, run_root: Path) -> dict:
    from posekit.inference.predictor import Predictor
    if name == "teacher_on_student_crops":
        return {"what": f"{args.teacher} on {args.input_size}-px crops upsampled to its input (FPD's target)",
                "checkpoint": args.teacher, **lsp_scores(teacher_in_student_frame(args), samples)}
    if name in REFERENCES:
        path = args.teacher if name == "teacher" else "zoo/lspet_movenet_lightning.pt"
        return {"what": f"{path} as it is", "checkpoint": path, "train_seconds": None,
                **lsp_scores(Predictor.from_checkpoint(repo_path(path)), samples)}
    student, row = next((s, name[len(s) + 1:]) for s in STUDENTS if name.startswith(s + "_"))
    record = train_once(student_config(student, row, args, run_root / name), run_root / name)
    predictor = Predictor.from_checkpoint(record["checkpoint"])
    return {"what": f"{student}: {ROWS[row][3]}", "student": student, "checkpoint": record["checkpoint"],
            "train_seconds": record["train_seconds"], "epochs": record["config"]["epochs"],
            **lsp_scores(predictor, samples)}


def measure_latency(results: dict, args) -> None:
    """ms per crop for every architecture in the table and the released Lightning graph, interleaved rounds."""
    by_arch: dict[str, str] = {}
    for name, row in results["rows"].items():
        if row.get("checkpoint") and name != "teacher_on_student_crops":
            arch = row.get("student") or name
            by_arch.setdefault(arch, repo_path(row["checkpoint"]))
    timings: dict[str, list[float]] = {arch: [] for arch in [*by_arch, "graph_lightning"]}
    feed = {"input:0": np.zeros((1, 192, 192, 3), np.int32)}
    for _ in range(args.rounds):
        for arch, path in by_arch.items():
            timings[arch].append(export_latency(path, args.threads, args.repeats))
        if args.graph.exists():
            timings["graph_lightning"].append(onnx_latency(args.graph, feed, args.threads, args.repeats))
    results["latency_ms"] = {arch: round(float(np.median(t)), 2) for arch, t in timings.items() if t}
    for arch, path in by_arch.items():
        results.setdefault("flops", {})[arch] = checkpoint_flops(path)


def markdown(results: dict) -> str:
    lat, gfl = results.get("latency_ms", {}), results.get("flops", {})
    graph = lat.get("graph_lightning")

    def cells(name, row):
        arch = row.get("student") or name
        ms = lat.get(arch)
        minutes = "-" if not row.get("train_seconds") else f"{row['train_seconds'] / 60:.1f}"
        return [name, row["what"], f"{100 * row['pck@0.2_torso_12']:.1f}", f"{100 * row['pck@0.2_torso']:.1f}",
                f"{100 * row['pck@0.05_box']:.1f}", f"{gfl[arch] / 1e9:.2f}" if arch in gfl else "-",
                "-" if ms is None else f"{ms:.1f}", "-" if ms is None or not graph else f"{ms / graph:.2f}",
                minutes]
    b = results["budget"]
    lines = table(["row", "what", "PCK@0.2 (12)", "PCK@0.2 (14)", "PCK@0.05 box", "GFLOPs", "ms", "ms / Lightning",
                   "train min"], (cells(n, r) for n, r in results["rows"].items()),
                  align=["---", "---", *["---:"] * 7])
    return "\n".join([
        f"LSPET val ({next(iter(results['rows'].values()))['n_people']} people, flip test, DARK). Teacher "
        f"{b['teacher']}; students {b['input_size']} px, {b['epochs']} epochs of batch {b['batch_size']} "
        f"(alone_2x: twice), seed {b['seed']}, {'bf16 autocast' if b['amp'] else 'fp32'}; alpha {b['alpha']}; "
        f"unlabeled {b['unlabeled']}.", "",
        *lines, "",
        f"ms: batch 1 through ONNX Runtime at {results.get('threads')} threads, median of interleaved rounds; "
        f"ms / Lightning: against the released movenet-lightning graph ({graph} ms) in the same run." if graph else
        "ms: not measured yet.", "",
        f"Command: `{results['command']}`", ""])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in [*REFERENCES, *(f"{s}_{r}" for s in STUDENTS for r in ROWS)]:
            print(name)
        return 0
    import torch
    torch.set_num_threads(args.threads)
    from posekit.data.formats import load_samples

    b = budget(args)
    results = open_study(args.out, b, command=command("benchmarks/fpd_movenet.py", python=True),
                         environment=environment("onnxruntime", "cpu"), threads=args.threads)
    results.setdefault("load_average", []).append(load_average())
    samples = load_samples(resolve_spec(args.val))[:args.limit]
    run_root = args.runs / budget_name(b)
    fill_rows(results, args.row_names, lambda name: compute_row(name, args, samples, run_root), args.out, markdown,
              force=args.force)
    measure_latency(results, args)
    print(json.dumps(results["latency_ms"]))
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
