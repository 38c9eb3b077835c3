"""Source-free domain adaptation on LSPET: source-only, AdaBN, SFDA (and its loss ablations), oracle.

Two settings. Synthetic -> LSPET (the paper's kind: a source trained on posekit's synthetic people), and, with
``--source-checkpoint zoo/lspet_compact.pt --corrupt NAME/SEVERITY``, LSPET -> corrupted LSPET: the same target
images under one corruption (written once with :func:`posekit.engine.robustness.materialize`), where the source
is competent and the shift is known.

One backbone for every row: ``simplebaseline_r18`` with ``{"width": 0.4, "deconv_channels": 96}`` at 128x128
(the LSPET compact model of ``configs/lspet_compact.json``, so ``zoo/lspet_compact.pt`` can serve as the
oracle). Every row is scored on ``--val`` (``lsp:../shared/datasets/lspet@val``, 800 people, flip test)
with PCK@0.05 (box), PCK@0.2 (torso) and AUC (PCK@0..0.2 torso).

Rows:

==================  =======================================================================================
source only         trained on posekit's synthetic people (``--synth-num`` images of ``--synth-style``, LSP
                    skeleton, ``--source-epochs`` epochs, the compact config's optimiser): the starting point
SFDA                the source model adapted with :mod:`posekit.methods.sfda` on ``--target``
                    (``lsp:../shared/datasets/lspet@train``) with its labels withheld, ``--sfda-epochs``
                    epochs, batch ``--batch-size``, lr ``--sfda-lr``; the paper's weights (α 0.7, β 0.5,
                    γ 0.85, EMA 0.999); scored: the intermediate model f_in (``model.pt``, last epoch, no
                    model selection on target labels)
SFDA w/o L_x        the same with one loss term's weight set to 0: L_ft, L_res (α), L_con, L_cst (β), L_im (γ)
AdaBN               the baseline: the source model with only its BatchNorm statistics re-estimated on the
                    target training images (:mod:`posekit.methods.adabn`)
oracle              the same backbone trained WITH the target labels (``--oracle CKPT`` reuses a checkpoint,
                    e.g. ``zoo/lspet_compact.pt``; otherwise trained here on ``--target`` for
                    ``--oracle-epochs`` epochs with the compact config's optimiser)
==================  =======================================================================================

Results go to ``benchmarks/results/adaptation.json`` (every number, the budget, the environment) and
``adaptation.md`` next to it (the table, also printed). Resumable: rows already in the json for the same
budget are skipped, the synthetic data set is generated once, and every training continues from its run
folder's ``last.pt`` (run folders under ``--runs``/<budget>). Nothing here is meant for a short smoke run
except the command at the end.

    python benchmarks/adaptation.py                                   # everything (hours on 2 CPU cores)
    python benchmarks/adaptation.py --oracle zoo/lspet_compact.pt --rows source_only,sfda,oracle
    python benchmarks/adaptation.py --list
    # LSPET -> LSPET under contrast/3 (the source loses about half its accuracy there)
    python benchmarks/adaptation.py --source-checkpoint zoo/lspet_compact.pt --corrupt contrast/3 \
        --oracle-init zoo/lspet_compact.pt --oracle-epochs 3 --sfda-epochs 3 --rows source_only,adabn,sfda,oracle \
        --threads 1 --workers 1 --out benchmarks/results/adaptation_contrast.json
    # smoke test on synthetic data (a minute):
    posekit synth --out /tmp/ad/t --num 24 --size 96 --style textured
    python benchmarks/adaptation.py --synth-num 24 --synth-size 96 --source-epochs 1 --sfda-epochs 1 \\
        --oracle-epochs 1 --max-iters 1 --batch-size 8 --workers 0 \\
        --target coco:/tmp/ad/t/annotations.json --val coco:/tmp/ad/t/annotations.json \\
        --out /tmp/ad/adaptation.json --runs /tmp/ad/runs
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

from common import (add_study_args, add_training_args, command, environment, fill_rows, finish_study, list_rows,
                    load_average, open_study, resolve_spec, reused_checkpoint, selected_rows, table, train_config,
                    train_once)

BACKBONE = "simplebaseline_r18"
BACKBONE_KWARGS = {"width": 0.4, "deconv_channels": 96}
INPUT = (128, 128)

#: SFDA row -> (label, method options that differ from the paper's defaults)
SFDA_ROWS = {
    "sfda": ("SFDA", {}),
    "sfda_no_ft": ("SFDA w/o L_ft (fine-tune)", {"finetune_weight": 0.0}),
    "sfda_no_res": ("SFDA w/o L_res (residual, α = 0)", {"alpha": 0.0}),
    "sfda_no_con": ("SFDA w/o L_con (contrastive)", {"contrast_weight": 0.0}),
    "sfda_no_cst": ("SFDA w/o L_cst (consistency, β = 0)", {"beta": 0.0}),
    "sfda_no_im": ("SFDA w/o L_im (information max., γ = 0)", {"gamma": 0.0}),
}


ROWS = {"source_only": "source only", "adabn": "AdaBN (BatchNorm statistics of the target only)",
        "adabn_trunk": "AdaBN, folded BatchNorm, backbone convs only",
        **{k: v[0] for k, v in SFDA_ROWS.items()}, "oracle": "oracle (target labels)"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="lsp:../shared/datasets/lspet@train",
                   help="target training spec (labels withheld for SFDA; used with labels by the oracle)")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val", help="evaluation spec")
    p.add_argument("--source-data", help="labelled source spec instead of generating synthetic people")
    p.add_argument("--source-checkpoint", type=Path,
                   help="reuse this trained source model (e.g. another budget's source/model.pt) instead of training "
                        "one: the loss ablations can then run at a shorter SFDA budget from the same source")
    p.add_argument("--source-onnx", type=Path,
                   help="a released MoveNet graph as the source: imported unchanged as its COCO-17 heatmap model "
                        "(written once under the runs folder); scored on the joints its skeleton shares with --val")
    p.add_argument("--source-images", default="coco:../shared/datasets/coco-mini/annotations/"
                                              "person_keypoints_train2017.json",
                   help="images of the source's domain: the source moments of AdaBN for folded BatchNorm (MoveNet)")
    p.add_argument("--adabn-images", type=int, default=512, help="target crops of AdaBN for folded BatchNorm")
    p.add_argument("--synth-num", type=int, default=3200, help="synthetic source images")
    p.add_argument("--synth-style", default="mixed", help="synthetic style: flat | textured | mixed (the demo's)")
    p.add_argument("--synth-size", type=int, default=192, help="synthetic image side (pixels)")
    p.add_argument("--synth-seed", type=int, default=0)
    p.add_argument("--source-epochs", type=int, default=14, help="source training epochs (the demo's budget)")
    p.add_argument("--sfda-epochs", type=int, default=5, help="SFDA epochs over the target training images")
    p.add_argument("--sfda-lr", type=float, default=1e-4, help="SFDA learning rate (the authors' Adam lr)")
    p.add_argument("--sfda-kwargs", default="{}", help="JSON of extra SFDA options shared by every SFDA row")
    p.add_argument("--oracle", type=Path, help="reuse this labelled-target checkpoint as the oracle")
    p.add_argument("--oracle-epochs", type=int, default=10, help="oracle training epochs (without --oracle)")
    p.add_argument("--oracle-init", type=Path,
                   help="the oracle fine-tunes this checkpoint (e.g. the source model) instead of starting from scratch")
    p.add_argument("--corrupt", metavar="NAME/SEVERITY",
                   help="target and val become corrupted copies (posekit.data.corruptions, e.g. contrast/3), "
                        "written once under the runs folder: an adaptation setting with a competent source")
    add_training_args(p)
    p.add_argument("--threads", type=int,
                   help="torch threads for training (default: all cores; 1 lets two jobs share 2 cores)")
    p.add_argument("--amp", action="store_true", help="SFDA in bf16 autocast (the trainer's --amp)")
    p.add_argument("--seed", type=int, default=0)
    add_study_args(p, "adaptation")
    args = p.parse_args(argv)
    for name in ("synth_num", "source_epochs", "sfda_epochs", "oracle_epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    args.row_names = selected_rows(p, args, ROWS)
    args.sfda_options = json.loads(args.sfda_kwargs)
    if not isinstance(args.sfda_options, dict):
        p.error("--sfda-kwargs must be a JSON object")
    return args


def budget(args) -> dict:
    source = ({"source_onnx": args.source_onnx.name, "source_images": args.source_images} if args.source_onnx else
              {"source_checkpoint": str(args.source_checkpoint)} if args.source_checkpoint else
              {"source_data": args.source_data} if args.source_data else
              {"synth_num": args.synth_num, "synth_style": args.synth_style, "synth_size": args.synth_size,
               "synth_seed": args.synth_seed})
    return {**source, "source_epochs": args.source_epochs, "sfda_epochs": args.sfda_epochs, "sfda_lr": args.sfda_lr,
            "sfda_kwargs": args.sfda_options, "oracle": str(args.oracle) if args.oracle else None,
            "oracle_epochs": None if args.oracle else args.oracle_epochs,
            "oracle_init": str(args.oracle_init) if args.oracle_init and not args.oracle else None,
            "corrupt": args.corrupt, "batch_size": args.batch_size,
            "max_iters_per_epoch": args.max_iters, "seed": args.seed, "target": args.target, "val": args.val,
            **({"amp": True} if args.amp else {})}  # only when set: earlier studies keep their budget


def budget_name(b: dict) -> str:
    source = (f"onnx-{Path(b['source_onnx']).stem}" if b.get("source_onnx") else
              f"ckpt-{hashlib.sha1(b['source_checkpoint'].encode()).hexdigest()[:8]}" if b.get("source_checkpoint") else
              f"src-{Path(b['source_data']).name}" if b.get("source_data") else
              f"synth{b['synth_num']}-{b['synth_style']}-{b['synth_size']}-s{b['synth_seed']}")
    name = f"{source}_e{b['source_epochs']}_a{b['sfda_epochs']}_lr{b['sfda_lr']:g}_b{b['batch_size']}_seed{b['seed']}"
    if b["max_iters_per_epoch"]:
        name += f"_i{b['max_iters_per_epoch']}"
    if b.get("corrupt"):
        name += "_" + b["corrupt"].replace("/", "-")
    if b.get("amp"):
        name += "_bf16"
    if b["sfda_kwargs"]:
        name += "_" + hashlib.sha1(json.dumps(b["sfda_kwargs"], sort_keys=True).encode()).hexdigest()[:8]
    return name


def base_config(train: str, out: Path, epochs: int, args, **kw):
    """The compact config's supervised recipe (AdamW 2e-3, 200 warm-up iterations, cosine) on ``train``."""
    return train_config(train, out, args, model=BACKBONE, model_kwargs=dict(BACKBONE_KWARGS), input_size=INPUT,
                        epochs=epochs, seed=args.seed, threads=args.threads, **kw)


def source_spec(args, run_root: Path) -> str:
    """The labelled source data: ``--source-data``, or synthetic people generated once under the runs folder."""
    if args.source_data:
        return resolve_spec(args.source_data)
    from posekit.data.synth import generate_dataset
    folder = args.runs / "data" / f"synth{args.synth_num}-{args.synth_style}-{args.synth_size}-s{args.synth_seed}"
    ann = folder / "annotations.json"
    if not ann.exists():  # written last by generate_dataset: its presence means the set is complete
        print(f"generating {args.synth_num} synthetic people ({args.synth_style}) in {folder} ...", flush=True)
        ann = generate_dataset(folder, args.synth_num, style=args.synth_style, skeleton="lsp", seed=args.synth_seed,
                               size=(args.synth_size, args.synth_size), workers=max(1, args.workers), progress=True)
    return f"coco:{ann}"


def train_source(args, run_root: Path) -> dict:
    if args.source_onnx:
        return imported_source(args.source_onnx, run_root)
    if args.source_checkpoint:
        if not args.source_checkpoint.is_file():
            raise SystemExit(f"error: --source-checkpoint not found: {args.source_checkpoint}")
        return reused_checkpoint(args.source_checkpoint)
    cfg = base_config(source_spec(args, run_root), run_root / "source", args.source_epochs, args)
    return train_once(cfg, run_root / "source")


def imported_source(onnx: Path, run_root: Path) -> dict:
    """A released MoveNet graph as posekit's trainable COCO-17 heatmap model (the heatmap head, HeatmapCodec,
    DARK), imported once: ``python -m posekit.models.movenet_import ONNX --out OUT --skeleton coco``."""
    from posekit.checkpoint import save_checkpoint
    from posekit.models.movenet_import import movenet_checkpoint, retarget_checkpoint
    out = run_root / "source" / "model.pt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, retarget_checkpoint(movenet_checkpoint(onnx), "coco"))
    return reused_checkpoint(out)


def train_sfda(row: str, args, run_root: Path, source_checkpoint: str) -> dict:
    from posekit.methods.sfda import adapt_config
    options = {**args.sfda_options, **SFDA_ROWS[row][1]}
    loss_keys = {"alpha", "beta", "gamma", "ema", "tau"}
    cfg = adapt_config(source_checkpoint, resolve_spec(args.target), run_root / row, epochs=args.sfda_epochs,
                       batch_size=args.batch_size, lr=args.sfda_lr, seed=args.seed, workers=args.workers,
                       max_iters_per_epoch=args.max_iters, progress=sys.stderr.isatty(),
                       method_kwargs={k: v for k, v in options.items() if k not in loss_keys},
                       **{k: v for k, v in options.items() if k in loss_keys})
    cfg.threads, cfg.amp = args.threads, args.amp
    return train_once(cfg, run_root / row)


def adabn(args, run_root: Path, source_checkpoint: str, row: str = "adabn") -> dict:
    """The baseline: the source model with BatchNorm statistics re-estimated on the target training images; for
    folded BatchNorm (MoveNet) its equivalent, the conv outputs' moments aligned to the source images'."""
    import time
    from posekit.methods.adabn import adapt_batchnorm_checkpoint, adapt_folded_checkpoint
    start = time.time()
    limit = args.max_iters * args.batch_size if args.max_iters else None
    out = run_root / row / "model.pt"
    if args.source_onnx:
        result = adapt_folded_checkpoint(source_checkpoint, resolve_spec(args.target), resolve_spec(args.source_images),
                                         out, limit=limit or args.adabn_images, batch_size=args.batch_size,
                                         workers=args.workers, layers="trunk" if row == "adabn_trunk" else "all",
                                         seed=args.seed)
    else:
        result = adapt_batchnorm_checkpoint(source_checkpoint, resolve_spec(args.target), out,
                                            batch_size=args.batch_size, workers=args.workers, limit=limit)
    align = {"align_batch": result["align_batch"]} if "align_batch" in result else {}
    return {"checkpoint": result["checkpoint"], "train_seconds": round(time.time() - start, 1),
            "final_epoch": {"images": result["images"], **align}}


def oracle(args, run_root: Path) -> dict:
    if args.oracle:
        return reused_checkpoint(args.oracle)
    init = str(args.oracle_init) if args.oracle_init else None
    cfg = base_config(resolve_spec(args.target), run_root / "oracle", args.oracle_epochs, args, init=init)
    return train_once(cfg, run_root / "oracle")


def corrupted_copy(spec: str, corrupt: str, runs: Path) -> str:
    """The data spec of ``spec`` under one corruption, written once (:func:`posekit.engine.robustness.materialize`,
    the pixels ``posekit robustness`` scores) under ``runs/data``."""
    from posekit.engine.robustness import materialize
    corruption, _, severity = corrupt.partition("/")
    slug = hashlib.sha1(spec.encode()).hexdigest()[:8]
    folder = runs / "data" / f"corrupt-{slug}-{corruption}-{severity}"
    index = materialize(resolve_spec(spec), folder, corruptions=[corruption], severities=[int(severity)])
    return index["conditions"][f"{corruption}/{int(severity)}"]


def score(checkpoint, args) -> dict:
    """PCK@0.05 box, PCK@0.2 torso, AUC on ``--val`` with flip test."""
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    predictor = Predictor.from_checkpoint(checkpoint, flip_test=True)
    metrics = evaluate(predictor, resolve_spec(args.val), joints=shared_joints(predictor, args))
    return {k: metrics.get(k) for k in ("pck@0.05_box", "pck@0.2_torso", "auc_torso", "pckh@0.5", "n_evaluated")}


def shared_joints(predictor, args) -> list[str] | None:
    """With a MoveNet source (COCO-17) every row is scored on the joints COCO and the val data share: a model
    of the val data's own keypoints (the oracle) on those same joints; a COCO model gets them anyway."""
    from posekit.skeletons import COCO, get_skeleton, shared_skeleton
    if not args.source_onnx or predictor.pose_config.skeleton == "coco":
        return None
    return list(shared_skeleton(COCO, get_skeleton(predictor.pose_config.skeleton))[0].keypoints)


def score_target_model(checkpoint, args) -> dict:
    """The same metrics for SFDA's target model f_tg, kept in the run's ``last.pt`` (f_in is the one deployed):
    whether the target branch itself moved, when f_in (its slow EMA) barely did."""
    from posekit.checkpoint import load_checkpoint
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    last = load_checkpoint(Path(checkpoint).with_name("last.pt"))
    predictor = Predictor.from_checkpoint(checkpoint, flip_test=True)
    predictor.model.load_state_dict(last["method"]["target_model"])
    metrics = evaluate(predictor, resolve_spec(args.val))
    return {f"target_model_{k}": metrics.get(k) for k in ("pck@0.05_box", "pck@0.2_torso", "auc_torso")}


def markdown(results: dict) -> str:
    b = results["budget"]
    source = (f"the released `{b['source_onnx']}` imported unchanged (COCO-17 heatmap head, DARK); folded AdaBN's "
              f"source moments from `{b['source_images']}`" if b.get("source_onnx") else
              f"the trained model `{b['source_checkpoint']}`" if b.get("source_checkpoint") else
              (b.get("source_data") or f"{b['synth_num']} synthetic people ({b['synth_style']}, {b['synth_size']} px)")
              + f", {b['source_epochs']} epochs")
    title = ("Synthetic -> LSPET adaptation" if not (b.get("source_checkpoint") or b.get("source_data")
                                                     or b.get("source_onnx")) else "Adaptation")
    if b.get("corrupt"):
        title += f" to {b['corrupt']}-corrupted images"
    network = (f"{Path(b['source_onnx']).stem}, scored on the joints COCO-17 and the val data share"
               if b.get("source_onnx") else f"{BACKBONE} {json.dumps(BACKBONE_KWARGS)}, {INPUT[0]}x{INPUT[1]}")
    lines = [f"# {title} ({network})", "",
             f"Source: {source}. SFDA: {b['sfda_epochs']} epochs on `{b['target']}` "
             f"(labels withheld), lr {b['sfda_lr']:g}, batch {b['batch_size']}"
             + (f", at most {b['max_iters_per_epoch']} iterations per epoch" if b["max_iters_per_epoch"] else "")
             + (f", options {json.dumps(b['sfda_kwargs'])}" if b["sfda_kwargs"] else "")
             + (", bf16 autocast" if b.get("amp") else "")
             + ((". Oracle: " + (f"`{b['oracle']}`" if b["oracle"] else f"trained here, {b['oracle_epochs']} epochs "
                                 "with the target labels"
                                 + (f", starting from `{b['oracle_init']}`" if b.get("oracle_init") else "")))
                if "oracle" in results["rows"] else "")
             + (f". Target and val images carry the `{b['corrupt']}` corruption (posekit.data.corruptions, "
                "the pixels `posekit robustness` scores)" if b.get("corrupt") else "")
             + f". Scored on `{b['val']}` with flip test; the SFDA rows use their last epoch's model "
             "(the intermediate model f_in, which SFDA deploys; the f_tg column scores its target model).", ""]
    rows = []
    for name, label in ROWS.items():
        r = results["rows"].get(name)
        if r is None:
            continue
        minutes = f"{r['train_seconds'] / 60:.1f}" if r.get("train_seconds") is not None else "-"
        target = (f"{r['target_model_pck@0.05_box']:.3f} / {r['target_model_pck@0.2_torso']:.3f}"
                  if r.get("target_model_pck@0.2_torso") is not None else "-")
        rows.append([label, f"{r['pck@0.05_box']:.3f}", f"{r['pck@0.2_torso']:.3f}", f"{r['auc_torso']:.3f}", target,
                     minutes])
    lines += table(["row", "PCK@0.05 box", "PCK@0.2 torso", "AUC", "f_tg PCK@0.05 box / PCK@0.2 torso", "train min"],
                   rows)
    lines += ["", "SCAI (test-time correction of a trained LSPET model) has its own benchmark: `benchmarks/scai.py`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        return list_rows(ROWS, 14)
    b = budget(args)
    if args.corrupt:  # the budget keeps the clean specs + the corruption; the runs read the copies
        print(f"writing the {args.corrupt} copies of {args.target} and {args.val} (once) ...", flush=True)
        args.target, args.val = (corrupted_copy(spec, args.corrupt, args.runs) for spec in (args.target, args.val))
    results = open_study(args.out, b, backbone={"name": BACKBONE, "kwargs": BACKBONE_KWARGS, "input_size": list(INPUT)},
                         environment=environment(), command=command("benchmarks/adaptation.py", argv))
    run_root = args.runs / budget_name(b)
    source = None
    if any(r != "oracle" and (args.force or r not in results["rows"]) for r in args.row_names):
        print("source model: training on the labelled source data ...", flush=True)
        source = train_source(args, run_root)

    def compute(row: str) -> dict:
        print(f"{row}: ...", flush=True)
        if row == "source_only":
            training = source
        elif row in ("adabn", "adabn_trunk"):
            training = adabn(args, run_root, source["checkpoint"], row)
        elif row in SFDA_ROWS:
            training = train_sfda(row, args, run_root, source["checkpoint"])
        else:
            training = oracle(args, run_root)
        metrics = score(training["checkpoint"], args)
        if row in SFDA_ROWS:
            metrics.update(score_target_model(training["checkpoint"], args))
        print(f"{row}: PCK@0.05 box {metrics['pck@0.05_box']:.3f}, PCK@0.2 torso {metrics['pck@0.2_torso']:.3f}",
              flush=True)
        return {"label": ROWS[row], **metrics, "checkpoint": training["checkpoint"],
                "train_seconds": training.get("train_seconds"), "final_train_epoch": training.get("final_epoch"),
                "method_options": SFDA_ROWS[row][1] if row in SFDA_ROWS else None,
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "load_average_1_5_15_min": load_average()}

    fill_rows(results, args.row_names, compute, args.out, markdown, force=args.force)
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
