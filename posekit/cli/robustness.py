"""`posekit robustness`: clean + corruption x severity evaluation (mPC, rPC), or the corrupted data set itself."""
from __future__ import annotations

from pathlib import Path

from posekit.cli.common import add_predictor_args, load_predictor


def add_parser(sub) -> None:
    r = sub.add_parser("robustness", help="corruption robustness: clean + 15 corruptions x 5 severities, mPC/rPC")
    add_predictor_args(r, checkpoint_required=False, scai=False)
    r.add_argument("--data", required=True, help="data spec, e.g. lsp:../shared/datasets/lspet@val or coco:ANN.json")
    r.add_argument("--corruptions", default="all", help="'all' or comma-separated names (posekit.data.corruptions)")
    r.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, from 1-5")
    r.add_argument("--metric", help="metric to summarise (default: OKS AP on COCO data, else pck@0.2_torso)")
    r.add_argument("--out", help="output folder (robustness.json/.md/.png); default runs/robustness/<checkpoint>")
    r.add_argument("--materialize", metavar="DIR", help="write the corrupted data set here instead of evaluating")
    r.add_argument("--limit", type=int, help="only the first N images")
    r.add_argument("--seed", type=int, default=0, help="base of the per-image corruption seeds")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=run)


def run(args) -> int:
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
