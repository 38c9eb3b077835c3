"""`posekit` command line. Each subcommand parses arguments and calls one library function."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def size_arg(text: str) -> tuple[int, int]:
    """'128' -> (128, 128); '192x256' -> (192, 256) as (W, H)."""
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128 or 96x128, got {text!r}") from None
    if w <= 0 or h <= 0 or len(parts) > 2:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


# -- synth ---------------------------------------------------------------------------------------
def cmd_synth(args) -> int:
    from posekit.data.synth import generate_dataset
    ann = generate_dataset(args.out, args.num, style=args.style, skeleton=args.skeleton, seed=args.seed,
                           size=args.size, workers=args.workers, progress=True)
    print(f"wrote {args.num} images and {ann}")
    print(f"use it as:  --data coco:{ann}")
    return 0


# -- train ---------------------------------------------------------------------------------------
def train_config_from_args(args):
    from posekit.engine.trainer import TrainConfig
    base = json.loads(Path(args.config).read_text()) if args.config else {}
    overrides = {"train": args.data, "val": args.val, "out": args.out, "model": args.model, "input_size": args.input_size,
                 "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "workers": args.workers, "threads": args.threads, "device": args.device, "amp": args.amp, "method": args.method,
                 "init": args.init, "nan_policy": args.nan_policy, "sigma": args.sigma,
                 "max_iters_per_epoch": args.max_iters, "progress": not args.no_progress,
                 "skip_invalid": args.skip_invalid, "head": args.head}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if args.model_kwargs:
        base["model_kwargs"] = {**base.get("model_kwargs", {}), **json.loads(args.model_kwargs)}
    for key in ("head_kwargs", "codec_kwargs", "loss"):  # JSON objects, merged over the config file's
        if getattr(args, key, None):
            value = json.loads(getattr(args, key))
            if not isinstance(value, dict):
                raise SystemExit(f"posekit train: --{key.replace('_', '-')} must be a JSON object, got {value!r}")
            base[key] = {**base.get(key, {}), **value}
    if args.augment:
        base["augment"] = {**base.get("augment", {}), **json.loads(args.augment)}
    method_kwargs = dict(base.get("method_kwargs", {}))
    for key in ("teacher", "alpha", "unlabeled"):
        if getattr(args, key, None) is not None:
            method_kwargs[key] = getattr(args, key)
    base["method_kwargs"] = method_kwargs
    if "train" not in base:
        raise SystemExit("posekit train: --data is required (or a --config that names 'train')")
    return TrainConfig.from_dict(base)


def cmd_train(args) -> int:
    from posekit.methods import build_trainer
    cfg = train_config_from_args(args)
    result = build_trainer(cfg, resume=args.resume).fit()
    print(json.dumps(result, indent=2, default=float))
    return 0


# -- eval / predict ------------------------------------------------------------------------------
def load_predictor(args):
    from posekit.inference.predictor import Predictor
    predictor = Predictor.load(args.checkpoint, backend=args.backend, flip_test=not args.no_flip,
                               batch_size=args.batch_size, **({"decode": args.decode} if args.decode else {}))
    scai, tta = getattr(args, "scai", None), getattr(args, "tta", None)
    if tta and not scai:
        raise ValueError(f"--tta {tta} needs --scai CKPT (SCAI networks: posekit adapt --method scai)")
    if scai:  # SCAI corrects the distal joints; with --tta scai it also trains its correction net on the test images
        from posekit.methods.scai import SCAICorrector
        return SCAICorrector.wrap(predictor, scai, mode="tta" if tta == "scai" else "correct",
                                  tta_steps=getattr(args, "tta_steps", None), tta_lr=getattr(args, "tta_lr", None))
    return predictor


def cmd_eval(args) -> int:
    from posekit.engine.evaluate import evaluate
    from posekit.metrics import format_table
    from posekit.skeletons import SKELETONS
    predictor = load_predictor(args)
    metrics = evaluate(predictor, args.data)
    summary = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    print(json.dumps(summary, indent=2))
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    if skeleton is not None and "per_joint" in metrics:
        print(format_table(metrics, skeleton))
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def cmd_predict(args) -> int:
    from posekit.inference.predictor import prediction_record
    predictor = load_predictor(args)
    if args.source and Path(args.source).suffix.lower() in VIDEO_EXTENSIONS:
        from posekit.inference.video import predict_video
        records = predict_video(predictor, args.source, smooth=args.smooth, smooth_params=json.loads(args.smooth_params),
                                draw_path=args.draw, box_passes=args.box_passes)
        Path(args.out).write_text(json.dumps(records) + "\n")
        print(f"wrote {len(records)} frames to {args.out}")
        return 0
    samples = prediction_samples(args)
    from posekit.skeletons import SKELETONS
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    draw_dir = Path(args.draw) if args.draw else None
    if draw_dir:
        draw_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    n = 0
    out = Path(args.out)
    # Stream records to disk: a 10,000-image folder never sits in memory at once.
    with open(out, "w") as f:
        f.write("[")
        for sample, keypoints in predictor.predict_samples(samples, on_error=lambda s, e: failures.append(str(e))):
            det_score = sample.extra.get("det_score")
            score = float(keypoints[:, 2].mean()) * (det_score if det_score is not None else 1.0)
            f.write(("," if n else "") + "\n" + json.dumps(prediction_record(sample, keypoints, score)))
            n += 1
            if draw_dir:
                draw_prediction(sample, keypoints, skeleton, draw_dir)
        f.write("\n]\n")
    for why in failures:
        print(f"skipped: {why}", file=sys.stderr)
    print(f"wrote {n} predictions to {out}" + (f" ({len(failures)} images skipped, listed above)" if failures else ""))
    return 0 if n or not failures else 1


VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def prediction_samples(args):
    from posekit.data.formats import load_samples
    from posekit.data.formats.folder import read_image_folder
    if args.data:
        return load_samples(args.data)
    if args.source:
        return read_image_folder(args.source, boxes_file=args.boxes, score_threshold=args.score_threshold)
    raise SystemExit("posekit predict: give --data FORMAT:PATH, a folder of images, or a video file")


def draw_prediction(sample, keypoints, skeleton, draw_dir: Path) -> None:
    import cv2
    from posekit.data.io import read_image
    from posekit.inference.draw import draw_pose
    target = draw_dir / (Path(sample.file_name or sample.image_path).stem + ".jpg")
    base = cv2.cvtColor(cv2.imread(str(target)), cv2.COLOR_BGR2RGB) if target.exists() else read_image(sample.image_path)
    cv2.imwrite(str(target), cv2.cvtColor(draw_pose(base, keypoints, skeleton, threshold=0.05), cv2.COLOR_RGB2BGR))


# -- info / export / demo ------------------------------------------------------------------------
def cmd_info(args) -> int:
    from posekit.models import list_models
    from posekit.models.flops import model_info
    names = list_models() if args.model in (None, "all") else [args.model]
    print(f"| model | params (M) | GFLOPs @ {args.input_size[0]}x{args.input_size[1]} |\n|---|---|---|")
    for name in names:
        info = model_info(name, input_size=args.input_size, num_keypoints=args.num_keypoints)
        print(f"| {name} | {info['params'] / 1e6:.2f} | {info['flops'] / 1e9:.3f} |")
    return 0


def cmd_export(args) -> int:
    from posekit.inference.export import export_onnx
    print(f"wrote {export_onnx(args.checkpoint, args.out, opset=args.opset)}")
    return 0


def cmd_zoo(args) -> int:
    from posekit.zoo import publish, read_index, zoo_table
    if args.publish:
        if not (args.name and args.val):
            raise SystemExit("posekit zoo --publish: --name and --val are required")
        entry = publish(args.publish, args.name, val=args.val, role=args.role, method=args.method, dataset=args.dataset,
                        command=args.command_line, budget=args.budget, run_dir=args.run_dir, zoo_dir=args.zoo_dir,
                        notes=args.notes)
        print(json.dumps(entry["metrics"], indent=2))
    print(zoo_table(read_index(args.zoo_dir)))
    return 0


def cmd_demo(args) -> int:
    from posekit.demo import run_demo
    report = run_demo(args.out, num_train=args.num_train, num_val=args.num_val, epochs=args.epochs, seed=args.seed,
                      workers=args.workers)
    print(json.dumps(report, indent=2))
    return 0


# -- robustness ----------------------------------------------------------------------------------
def cmd_robustness(args) -> int:
    """Clean + corruption x severity evaluation (mPC, rPC), or --materialize the corrupted data set."""
    from posekit.engine import robustness as rb
    corruptions, severities = rb.parse_corruptions(args.corruptions), rb.parse_severities(args.severities)
    if args.materialize:
        index = rb.materialize(args.data, args.materialize, corruptions=corruptions, severities=severities,
                               limit=args.limit, seed=args.seed, progress=not args.no_progress)
        print(f"wrote {len(index['conditions'])} corrupted copies of {args.data} under {args.materialize} "
              f"(index.json lists their data specs)")
        return 0
    if not args.checkpoint:
        raise SystemExit("posekit robustness: --checkpoint is required (unless --materialize)")
    predictor = load_predictor(args)
    out = Path(args.out) if args.out else Path("runs") / "robustness" / Path(args.checkpoint).stem
    result = rb.run_robustness(predictor, args.data, corruptions=corruptions, severities=severities, limit=args.limit,
                               seed=args.seed, metric=args.metric, out=out, checkpoint=str(args.checkpoint),
                               fingerprint=rb.file_fingerprint(args.checkpoint), progress=not args.no_progress)
    print(rb.format_markdown(result))
    print(f"wrote {out / 'robustness.json'}, {out / 'robustness.md'}, {out / 'robustness.png'}")
    return 0


# -- adapt ---------------------------------------------------------------------------------------
#: defaults of `posekit adapt --method sfda` (the flags default to None so other methods see what was given)
ADAPT_SFDA_DEFAULTS = {"epochs": 5, "batch_size": 32, "lr": 1e-4, "seed": 0}


def cmd_adapt(args) -> int:
    """Adapt a trained model to unlabelled target data: sfda here, scai in posekit.methods.scai.adapt_cli."""
    if args.method == "scai":
        import importlib
        try:
            scai = importlib.import_module("posekit.methods.scai")
        except ImportError as err:
            raise SystemExit(f"posekit adapt --method scai: the SCAI method (posekit.methods.scai) is not "
                             f"available: {err}") from None
        options = json.loads(args.scai_kwargs) if args.scai_kwargs else {}
        if not isinstance(options, dict):
            raise ValueError(f"--scai-kwargs must be a JSON object, got {options!r}")
        for key in ("workers", "max_iters"):  # the adapt command's own flags, unless --scai-kwargs sets them
            if getattr(args, key, None) is not None:
                options.setdefault(key, getattr(args, key))
        report = scai.adapt(args.source, args.target, args.out, val=args.val, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed, **options)
        if "results" in report:
            print(scai.format_results(report["results"]))
        print(f"wrote {Path(args.out) / 'scai_eval.json'}")
        return 0
    if args.method == "adabn":
        from posekit.methods.adabn import adapt_batchnorm_checkpoint
        out = Path(args.out) / "model.pt"
        result = adapt_batchnorm_checkpoint(args.source, args.target, out, batch_size=args.batch_size or 32,
                                            workers=args.workers)
        print(json.dumps(result, indent=2))
        return 0
    from posekit.methods import build_trainer
    from posekit.methods.sfda import adapt_config
    if args.scai_kwargs:
        raise SystemExit("posekit adapt: --scai-kwargs is for --method scai")
    method_kwargs = json.loads(args.method_kwargs) if args.method_kwargs else {}
    if not isinstance(method_kwargs, dict):
        raise SystemExit(f"posekit adapt: --method-kwargs must be a JSON object, got {method_kwargs!r}")
    options = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in ADAPT_SFDA_DEFAULTS.items()}
    cfg = adapt_config(args.source, args.target, args.out, val=args.val, workers=args.workers,
                       max_iters_per_epoch=args.max_iters, progress=not args.no_progress, method_kwargs=method_kwargs,
                       alpha=args.alpha, beta=args.beta, gamma=args.gamma, ema=args.ema, tau=args.tau, **options)
    result = build_trainer(cfg, resume=args.resume).fit()
    print(json.dumps(result, indent=2, default=float))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posekit", description="Fast, robust and adaptable 2D human pose estimation.",
                                epilog="Data specs: coco:ANN.json | lsp:DIR[@train|@val] | mpii:ANN.json | folder:DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="generate synthetic people as a COCO-format dataset")
    s.add_argument("--out", required=True, help="output folder (images/ + annotations.json)")
    s.add_argument("--num", type=int, default=1000, help="number of images")
    s.add_argument("--style", default="flat", help="visual style: flat | textured | mixed")
    s.add_argument("--skeleton", default="lsp", choices=["lsp", "coco"], help="keypoint set written")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=size_arg, default=(192, 192), help="image size, e.g. 192 or 256x192")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train a top-down model")
    t.add_argument("--data", help="training data spec, e.g. lsp:../shared/datasets/lspet@train")
    t.add_argument("--val", help="validation data spec")
    t.add_argument("--out", help="run folder (checkpoints, log.jsonl)")
    t.add_argument("--config", help="JSON file of training options (flags override it)")
    t.add_argument("--model", help="registered model name (posekit info all)")
    t.add_argument("--model-kwargs", help='JSON, e.g. \'{"width": 0.5}\'')
    t.add_argument("--input-size", type=size_arg, help="model input WxH, e.g. 128 or 96x128")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--sigma", type=float, help="Gaussian sigma of the heatmap targets (heatmap pixels)")
    t.add_argument("--augment", help='JSON overrides of the augmentation, e.g. \'{"aid_prob": 0.3}\'')
    t.add_argument("--head", choices=["heatmap", "dsnt", "regression", "rle"],
                   help="target representation + head + loss (default heatmap)")
    t.add_argument("--head-kwargs", help='JSON options of the regression/rle head module, e.g. \'{"init_std": 0.01}\'')
    t.add_argument("--codec-kwargs", help='JSON extra codec options, e.g. \'{"normalized": false}\' or \'{"beta": 2}\'')
    t.add_argument("--loss", help='JSON head-loss options, e.g. \'{"coord": "l1", "bone_loss": "limbs", '
                                  '"bone_weight": 0.5, "awl": true}\' (posekit.losses.build_head_loss)')
    t.add_argument("--seed", type=int)
    t.add_argument("--workers", type=int, help="data-loading worker processes")
    t.add_argument("--threads", type=int, help="torch threads for the training process (default: all cores)")
    t.add_argument("--device", help="cpu | cuda")
    t.add_argument("--amp", action="store_true", default=None, help="mixed precision (CUDA only)")
    t.add_argument("--method", help="training method: supervised | fpd | okdhp | advmix ...")
    t.add_argument("--teacher", help="teacher checkpoint (fpd, advmix)")
    t.add_argument("--alpha", type=float, help="distillation weight (fpd, advmix)")
    t.add_argument("--unlabeled", help="data spec of unlabeled images (fpd)")
    t.add_argument("--init", help="start from this checkpoint's weights (e.g. synthetic pretraining)")
    t.add_argument("--nan-policy", choices=["raise", "skip"], help="non-finite loss: stop (default) or skip the step")
    t.add_argument("--max-iters", type=int, help="cap iterations per epoch (quick runs)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--skip-invalid", action="store_true", default=None, help="skip malformed records (reported)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    def add_predictor_args(q):
        q.add_argument("--checkpoint", required=True, help="posekit checkpoint (.pt) or exported model (.onnx)")
        q.add_argument("--backend", default="torch", choices=["torch", "onnx"])
        q.add_argument("--no-flip", action="store_true", help="disable flip test")
        q.add_argument("--decode", choices=["dark", "argmax"], help="override the checkpoint's heatmap decoding")
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--scai", metavar="CKPT", help="SCAI checkpoint: correct the distal joints "
                                                      "(posekit.methods.scai; train with posekit adapt --method scai)")
        q.add_argument("--tta", choices=["scai"], help="test-time training: 'scai' adapts SCAI's correction net "
                                                       "on the test images (needs --scai)")
        q.add_argument("--tta-steps", type=int, help="test-time training steps per batch (default: the SCAI "
                                                     "checkpoint's)")
        q.add_argument("--tta-lr", type=float, help="test-time training learning rate (default: the SCAI checkpoint's)")

    e = sub.add_parser("eval", help="evaluate a checkpoint (PCK, PCKh, AUC; OKS AP on COCO data)")
    add_predictor_args(e)
    e.add_argument("--data", required=True, help="data spec")
    e.add_argument("--out", help="write the metrics json here")
    e.set_defaults(func=cmd_eval)

    q = sub.add_parser("predict", help="predict keypoints: a dataset, a folder of images, or a video")
    add_predictor_args(q)
    q.add_argument("source", nargs="?", help="folder of images or a video file (instead of --data)")
    q.add_argument("--data", help="data spec (boxes from the annotations; LSP: from the joints)")
    q.add_argument("--boxes", help="COCO detection-results json with person boxes for a folder")
    q.add_argument("--score-threshold", type=float, default=0.0, help="minimum detection score")
    q.add_argument("--out", required=True, help="predictions json (list, one entry per person box)")
    q.add_argument("--draw", help="folder (images) or .mp4 path (video) for drawn skeletons")
    q.add_argument("--smooth", default="none", choices=["none", "ema", "one-euro"], help="video keypoint smoothing")
    q.add_argument("--smooth-params", default="{}", help='JSON, e.g. \'{"alpha": 0.5}\' or \'{"min_cutoff": 1.0, "beta": 0.01}\'')
    q.add_argument("--box-passes", type=int, default=1,
                   help="video: network passes per frame, each from the box of the last pass's keypoints (2 cuts "
                        "the lag of the box that follows the previous frame; costs one more pass)")
    q.set_defaults(func=cmd_predict)

    d = sub.add_parser("demo", help="the main job: synthesise data, train the compact model, evaluate, report")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--num-train", type=int, default=3200)
    d.add_argument("--num-val", type=int, default=300)
    d.add_argument("--epochs", type=int, default=14)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="parameters and FLOPs of registered models")
    i.add_argument("model", nargs="?", default="all")
    i.add_argument("--input-size", type=size_arg, default=(128, 128))
    i.add_argument("--num-keypoints", type=int, default=14)
    i.set_defaults(func=cmd_info)

    z = sub.add_parser("zoo", help="list the model zoo, or publish a checkpoint into it (--publish)")
    z.add_argument("--zoo-dir", default="zoo")
    z.add_argument("--publish", metavar="CHECKPOINT", help="checkpoint to slim, measure and add to the index")
    z.add_argument("--name", help="zoo name (file NAME.pt, card NAME.md)")
    z.add_argument("--val", help="data spec the card's metrics are measured on")
    z.add_argument("--role", default="compact", help="compact | teacher | student-baseline | ...")
    z.add_argument("--method", default="supervised", help="supervised | fpd | okdhp | advmix | sfda | ...")
    z.add_argument("--dataset", default="lspet", help="training data, for the index")
    z.add_argument("--command-line", default="", help="the command that trained it (for the card)")
    z.add_argument("--budget", default="", help="training budget in words (epochs, images, minutes)")
    z.add_argument("--run-dir", help="run folder whose log.jsonl gives the training wall time")
    z.add_argument("--notes", default="")
    z.set_defaults(func=cmd_zoo)

    x = sub.add_parser("export", help="export a checkpoint to ONNX")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--opset", type=int, default=17)
    x.set_defaults(func=cmd_export)

    r = sub.add_parser("robustness", help="corruption robustness: clean + 15 corruptions x 5 severities, mPC/rPC")
    r.add_argument("--checkpoint", help="posekit checkpoint (.pt) or exported model (.onnx)")
    r.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    r.add_argument("--no-flip", action="store_true", help="disable flip test")
    r.add_argument("--decode", choices=["dark", "argmax"], help="override the checkpoint's heatmap decoding")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--data", required=True, help="data spec, e.g. lsp:../shared/datasets/lspet@val or coco:ANN.json")
    r.add_argument("--corruptions", default="all", help="'all' or comma-separated names (posekit.data.corruptions)")
    r.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, from 1-5")
    r.add_argument("--metric", help="metric to summarise (default: OKS AP on COCO data, else pck@0.2_torso)")
    r.add_argument("--out", help="output folder (robustness.json/.md/.png); default runs/robustness/<checkpoint>")
    r.add_argument("--materialize", metavar="DIR", help="write the corrupted data set here instead of evaluating")
    r.add_argument("--limit", type=int, help="only the first N images")
    r.add_argument("--seed", type=int, default=0, help="base of the per-image corruption seeds")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_robustness)

    a = sub.add_parser("adapt", help="source-free adaptation of a trained model to unlabelled target data (sfda, scai)")
    a.add_argument("--method", default="sfda", choices=["sfda", "adabn", "scai"],
                   help="adaptation method (default sfda; adabn: re-estimate BatchNorm statistics only)")
    a.add_argument("--source", required=True, help="source model checkpoint (trained on labelled source data)")
    a.add_argument("--target", required=True, help="target data spec FORMAT:PATH[@SPLIT]; its labels are withheld")
    a.add_argument("--out", required=True, help="run folder (model.pt = the adapted inference model, last.pt)")
    a.add_argument("--val", help="labelled target validation spec (monitoring and best.pt only)")
    a.add_argument("--epochs", type=int, help="epochs over the target data (sfda default 5)")
    a.add_argument("--batch-size", type=int, help="sfda default 32")
    a.add_argument("--lr", type=float, help="learning rate of the target model (sfda default 1e-4)")
    a.add_argument("--seed", type=int, help="default 0")
    a.add_argument("--alpha", type=float, help="sfda: weight of the residual loss (0.7)")
    a.add_argument("--beta", type=float, help="sfda: weight of the consistency loss (0.5)")
    a.add_argument("--gamma", type=float, help="sfda: weight of information maximisation (0.85)")
    a.add_argument("--ema", type=float, help="sfda: EMA momentum of the intermediate (inference) model (0.999)")
    a.add_argument("--tau", type=float, help="sfda: temperature of the residual softmax (1.0)")
    a.add_argument("--method-kwargs", help='sfda: JSON of further options, e.g. \'{"regressor": "head"}\'')
    a.add_argument("--scai-kwargs", help="scai: JSON of its options (see posekit.methods.scai)")
    a.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    a.add_argument("--max-iters", type=int, help="cap iterations per epoch (quick runs)")
    a.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_adapt)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from posekit.data.sample import DataError
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, PermissionError, ValueError) as err:
        print(f"posekit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
