"""LSPET ablation of target representations and training tricks, on one compact backbone and one budget.

Backbone: ``simplebaseline_r18`` with ``{"width": 0.4, "deconv_channels": 96}`` (the LSPET compact model of
``configs/lspet_compact.json``), 128x128 input unless a row says otherwise, and that config's optimiser
settings (AdamW, lr 2e-3, batch 32, 200 warm-up iterations, cosine decay, default augmentation, seed 0).
Every row trains for the same budget, ``--epochs`` (default 10, i.e. 2250 iterations on the 7200 LSPET
training images) with :class:`posekit.engine.trainer.Trainer` on ``lsp:../shared/datasets/lspet@train``,
then is evaluated on ``@val`` (800 images, flip test on unless a row says otherwise) with PCK@0.2 (torso), PCK@0.05 (box) and AUC
(PCK@0..0.2 torso), plus latency at batch 1 (network alone, and end to end through the Predictor with
flip test) with ``--threads`` torch threads.

Rows (training -> evaluation):

==============================  ==========================================================================
heatmap + argmax                heatmap head, MSE on Gaussians; decoded with argmax + quarter offset
heatmap + DARK                  the SAME trained model, DARK decoding (only the decoder changes)
heatmap 96x96 + argmax / DARK   heatmap head at 96x96 input (24x24 heatmaps), both decoders
heatmap 64x64 + argmax / DARK   heatmap head at 64x64 input (16x16 heatmaps), both decoders
..., 5-px / 3-px blur           DARK with a smaller blur than DarkPose's 11 px (tuned for 64x48 maps)
..., no flip test               the 128 and 64 models, both decoders, on the original view only: flip
                                fusion averages two heatmaps, which itself smooths the peak DARK refines
DSNT                            dsnt head: soft-argmax of the maps, Euclidean loss + JS regulariser (w 1)
L1 regression                   global pool + linear -> normalised (x, y), L1 loss
RLE                             regression head with sigmas, residual log-likelihood (RealNVP flow)
L1 regression + bone            + bone-length loss on the skeleton's limbs (weight 1)
L1 regression + bone + AWL      the two terms weighted by learned homoscedastic uncertainty (AWL)
L1 regression, pixel targets    coordinate normalisation OFF: targets/outputs in input pixels, same loss
heatmap, pretrained             heatmap + DARK, started from ``--pretrained`` (synthetic pretraining) instead
                                of random weights; the same 10 LSPET epochs
==============================  ==========================================================================

Results go to ``benchmarks/results/tricks.json`` (every number, the budget, the environment) and
``tricks.md`` next to it (the table, also printed). Resumable: rows already in the json for the same
budget are skipped, and a training interrupted mid-way continues from its run folder's ``last.pt``
(run folders: ``runs/tricks/<budget>/<training>``). Latency is wall-clock: other jobs on the machine
(see the recorded load average) slow it down.

    python benchmarks/tricks.py                          # everything, 10 epochs per training
    python benchmarks/tricks.py --epochs 20 --rows dsnt,rle
    python benchmarks/tricks.py --list                   # row names
    # smoke test on synthetic data (seconds):
    posekit synth --out /tmp/tk --num 64 --size 128
    python benchmarks/tricks.py --train coco:/tmp/tk/annotations.json --val coco:/tmp/tk/annotations.json \\
        --epochs 1 --max-iters 2 --batch-size 8 --workers 0 --repeats 3 \\
        --out /tmp/tk/tricks.json --runs /tmp/tk/runs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from common import (add_study_args, add_training_args, command, decoder_options, environment, fill_rows, finish_study,
                    list_rows, load_average, median_ms, open_study, resolve_spec, selected_rows, table, train_config,
                    train_once)

BACKBONE = "simplebaseline_r18"
BACKBONE_KWARGS = {"width": 0.4, "deconv_channels": 96}
INPUT = 128

#: training name -> TrainConfig options that differ from the shared ones
TRAININGS = {
    "heatmap_128": {"head": "heatmap"},
    "heatmap_96": {"head": "heatmap", "input_size": (96, 96)},
    "heatmap_64": {"head": "heatmap", "input_size": (64, 64)},
    "dsnt": {"head": "dsnt", "loss": {"coord": "l2", "js_weight": 1.0, "js_sigma": 1.0}},
    "regression_l1": {"head": "regression", "loss": {"coord": "l1"}},
    "rle": {"head": "rle"},
    "regression_l1_bone": {"head": "regression", "loss": {"coord": "l1", "bone_loss": "limbs", "bone_weight": 1.0}},
    "regression_l1_bone_awl": {"head": "regression",
                               "loss": {"coord": "l1", "bone_loss": "limbs", "awl": True}},
    "regression_l1_pixels": {"head": "regression", "loss": {"coord": "l1"}, "codec_kwargs": {"normalized": False}},
    # started from --pretrained (e.g. the synthetic source model of benchmarks/adaptation.py) instead of at random
    "heatmap_128_pretrained": {"head": "heatmap", "init": "--pretrained"},
}

#: row name -> (training, decode override for heatmap models, label); "dark:K" is DARK with a K-pixel blur
#: (DarkPose's default, 11, was chosen for 64x48 heatmaps; ours are 32x32 and smaller)
ROWS = {
    "heatmap_argmax": ("heatmap_128", "argmax", "heatmap + argmax"),
    "heatmap_dark": ("heatmap_128", "dark", "heatmap + DARK"),
    "heatmap_96_argmax": ("heatmap_96", "argmax", "heatmap 96x96 + argmax"),
    "heatmap_96_dark": ("heatmap_96", "dark", "heatmap 96x96 + DARK"),
    "heatmap_64_argmax": ("heatmap_64", "argmax", "heatmap 64x64 + argmax"),
    "heatmap_64_dark": ("heatmap_64", "dark", "heatmap 64x64 + DARK"),
    "heatmap_dark_blur5": ("heatmap_128", "dark:5", "heatmap + DARK, 5-px blur"),
    "heatmap_96_dark_blur5": ("heatmap_96", "dark:5", "heatmap 96x96 + DARK, 5-px blur"),
    "heatmap_64_dark_blur3": ("heatmap_64", "dark:3", "heatmap 64x64 + DARK, 3-px blur"),
    "heatmap_argmax_noflip": ("heatmap_128", "argmax", "heatmap + argmax, no flip test"),
    "heatmap_dark_noflip": ("heatmap_128", "dark", "heatmap + DARK, no flip test"),
    "heatmap_64_argmax_noflip": ("heatmap_64", "argmax", "heatmap 64x64 + argmax, no flip test"),
    "heatmap_64_dark_noflip": ("heatmap_64", "dark", "heatmap 64x64 + DARK, no flip test"),
    "heatmap_pretrained": ("heatmap_128_pretrained", "dark", "heatmap + DARK, synthetic pretraining (--pretrained)"),
    "dsnt": ("dsnt", None, "DSNT (L2 + JS)"),
    "regression_l1": ("regression_l1", None, "L1 regression"),
    "rle": ("rle", None, "RLE"),
    "regression_l1_bone": ("regression_l1_bone", None, "L1 regression + bone (limbs)"),
    "regression_l1_bone_awl": ("regression_l1_bone_awl", None, "L1 regression + bone + AWL"),
    "regression_l1_pixels": ("regression_l1_pixels", None, "L1 regression, pixel targets (no normalisation)"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="training epochs per row (the one budget; default 10)")
    add_training_args(p)
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train",
                   help="training data spec (relative paths are taken from the repository root)")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val", help="evaluation data spec")
    p.add_argument("--pretrained", type=Path,
                   help="checkpoint the heatmap_pretrained row starts from, e.g. the synthetic source model of "
                        "benchmarks/adaptation.py (runs/adaptation/<budget>/source/model.pt)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the latency measurement")
    p.add_argument("--train-threads", type=int,
                   help="torch threads for training (default: all cores; 1 lets two benchmarks share 2 cores)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per latency measurement")
    add_study_args(p, "tricks")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--epochs, --batch-size, --repeats and --threads must be >= 1")
    # by default the heatmap_pretrained row only when there is a checkpoint to start from
    args.row_names = selected_rows(p, args, ROWS, None if args.pretrained else [r for r in ROWS
                                                                                if r != "heatmap_pretrained"])
    return args


def budget(args) -> dict:
    return {"epochs": args.epochs, "max_iters_per_epoch": args.max_iters, "batch_size": args.batch_size,
            "train": args.train, "val": args.val}


def budget_name(b: dict) -> str:
    return f"e{b['epochs']}" + (f"_i{b['max_iters_per_epoch']}" if b["max_iters_per_epoch"] else "") \
        + (f"_b{b['batch_size']}" if b["batch_size"] != 32 else "")


def train(name: str, args, run_dir: Path) -> dict:
    """Train (or finish training) one configuration; returns its ``done.json`` record (checkpoint, seconds, final
    training log, config)."""
    options = dict(TRAININGS[name])
    if options.get("init") == "--pretrained":
        if not args.pretrained:
            raise SystemExit(f"training {name} needs --pretrained CKPT")
        options["init"] = str(Path(args.pretrained).resolve())
    input_size = tuple(options.pop("input_size", (INPUT, INPUT)))
    cfg = train_config(resolve_spec(args.train), run_dir, args, model=BACKBONE, model_kwargs=dict(BACKBONE_KWARGS),
                       input_size=input_size, epochs=args.epochs, seed=0, threads=args.train_threads, **options)
    return train_once(cfg, run_dir)


def latency(predictor, repeats: int) -> dict:
    """Batch-1 latency: the network alone on one crop, and one person end to end (crop, network on the two
    flip-test views, decode, map back)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
    box = np.array([64.0, 16.0, 128.0, 224.0], np.float32)
    w, h = predictor.input_size
    crop = torch.from_numpy(rng.standard_normal((1, 3, h, w)).astype(np.float32)).contiguous(
        memory_format=torch.channels_last)

    def network():
        with torch.inference_mode():
            predictor.model(crop)

    return {"network_ms": median_ms(network, repeats),
            "end_to_end_flip_ms": median_ms(lambda: predictor.predict(image, box[None]), repeats)}


def evaluate_row(row: str, training: dict, args) -> dict:
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    _, decode, label = ROWS[row]
    checkpoint = training["checkpoint"]
    is_heatmap = training["config"]["head"] == "heatmap"
    predictor = Predictor.from_checkpoint(checkpoint, flip_test=not row.endswith("_noflip"),
                                          **(decoder_options(decode) if is_heatmap else {}))
    metrics = evaluate(predictor, resolve_spec(args.val))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        timing = latency(predictor, args.repeats)
    finally:
        torch.set_num_threads(threads)
    cfg = training["config"]
    params = sum(p.numel() for p in predictor.model.parameters())
    return {"label": label, "training": ROWS[row][0], "head": cfg["head"], "loss": cfg["loss"],
            "codec": predictor.codec.to_config(), "input_size": cfg["input_size"],
            "decode": predictor.codec.decode_method if is_heatmap else None, "flip_test": predictor.flip_test,
            "pck@0.2_torso": metrics["pck@0.2_torso"], "pck@0.05_box": metrics["pck@0.05_box"],
            "auc_torso": metrics["auc_torso"], "pckh@0.5": metrics.get("pckh@0.5"),
            "n_evaluated": metrics["n_evaluated"], "params": params, **timing,
            "train_seconds": training["train_seconds"], "final_train_loss": training["final_epoch"].get("loss"),
            "latency_threads": args.threads, "load_average_1_5_15_min": load_average()}


def markdown(results: dict) -> str:
    b = results["budget"]
    lines = [f"# Target representations and training tricks on LSPET ({BACKBONE} {json.dumps(BACKBONE_KWARGS)})",
             "",
             f"Budget per training: {b['epochs']} epochs"
             + (f" x at most {b['max_iters_per_epoch']} iterations" if b["max_iters_per_epoch"] else "")
             + f", batch {b['batch_size']}; train `{b['train']}`, evaluated on `{b['val']}` with flip test unless the row says otherwise. "
             "Latency at batch 1 (median ms): network alone / one person end to end with flip test.",
             ""]
    rows = [[r["label"], r["head"], r["input_size"][0], f"{r['pck@0.2_torso']:.3f}", f"{r['pck@0.05_box']:.3f}",
             f"{r['auc_torso']:.3f}", f"{r['network_ms']:.1f}", f"{r['end_to_end_flip_ms']:.1f}",
             f"{r['params'] / 1e6:.2f}", f"{r['train_seconds'] / 60:.1f}"]
            for r in (results["rows"].get(name) for name in ROWS) if r is not None]
    lines += table(["row", "head", "input", "PCK@0.2 torso", "PCK@0.05 box", "AUC", "net ms", "e2e ms", "params (M)",
                    "train min"], rows)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        return list_rows({name: f"{label}  (training {training}: {json.dumps(TRAININGS[training])})"
                          for name, (training, decode, label) in ROWS.items()}, 26)
    b = budget(args)
    results = open_study(args.out, b, backbone={"name": BACKBONE, "kwargs": BACKBONE_KWARGS}, environment=environment(),
                         command=command("benchmarks/tricks.py", argv))
    run_root = args.runs / budget_name(b)

    def compute(row: str) -> dict:
        training_name = ROWS[row][0]
        print(f"{row}: training {training_name} ...", flush=True)
        r = evaluate_row(row, train(training_name, args, run_root / training_name), args)
        print(f"{row}: PCK@0.2 torso {r['pck@0.2_torso']:.3f}, PCK@0.05 box {r['pck@0.05_box']:.3f}, "
              f"AUC {r['auc_torso']:.3f}, {r['network_ms']:.1f} ms", flush=True)
        return r

    fill_rows(results, args.row_names, compute, args.out, markdown, force=args.force)
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())
