"""`posekit synth`: synthetic people as a COCO-format dataset."""
from __future__ import annotations

from posekit.cli.common import size_arg


def add_parser(sub) -> None:
    s = sub.add_parser("synth", help="generate synthetic people as a COCO-format dataset")
    s.add_argument("--out", required=True, help="output folder (images/ + annotations.json)")
    s.add_argument("--num", type=int, default=1000, help="number of images")
    s.add_argument("--style", default="flat", help="visual style: flat | textured | mixed")
    s.add_argument("--skeleton", default="lsp", choices=["lsp", "coco"], help="keypoint set written")
    s.add_argument("--seed", type=int, default=0, help="seed of the generated people (default 0)")
    s.add_argument("--size", type=size_arg, default=(192, 192), help="image size, e.g. 192 or 256x192")
    s.add_argument("--workers", type=int, default=1, help="generating processes (same images for any number)")
    s.set_defaults(func=run)


def run(args) -> int:
    from posekit.data.synth import generate_dataset
    ann = generate_dataset(args.out, args.num, style=args.style, skeleton=args.skeleton, seed=args.seed,
                           size=args.size, workers=args.workers, progress=True)
    print(f"wrote {args.num} images and {ann}")
    print(f"use it as:  --data coco:{ann}")
    return 0
