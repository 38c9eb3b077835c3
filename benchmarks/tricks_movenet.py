"""The tricks on a pretrained backbone: heads, decoders, flip test and HardSwish on MoveNet Lightning, LSPET.

Base: Google's MoveNet SinglePose Lightning imported into posekit with the LSP-14 skeleton -- the equivalent of
``python -m posekit.models.movenet_import ../shared/models/movenet-lightning.onnx --skeleton lsp --out
runs/tricks_movenet/init/movenet_lightning_lsp.pt``, made by this script when missing (the 12 joints COCO-17
shares with LSP keep their pretrained heatmap channels; neck starts from the shoulders', head top from the face
joints'). Every trained row fine-tunes from that init on ``--train`` for the SAME budget: ``--epochs`` (default 1)
x 225 iterations of batch 32, 192x192 input (48x48 heatmaps, sigma 2), AdamW lr 3e-4, weight decay 1e-4, 100
warm-up iterations, cosine to 1%, seed 0, bf16 autocast with ``--amp``, default augmentation.

What starts pretrained (the honest caveat of the head comparison): the heatmap head IS MoveNet's pretrained
keypoint head; DSNT reads the same pretrained head's logits (``model_kwargs={"output": "logits"}``: the
soft-argmax needs them, not the sigmoid maps); the L1-regression and RLE heads are NEW (global average pool +
linear on the 24-channel stride-4 FPN feature every MoveNet head reads, normal(0, 0.01) init), only their trunk
and FPN are pretrained, so one epoch favours the heads that start trained. HardSwish replaces every ReLU6/ReLU
of trunk, FPN and head under the same pretrained weights (which were learned with ReLU6/ReLU).

Rows (training -> evaluation), all on ``--val`` (LSPET val, 800 people, boxes of the annotated joints):

=======================  ====================================================================================
heatmap_dark             heatmap head (MSE on Gaussians), DARK decoding, flip test
heatmap_argmax           the SAME model, argmax + quarter-pixel offset
heatmap_*_noflip         both decoders without flip test (evaluation only)
dsnt                     DSNT: soft-argmax of the pretrained head's logits, L2 + JS regulariser (weight 1)
regression_l1            L1 regression (new head)
rle                      RLE: the regression head + sigmas, residual log-likelihood (new head)
hardswish_dark           HardSwish for ReLU6/ReLU, heatmap head, DARK, flip test
original_movenet         Google's model as imported (COCO-17, all CenterNet heads), MoveNet's own decoding
original_argmax / _dark  the same network, argmax / DARK on its keypoint heatmaps (no flip test: the graph's
                         protocol; 12 joints, those COCO shares with LSP)
init_dark                the LSP-14 init before any fine-tuning (DARK, flip test)
zoo_dark / zoo_argmax    ``zoo/lspet_movenet_lightning.pt`` (5 epochs of the same recipe), both decoders
=======================  ====================================================================================

MoveNet's own decoding (centre, centre-to-joint regression, heatmap, sub-pixel offsets) does not apply to a
posekit fine-tune: the LSP init keeps the heatmap head only (``heads="heatmap"``; posekit trains no centre,
regression or offset head), so the decoder comparison on MoveNet's decoding is made on the imported original.

Scores: PCK@0.2 torso, PCK@0.05 box and AUC (PCK@0..0.2 torso) on the 14 LSP joints and on the 12 that COCO
shares (``posekit.zoo.LSP_SHARED_WITH_BLAZEPOSE``); decode ms (the codec on one crop's network output);
the training's wall time; and, measured for every network in one phase at the end (``--rounds`` interleaved
rounds of ``--repeats`` calls, median), the batch-1 latency of posekit's ONNX export at ``--threads`` threads,
beside the released ``movenet-lightning.onnx`` graph.

Resumable (``fill_rows``; run folders ``runs/tricks_movenet/<budget>/<training>`` continue from ``last.pt``)::

    python benchmarks/tricks_movenet.py --amp                       # every row, 1 epoch per training
    python benchmarks/tricks_movenet.py --amp --epochs 2 --rows heatmap_dark,dsnt
    python benchmarks/tricks_movenet.py --list
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import (ROOT, add_study_args, add_training_args, command, decoder_options, environment, export_latency,
                    fill_rows, finish_study, list_rows, load_average, lsp_scores, median_ms, onnx_latency, open_study,
                    repo_path, resolve_spec, selected_rows, table, train_once)

MODEL = "movenet_lightning"
INPUT = 192
ZOO = "zoo/lspet_movenet_lightning.pt"
#: the fine-tuning recipe of configs/lspet_movenet_lightning.json, pinned here
RECIPE = {"sigma": 2.0, "decode": "dark", "lr": 3e-4, "weight_decay": 1e-4, "warmup_iters": 100,
          "final_lr_ratio": 0.01, "seed": 0}

#: training -> (TrainConfig options that differ, what starts from pretrained weights)
TRAININGS = {
    "heatmap": ({"head": "heatmap"}, "pretrained head"),
    "dsnt": ({"head": "dsnt", "model_kwargs": {"output": "logits"},
              "loss": {"coord": "l2", "js_weight": 1.0, "js_sigma": 1.0}}, "pretrained head (its logits)"),
    "regression_l1": ({"head": "regression", "loss": {"coord": "l1"}}, "new head"),
    "rle": ({"head": "rle"}, "new head"),
    "hardswish": ({"head": "heatmap", "model_kwargs": {"act": "hardswish"}},
                  "pretrained weights, new activations"),
}
#: evaluation-only networks -> what they are
REFERENCES = {"original": "Google's Lightning as imported (COCO-17)", "init": "the LSP-14 init, not fine-tuned",
              "zoo": f"{ZOO} (5 epochs)"}

#: row -> (network: a training or a reference, decode override or None, flip test, label)
ROWS = {
    "heatmap_dark": ("heatmap", "dark", True, "heatmap (MSE) + DARK"),
    "heatmap_argmax": ("heatmap", "argmax", True, "heatmap (MSE) + argmax"),
    "heatmap_dark_noflip": ("heatmap", "dark", False, "heatmap (MSE) + DARK, no flip test"),
    "heatmap_argmax_noflip": ("heatmap", "argmax", False, "heatmap (MSE) + argmax, no flip test"),
    "dsnt": ("dsnt", None, True, "DSNT (L2 + JS) on the heatmap logits"),
    "regression_l1": ("regression_l1", None, True, "L1 regression (pool + linear)"),
    "rle": ("rle", None, True, "RLE (pool + linear + sigmas)"),
    "hardswish_dark": ("hardswish", "dark", True, "HardSwish for ReLU6/ReLU, heatmap + DARK"),
    "original_movenet": ("original", "movenet", False, "original, MoveNet's decoding (centre + offsets)"),
    "original_argmax": ("original", "argmax", False, "original, argmax on its heatmaps"),
    "original_dark": ("original", "dark", False, "original, DARK on its heatmaps"),
    "init_dark": ("init", "dark", True, "LSP init, no fine-tuning, DARK"),
    "zoo_dark": ("zoo", "dark", True, "zoo model (5 epochs), DARK"),
    "zoo_argmax": ("zoo", "argmax", True, "zoo model (5 epochs), argmax"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per trained row (the one budget)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for every training")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--models", type=Path, default=ROOT / ".." / "shared" / "models",
                   help="folder of movenet-lightning.onnx")
    add_training_args(p, workers=1)
    p.add_argument("--threads", type=int, default=2, help="training, evaluation and latency threads")
    p.add_argument("--limit", type=int, help="first N val people only (smoke tests)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds")
    p.add_argument("--repeats", type=int, default=30, help="latency calls per round")
    add_study_args(p, "tricks_movenet")
    args = p.parse_args(argv)
    if min(args.epochs, args.batch_size, args.threads, args.rounds, args.repeats) < 1:
        p.error("--epochs, --batch-size, --threads, --rounds and --repeats must be >= 1")
    args.row_names = selected_rows(p, args, ROWS)
    return args


def budget(args) -> dict:
    return {"epochs": args.epochs, "batch_size": args.batch_size, "input_size": INPUT, "amp": args.amp,
            **RECIPE, "train": args.train, "val": args.val, "max_iters": args.max_iters, "val_people": args.limit}


def budget_name(b: dict) -> str:
    return f"e{b['epochs']}" + ("_bf16" if b["amp"] else "") + (f"_m{b['max_iters']}" if b["max_iters"] else "") \
        + (f"_b{b['batch_size']}" if b["batch_size"] != 32 else "")


def init_checkpoints(args) -> dict[str, str]:
    """The imported original (COCO-17, all heads) and the LSP-14 init under ``--runs/init``, made once."""
    from posekit.checkpoint import save_checkpoint
    from posekit.models.movenet_import import movenet_checkpoint, retarget_checkpoint
    folder = args.runs / "init"
    paths = {"original": folder / "movenet_lightning_coco.pt", "init": folder / "movenet_lightning_lsp.pt"}
    if not all(p.exists() for p in paths.values()):
        original = movenet_checkpoint(args.models / "movenet-lightning.onnx")
        save_checkpoint(paths["original"], original)
        save_checkpoint(paths["init"], retarget_checkpoint(original, "lsp"))
        print(f"wrote {paths['init']} (and the COCO-17 import {paths['original'].name})", flush=True)
    return {name: str(p) for name, p in paths.items()}


def train_config(name: str, args, out: Path, init: str):
    from posekit.engine.trainer import TrainConfig
    options = dict(TRAININGS[name][0])
    return TrainConfig(train=resolve_spec(args.train), val=None, out=str(out), model=MODEL,
                       model_kwargs=options.pop("model_kwargs", {}), init=init, input_size=(INPUT, INPUT),
                       **RECIPE, epochs=args.epochs, batch_size=args.batch_size, amp=args.amp, workers=args.workers,
                       threads=args.threads, max_iters_per_epoch=args.max_iters, progress=sys.stderr.isatty(),
                       **options)


def network(name: str, args, inits: dict, run_root: Path) -> dict:
    """A row's network: ``{"checkpoint", "train_seconds", "start"}``, training it first when it is a training."""
    if name in REFERENCES:
        path = repo_path(ZOO) if name == "zoo" else inits[name]
        return {"checkpoint": path, "train_seconds": None, "start": REFERENCES[name]}
    record = train_once(train_config(name, args, run_root / name, inits["init"]), run_root / name)
    return {"checkpoint": record["checkpoint"], "train_seconds": record["train_seconds"],
            "final_train_loss": record["final_epoch"].get("loss"), "start": TRAININGS[name][1]}


def decode_ms(predictor, sample, repeats: int) -> float:
    """Median ms of the codec decoding one crop's network output (the first view of ``sample``)."""
    from posekit.data.io import read_image
    crop = predictor.prepare(read_image(sample.image_path), np.asarray(sample.box))[0][0]
    output = predictor.run_network(crop[None])
    return median_ms(lambda: predictor.codec.decode(output), repeats)


def compute_row(row: str, args, samples, inits: dict, run_root: Path) -> dict:
    from posekit.inference.predictor import Predictor
    name, decode, flip, label = ROWS[row]
    net = network(name, args, inits, run_root)
    predictor = Predictor.from_checkpoint(net["checkpoint"], flip_test=flip, **decoder_options(decode))
    codec = predictor.codec.to_config()
    head = "CenterNet (all)" if codec["type"] == "MoveNetCodec" else predictor.pose_config.head
    return {"label": label, "network": name, **net, "head": head, "codec": codec,
            "flip_test": flip, **lsp_scores(predictor, samples),
            "decode_ms": decode_ms(predictor, samples[0], args.repeats),
            "params": sum(p.numel() for p in predictor.model.parameters())}


def measure_latency(results: dict, args) -> None:
    """ms per crop of every network in the table (posekit's ONNX export) and the released graph."""
    paths = {row["network"]: repo_path(row["checkpoint"]) for row in results["rows"].values()}
    graph = args.models / "movenet-lightning.onnx"
    timings: dict[str, list[float]] = {name: [] for name in [*paths, "graph_lightning"]}
    for _ in range(args.rounds):
        for name, path in paths.items():
            timings[name].append(export_latency(path, args.threads, args.repeats))
        timings["graph_lightning"].append(onnx_latency(graph, {"input:0": np.zeros((1, INPUT, INPUT, 3), np.int32)},
                                                       args.threads, args.repeats))
    results["latency_ms"] = {name: round(float(np.median(t)), 2) for name, t in timings.items() if t}


def markdown(results: dict) -> str:
    b, lat = results["budget"], results.get("latency_ms", {})

    def pct(value):
        return "-" if value is None else f"{100 * value:.1f}"

    def cells(row):
        ms = lat.get(row["network"])
        return [row["label"], row["start"], row["head"], row["codec"].get("decode", "-"),
                "yes" if row["flip_test"] else "no", pct(row["pck@0.2_torso"]), pct(row["pck@0.2_torso_12"]),
                pct(row["pck@0.05_box"]), pct(row["pck@0.05_box_12"]), pct(row["auc_torso"]),
                pct(row["auc_torso_12"]), f"{row['decode_ms']:.2f}", "-" if ms is None else f"{ms:.1f}",
                "-" if not row["train_seconds"] else f"{row['train_seconds'] / 60:.1f}"]

    rows = [results["rows"][name] for name in ROWS if name in results["rows"]]
    people = rows[0]["n_people"] if rows else 0
    lines = table(["row", "starts from", "head", "decode", "flip", "PCK@0.2 (14)", "PCK@0.2 (12)", "PCK@0.05 box (14)",
                   "PCK@0.05 box (12)", "AUC (14)", "AUC (12)", "decode ms", "net ms", "train min"],
                  (cells(r) for r in rows), align=["---"] * 5 + ["---:"] * 9)
    graph = lat.get("graph_lightning")
    return "\n".join([
        f"MoveNet Lightning ({INPUT} px) on LSPET: every trained row fine-tunes the imported LSP-14 init for "
        f"{b['epochs']} epoch(s)" + (f" x at most {b['max_iters']} iterations" if b["max_iters"] else "")
        + f" of batch {b['batch_size']} (AdamW lr {b['lr']}, {b['warmup_iters']} warm-up iterations, cosine, seed "
        f"{b['seed']}, {'bf16 autocast' if b['amp'] else 'fp32'}) on `{b['train']}`; scored on `{b['val']}` "
        f"({people} people). The regression and RLE heads start untrained; heatmap, DSNT and HardSwish start from "
        "MoveNet's keypoint head. The fine-tuned models keep no offset heads, so MoveNet's own decoding is "
        "compared on the imported original (COCO-17: 12 joints only).", "",
        *lines, "",
        "PCK/AUC in %; (14): all LSP joints, (12): the joints COCO shares with LSP. decode ms: the codec on one "
        "crop's network output. net ms: batch 1 through posekit's ONNX export at "
        f"{results.get('threads')} threads, median of interleaved rounds"
        + (f"; the released movenet-lightning graph (with its own pre- and post-processing): {graph} ms."
           if graph else "; not measured yet."), "",
        f"Command: `{results['command']}`", ""])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        return list_rows({name: f"{label}  ({network}: "
                                f"{json.dumps(TRAININGS[network][0]) if network in TRAININGS else REFERENCES[network]})"
                          for name, (network, _, _, label) in ROWS.items()}, 24)
    if not (args.models / "movenet-lightning.onnx").exists():
        print(f"skipped: {args.models / 'movenet-lightning.onnx'} not found (the shared MoveNet models are needed "
              "for the init checkpoint); nothing was run", file=sys.stderr)
        return 0
    import torch
    torch.set_num_threads(args.threads)
    from posekit.data.formats import load_samples

    b = budget(args)
    results = open_study(args.out, b, command=command("benchmarks/tricks_movenet.py", argv, python=True),
                         environment=environment("onnxruntime", "cpu"), threads=args.threads)
    results.setdefault("load_average", []).append(load_average())
    inits = init_checkpoints(args)
    samples = load_samples(resolve_spec(args.val))[:args.limit]
    run_root = args.runs / budget_name(b)

    def compute(row: str) -> dict:
        print(f"{row}: {ROWS[row][0]} ...", flush=True)
        r = compute_row(row, args, samples, inits, run_root)
        print(f"{row}: PCK@0.2 (12) {r['pck@0.2_torso_12']:.3f}, PCK@0.05 box (12) {r['pck@0.05_box_12']:.3f}",
              flush=True)
        return r

    fill_rows(results, args.row_names, compute, args.out, markdown, force=args.force)
    measure_latency(results, args)
    print(json.dumps(results["latency_ms"]))
    return finish_study(results, args.out, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
