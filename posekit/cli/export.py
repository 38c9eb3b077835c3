"""`posekit export`: a checkpoint as ONNX."""
from __future__ import annotations


def add_parser(sub) -> None:
    x = sub.add_parser("export", help="export a checkpoint to ONNX (needs pip install 'posekit[onnx]')")
    x.add_argument("--checkpoint", required=True, help="posekit checkpoint (.pt) to export")
    x.add_argument("--out", required=True, help="the .onnx file to write (the model config travels inside it)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    x.set_defaults(func=run)


def run(args) -> int:
    from posekit.inference.export import export_onnx
    print(f"wrote {export_onnx(args.checkpoint, args.out, opset=args.opset)}")
    return 0
