"""MoveNet side by side with posekit on LSPET val: the original graphs, their imports, the fine-tuned models
and the zoo, in one run.

Protocol (posekit's top-down evaluation): every model is handed the box of the annotated joints, grown by
1.25 to a square crop; scores over the 12 joints that COCO-17 and LSP-14 share (shoulders, elbows, wrists,
hips, knees, ankles), visible ground truth only: PCK@0.2 (torso), PCK@0.05 (box), AUC (PCK 0...0.2).

Rows:

* ``graph_lightning`` / ``graph_thunder`` -- the released ONNX graphs (their own pre- and post-processing) on
  posekit's crop, keypoints mapped back through the crop's inverse matrix;
* ``import_lightning`` / ``import_thunder`` -- the same weights imported into posekit
  (``python -m posekit.models.movenet_import``), decoded by ``MoveNetCodec`` (the graphs' decoding), no flip
  test: must equal the graph rows within 0.5 point; ``..._flip`` adds the flip test;
* any ``--checkpoint`` (zoo models, the fine-tuned MoveNets): flip test, the checkpoint's own decoding.

Latency: median ms of one crop through ONNX Runtime (``--threads`` intra-op threads): the released graph
for the graph rows, posekit's ONNX export for the others (network only; the crop and decode are not timed).

    python benchmarks/peer_movenet.py --checkpoint zoo/lspet_compact_pretrained.pt [--limit 100]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import (ROOT, Progress, command, environment, export_latency, onnx_latency, resolve_spec, table,
                    write_results)
from posekit.data.formats import load_samples
from posekit.data.io import read_image
from posekit.data.transforms import affine_points, box_to_center_scale, crop_matrix, invert_affine, warp_image
from posekit.engine.evaluate import evaluate_samples
from posekit.skeletons import COCO, LSP, shared_skeleton

SHARED = shared_skeleton(COCO, LSP)[0].keypoints  # the 12 joints, LSP order
GRAPHS = {"lightning": "movenet-lightning.onnx", "thunder": "movenet-thunder.onnx"}


class GraphPredictor:
    """A released MoveNet graph as a posekit predictor (``predict_samples``): crop, run, map back."""

    config = {"skeleton": "coco"}
    num_keypoints = 17

    def __init__(self, onnx_path: Path, threads: int):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.side = int(self.session.get_inputs()[0].shape[1])

    def crop(self, image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
        matrix = crop_matrix(*box_to_center_scale(np.asarray(box), 1.0), (self.side, self.side))
        return warp_image(image, matrix, (self.side, self.side)), matrix

    def run(self, crop: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input:0": crop[None].astype(np.int32)})[0][0, 0]   # (17, 3) y, x, score

    def predict_samples(self, samples, on_error=None):
        for sample in samples:
            try:
                crop, matrix = self.crop(read_image(sample.image_path), sample.box)
            except (OSError, ValueError) as err:
                if on_error is None:
                    raise
                on_error(sample, err)
                continue
            out = self.run(crop)
            # MoveNet's pixel i spans [i, i + 1); posekit's crop frame puts pixel centres at integers
            xy = np.stack([out[:, 1] * self.side - 0.5, out[:, 0] * self.side - 0.5], axis=-1)
            yield sample, np.concatenate([affine_points(xy, invert_affine(matrix)), out[:, 2:]], axis=1)


def posekit_predictor(checkpoint: Path, flip_test: bool):
    from posekit.inference.predictor import Predictor
    return Predictor.load(str(checkpoint), flip_test=flip_test)


def scores(metrics: dict) -> dict:
    """The headline numbers of an evaluate_samples result scored on the 12 shared joints."""
    return {key: metrics[key] for key in ("pck@0.2_torso", "pck@0.05_box", "auc_torso")} | {
        "n_people": metrics["n_evaluated"]}


def markdown(results: dict) -> str:
    lines = table(["model", "what", "PCK@0.2 torso", "PCK@0.05 box", "AUC", "ms / crop"],
                  ([name, row["what"], f"{row['pck@0.2_torso']:.3f}", f"{row['pck@0.05_box']:.3f}",
                    f"{row['auc_torso']:.3f}", f"{row['ms']:.1f}"] for name, row in results["rows"].items()),
                  align=["---", "---", "---:", "---:", "---:", "---:"])
    return "\n".join([f"LSPET val ({results['budget']['people']} people), boxes from the annotated joints (1.25), "
                      f"the 12 joints COCO and LSP share; ONNX Runtime at {results['budget']['threads']} threads.",
                      "", *lines, "", f"Command: `{results['command']}`", ""])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--models", type=Path, default=ROOT / ".." / "shared" / "models", help="the MoveNet ONNX files")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], help="posekit checkpoints to add")
    p.add_argument("--limit", type=int, help="first N people only (smoke runs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50, help="latency repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peer_movenet.json")
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    from posekit.checkpoint import save_checkpoint
    from posekit.models.movenet_import import movenet_checkpoint

    samples = load_samples(resolve_spec(args.data))[:args.limit]
    joints = list(SHARED)
    results = {"budget": {"data": args.data, "people": len(samples), "threads": args.threads},
               "command": command("benchmarks/peer_movenet.py"), "environment": environment("onnxruntime", "cpu"),
               "rows": {}}
    progress = Progress("peer_movenet", 3 * len(GRAPHS) + len(args.checkpoint), every=1, unit="rows")
    with tempfile.TemporaryDirectory() as tmp:
        for variant, file in GRAPHS.items():
            graph = GraphPredictor(args.models / file, args.threads)
            crop = np.zeros((1, graph.side, graph.side, 3), np.int32)
            results["rows"][f"graph_{variant}"] = {
                "what": f"released MoveNet {variant} graph", **scores(evaluate_samples(graph, samples)),
                "ms": onnx_latency(graph.session, {"input:0": crop}, args.threads, args.repeats)}
            progress.step(len(results["rows"]), f"graph_{variant}")
            imported = Path(tmp) / f"{variant}.pt"
            save_checkpoint(imported, movenet_checkpoint(args.models / file))
            ms = export_latency(imported, args.threads, args.repeats)
            for flip in (False, True):
                name = f"import_{variant}" + ("_flip" if flip else "")
                metrics = evaluate_samples(posekit_predictor(imported, flip), samples)
                results["rows"][name] = {"what": "imported into posekit, MoveNetCodec" + (", flip test" if flip else ""),
                                         **scores(metrics), "ms": ms}
                progress.step(len(results["rows"]), name)
        for checkpoint in args.checkpoint:
            predictor = posekit_predictor(checkpoint, True)
            # an LSP model is scored on the same 12 joints (a COCO one gets them as its shared joints)
            metrics = evaluate_samples(predictor, samples, joints=joints if predictor.num_keypoints == 14 else None)
            results["rows"][checkpoint.stem] = {"what": f"{checkpoint}, flip test", **scores(metrics),
                                                "ms": export_latency(checkpoint, args.threads, args.repeats)}
            progress.step(len(results["rows"]), checkpoint.stem)
    write_results(results, args.out, "# MoveNet and posekit on LSPET val\n\n" + markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
