"""`posekit zoo`: list the model zoo, or publish a checkpoint into it."""
from __future__ import annotations

from posekit.strict_json import dumps_strict


def add_parser(sub) -> None:
    z = sub.add_parser("zoo", help="list the model zoo, or publish a checkpoint into it (--publish)")
    z.add_argument("--zoo-dir", default="zoo", help="the zoo folder (index.json, NAME.pt, NAME.md); default zoo")
    z.add_argument("--publish", metavar="CHECKPOINT", help="checkpoint to slim, measure and add to the index")
    z.add_argument("--name", help="zoo name (file NAME.pt, card NAME.md)")
    z.add_argument("--val", help="data spec the card's metrics are measured on")
    z.add_argument("--role", default="compact", help="compact | teacher | student-baseline | ...")
    z.add_argument("--method", default="supervised", help="supervised | fpd | okdhp | netaug | advmix | sfda | ...")
    z.add_argument("--dataset", default="lspet", help="training data, for the index")
    z.add_argument("--command-line", default="", help="the command that trained it (for the card)")
    z.add_argument("--budget", default="", help="training budget in words (epochs, images, minutes)")
    z.add_argument("--run-dir", help="run folder whose log.jsonl gives the training wall time")
    z.add_argument("--notes", default="", help="free text for the card's Notes section (licence, provenance)")
    z.add_argument("--recommend", metavar="NAME", help="mark NAME as the recommended model (unmarks the others)")
    z.set_defaults(func=run)


def run(args) -> int:
    from posekit.zoo import publish, read_index, recommend, recommended_entry, zoo_table
    if args.publish:
        if not (args.name and args.val):
            raise SystemExit("posekit zoo --publish: --name and --val are required")
        entry = publish(args.publish, args.name, val=args.val, role=args.role, method=args.method, dataset=args.dataset,
                        command=args.command_line, budget=args.budget, run_dir=args.run_dir, zoo_dir=args.zoo_dir,
                        notes=args.notes)
        print(dumps_strict(entry["metrics"], indent=2))
    if args.recommend:
        recommend(args.recommend, args.zoo_dir)
    entries = read_index(args.zoo_dir)
    print(zoo_table(entries))
    best = recommended_entry(entries)
    if best is not None:
        print(f"\nrecommended: {best['name']} ({best['file']}): posekit predict --checkpoint {best['file']} ...")
    return 0
