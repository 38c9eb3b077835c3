"""`posekit demo`: the main job -- synthesise data, train the compact model, evaluate, report."""
from __future__ import annotations

import sys
from pathlib import Path

from posekit.strict_json import dumps_strict


def add_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job: synthesise data, train the compact model, evaluate, report")
    d.add_argument("--out", default="runs/demo", help="report folder (also holds the generated data and the run)")
    d.add_argument("--num-train", type=int, default=3200, help="synthetic training people to generate")
    d.add_argument("--num-val", type=int, default=300, help="synthetic validation people to generate")
    d.add_argument("--epochs", type=int, default=14, help="training epochs")
    d.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the training order")
    d.add_argument("--workers", type=int, default=2, help="processes for data generation and loading")
    d.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")
    d.add_argument("--overwrite", action="store_true", help="replace a previous demo in OUT")
    d.set_defaults(func=run)


def run(args) -> int:
    from posekit.demo import REPORT_FILES, run_demo
    report = run_demo(args.out, num_train=args.num_train, num_val=args.num_val, epochs=args.epochs, seed=args.seed,
                      workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite)
    print(dumps_strict(report, indent=2))
    # stdout stays the JSON report; where to look goes to stderr, last, where a user sees it
    print(f"posekit demo: wrote the report to {Path(args.out) / REPORT_FILES[0]} (with "
          f"{', '.join(REPORT_FILES[1:])} in {args.out})", file=sys.stderr)
    return 0
