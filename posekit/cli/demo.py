"""`posekit demo`: the main job -- synthesise data, train the compact model, evaluate, report."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job: synthesise data, train the compact model, evaluate, report")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--num-train", type=int, default=3200)
    d.add_argument("--num-val", type=int, default=300)
    d.add_argument("--epochs", type=int, default=14)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(func=run)


def run(args) -> int:
    from posekit.demo import run_demo
    report = run_demo(args.out, num_train=args.num_train, num_val=args.num_val, epochs=args.epochs, seed=args.seed,
                      workers=args.workers)
    print(json.dumps(report, indent=2))
    return 0
