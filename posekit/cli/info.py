"""`posekit info`: parameters and FLOPs of registered models."""
from __future__ import annotations

from posekit.cli.common import size_arg


def add_parser(sub) -> None:
    i = sub.add_parser("info", help="parameters and FLOPs of registered models")
    i.add_argument("model", nargs="?", default="all", help="a registered model name, or 'all' (default)")
    i.add_argument("--input-size", type=size_arg, default=(128, 128),
                   help="input WxH the FLOPs are counted at, e.g. 128 or 96x128 (default 128)")
    i.add_argument("--num-keypoints", type=int, default=14, help="keypoints of the output layer (default 14, LSP)")
    i.set_defaults(func=run)


def run(args) -> int:
    from posekit.models import list_models
    from posekit.models.flops import model_info
    names = list_models() if args.model in (None, "all") else [args.model]
    print(f"| model | params (M) | GFLOPs @ {args.input_size[0]}x{args.input_size[1]} |\n|---|---|---|")
    for name in names:
        info = model_info(name, input_size=args.input_size, num_keypoints=args.num_keypoints)
        print(f"| {name} | {info['params'] / 1e6:.2f} | {info['flops'] / 1e9:.3f} |")
    return 0
