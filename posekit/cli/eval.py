"""`posekit eval`: a checkpoint's PCK family (and OKS AP on COCO data)."""
from __future__ import annotations

from pathlib import Path

from posekit.cli.common import add_predictor_args, load_predictor
from posekit.strict_json import dumps_strict


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a checkpoint (PCK, PCKh, AUC; OKS AP on COCO data)")
    add_predictor_args(e)
    e.add_argument("--data", required=True, help="data spec")
    e.add_argument("--out", help="write the metrics json here")
    e.set_defaults(func=run)


def run(args) -> int:
    from posekit.engine.evaluate import evaluate
    from posekit.metrics import format_table
    from posekit.skeletons import SKELETONS
    predictor = load_predictor(args)
    metrics = evaluate(predictor, args.data)
    summary = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    print(dumps_strict(summary, indent=2))
    skeleton = SKELETONS.get(predictor.config.get("skeleton"))
    if skeleton is not None and "per_joint" in metrics:
        print(format_table(metrics, skeleton))
    if args.out:
        Path(args.out).write_text(dumps_strict(metrics, indent=2) + "\n")
    return 0
