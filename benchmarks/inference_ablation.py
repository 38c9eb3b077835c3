"""What the inference-time ingredients buy: flip test and DARK decoding, on one trained checkpoint.

Evaluates the same weights six ways on a val spec (argmax with the quarter-pixel offset, DARK with
DarkPose's 11-px blur, DARK with a 5-px blur; each with and without flip test) and writes ``benchmarks/results/inference_ablation.json`` and ``.md``:

    python benchmarks/inference_ablation.py --checkpoint zoo/lspet_compact.pt \\
        [--data lsp:../shared/datasets/lspet@val] [--out benchmarks/results/inference_ablation]

Deterministic (no randomness at inference); one run takes about a minute on 2 cores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import decoder_options, table, write_results
from posekit.data.formats import load_samples
from posekit.engine.evaluate import evaluate_samples
from posekit.inference.predictor import Predictor
from posekit.zoo import LSP_SHARED_WITH_BLAZEPOSE

#: (decoder, flip test); "dark:K" = DARK with a K-pixel Gaussian blur (the codec's default is 11)
VARIANTS = [("argmax", False), ("argmax", True), ("dark", False), ("dark", True), ("dark:5", False), ("dark:5", True)]
COLUMNS = ["pck@0.2_torso", "pck@0.2_torso_12", "pck@0.05_box", "auc_torso"]


def evaluate_variant(checkpoint, samples, decode: str, flip: bool) -> dict:
    predictor = Predictor.load(checkpoint, flip_test=flip, **decoder_options(decode))
    metrics = evaluate_samples(predictor, samples)
    if samples[0].skeleton == "lsp":
        metrics["pck@0.2_torso_12"] = evaluate_samples(predictor, samples,
                                                       joints=LSP_SHARED_WITH_BLAZEPOSE)["pck@0.2_torso"]
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}


def markdown(rows: list[dict], checkpoint: str, data: str) -> str:
    cells = [[r["decode"].replace("dark:", "DARK, blur ") if ":" in r["decode"] else r["decode"],
              "yes" if r["flip"] else "no", *(f"{r['metrics'][c]:.4f}" if c in r["metrics"] else "-" for c in COLUMNS)]
             for r in rows]
    lines = [f"# Inference ingredients on `{checkpoint}` ({data})", "",
             *table(["decoding", "flip test", *COLUMNS], cells)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--out", default="benchmarks/results/inference_ablation")
    args = p.parse_args(argv)
    samples = load_samples(args.data)
    rows = [{"decode": d, "flip": f, "metrics": evaluate_variant(args.checkpoint, samples, d, f)} for d, f in VARIANTS]
    text = markdown(rows, args.checkpoint, args.data)
    write_results({"checkpoint": args.checkpoint, "data": args.data, "rows": rows},
                  Path(args.out).with_suffix(".json"), text, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
