"""`posekit adapt`: a trained model adapted to unlabelled target data.

* ``sfda`` runs through the ordinary trainer (:func:`posekit.methods.sfda.adapt_config`); its flags are its
  :class:`~posekit.methods.base.MethodOption` declarations, its defaults its own;
* ``adabn`` re-estimates the BatchNorm statistics only (:mod:`posekit.methods.adabn`);
* ``scai`` trains SCAI's networks and adapts its correction net (:func:`posekit.methods.scai.adapt`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from posekit.cli.common import add_method_options, json_object, method_kwargs_from_args
from posekit.strict_json import dumps_strict

METHOD_CHOICES = ("sfda", "adabn", "scai")
#: spellings of earlier versions -> the error saying what replaced them
RENAMED = {"alpha": "--alpha is now --residual-weight (SFDA's weight of L_res); --alpha is the distillation "
                    "weight of fpd / advmix in posekit train"}


def add_parser(sub) -> None:
    from posekit.methods.sfda import ADAPT_DEFAULTS, SFDA

    def defaults(key: str) -> str:  # scai's are its own (posekit.methods.scai.ADAPT_DEFAULTS), imported on use only
        return f"sfda default {ADAPT_DEFAULTS[key]}; scai: its own"

    a = sub.add_parser("adapt", help="source-free adaptation of a trained model to unlabelled target data "
                                     "(sfda, adabn, scai)")
    a.add_argument("--method", default="sfda", choices=METHOD_CHOICES,
                   help="adaptation method (default sfda; adabn: re-estimate BatchNorm statistics only)")
    a.add_argument("--source", required=True, help="source model checkpoint (trained on labelled source data)")
    a.add_argument("--target", required=True, help="target data spec FORMAT:PATH[@SPLIT]; its labels are withheld")
    a.add_argument("--out", required=True, help="run folder (model.pt = the adapted inference model, last.pt)")
    a.add_argument("--val", help="labelled target validation spec (monitoring and best.pt only)")
    a.add_argument("--source-images", help="adabn for folded BatchNorm (MoveNet): a data spec of the source's "
                                           "domain (e.g. COCO photos) whose conv-output moments the target's are "
                                           "aligned to")
    a.add_argument("--epochs", type=int, help=f"epochs over the target data ({defaults('epochs')})")
    a.add_argument("--batch-size", type=int, help=f"batch size ({defaults('batch_size')}; adabn 32)")
    a.add_argument("--lr", type=float, help=f"learning rate of the target model ({defaults('lr')})")
    a.add_argument("--seed", type=int, help=f"seed ({defaults('seed')})")
    add_method_options(a, [SFDA])
    for old in RENAMED:
        a.add_argument(f"--{old}", dest=f"renamed_{old}", help=argparse.SUPPRESS)
    a.add_argument("--method-kwargs", help='sfda: JSON of further options, e.g. \'{"regressor": "head"}\'')
    a.add_argument("--scai-kwargs", help="scai: JSON of its options (posekit.methods.scai.adapt)")
    a.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    a.add_argument("--max-iters", type=int, help="cap iterations per epoch (quick runs)")
    a.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    a.add_argument("--overwrite", action="store_true",
                   help="sfda: replace a previous run in OUT; without it or --resume a used folder is refused")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=run)


def run(args) -> int:
    for old, why in RENAMED.items():
        if getattr(args, f"renamed_{old}") is not None:
            raise ValueError(why)
    if args.method == "scai":
        return run_scai(args)
    if args.method == "adabn":
        from posekit.methods.adabn import adapt_batchnorm_checkpoint, adapt_folded_checkpoint
        out = Path(args.out) / "model.pt"
        if args.source_images:  # folded BatchNorm (MoveNet): align the conv outputs' moments
            result = adapt_folded_checkpoint(args.source, args.target, args.source_images, out,
                                             batch_size=args.batch_size or 32, workers=args.workers,
                                             seed=args.seed or 0)
        else:
            result = adapt_batchnorm_checkpoint(args.source, args.target, out, batch_size=args.batch_size or 32,
                                                workers=args.workers)
        print(dumps_strict(result, indent=2))
        return 0
    return run_sfda(args)


def run_sfda(args) -> int:
    from posekit.methods import build_trainer
    from posekit.methods.sfda import SFDA, adapt_config
    if args.scai_kwargs:
        raise SystemExit("posekit adapt: --scai-kwargs is for --method scai")
    cfg = adapt_config(args.source, args.target, args.out, val=args.val, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=args.workers,
                       max_iters_per_epoch=args.max_iters, progress=not args.no_progress,
                       method_kwargs=json_object(args.method_kwargs, "--method-kwargs"),
                       **method_kwargs_from_args(args, SFDA, [SFDA]))
    result = build_trainer(cfg, resume=args.resume, overwrite=args.overwrite).fit()
    print(dumps_strict(result, indent=2))
    return 0


def run_scai(args) -> int:
    import importlib
    try:
        scai = importlib.import_module("posekit.methods.scai")
    except ImportError as err:
        raise SystemExit(f"posekit adapt --method scai: the SCAI method (posekit.methods.scai) is not "
                         f"available: {err}") from None
    options = json_object(args.scai_kwargs, "--scai-kwargs")
    for key in ("workers", "max_iters"):  # the adapt command's own flags, unless --scai-kwargs sets them
        if getattr(args, key, None) is not None:
            options.setdefault(key, getattr(args, key))
    report = scai.adapt(args.source, args.target, args.out, val=args.val, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, **options)
    if "results" in report:
        print(scai.format_results(report["results"]))
    print(f"wrote {Path(args.out) / 'scai_eval.json'}")
    return 0
