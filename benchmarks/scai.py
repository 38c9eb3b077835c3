"""SCAI on LSPET: a trained pose model without correction, with SCAI's correction, and with SCAI's test-time
training, on clean and corrupted LSPET val, for one or both designs of SCAI's networks.

Run from the repository root:

    PYTHONPATH=. python benchmarks/scai.py --checkpoint zoo/lspet_compact.pt --epochs 3 --limit 400
    PYTHONPATH=. python benchmarks/scai.py --checkpoint zoo/lspet_movenet_lightning.pt --threads 1 --workers 0 \
        --seed 0 --results benchmarks/results/scai_movenet.json --designs coords,heatmap --coords-epochs 1 \
        --max-iters 40 --epochs 1 --heatmap-max-iters 10 --limit 200

1. SCAI's three networks (:mod:`posekit.methods.scai`) are trained on ``--train`` (LSPET train: the pose
   model's own training data) with the pose model frozen, once per design of ``--designs``: ``heatmap``
   (encoder-decoders on the chain's heatmaps, ``--epochs`` epochs) and ``coords`` (MLPs on the chain's joint
   coordinates and confidences, ``--coords-epochs``); batch ``--batch-size``, AdamW ``--lr``, seed ``--seed``,
   any further :func:`~posekit.methods.scai.train_scai` option in ``--scai-kwargs``.
2. Every row is evaluated on ``--val`` (LSPET val) clean and under each of ``--corruptions`` at
   ``--severity`` (ImageNet-C, :func:`posekit.data.corruptions.corrupt` on the full image before the crop,
   per-image seeds as in ``posekit robustness``):

   * ``none``    the pose model alone (flip test);
   * ``correct`` SCAI's correction network moves the six distal joints (row ``coords:correct`` for the
     coordinate design);
   * ``tta``     the correction network also trains on every test batch (``--tta-steps`` Adam steps at
     ``--tta-lr``, online within a condition, restarted from the trained weights for every condition).

Reported: PCK@0.2 (torso) and PCK@0.05 (box) over all joints and over the six corrected (distal) joints, and
the referee's fitness error of the uncorrected distal joints against their true error (Pearson and Spearman
over every labelled (person, chain), both in heatmap pixels; the true error is measured in the crop's frame).

The designs are trained and evaluated one after the other (the first design's rows are complete before the
second one trains). The pose network's outputs and the (corrupted) images of every condition are computed once
and reused by every row (the pose network and the corruptions are deterministic), so a condition's first cell
carries the network's cost and the others only SCAI's. Resumable: SCAI training resumes from its last epoch (and is
skipped when finished with the same settings); every (condition, row) cell is saved as soon as it is measured
and skipped on a rerun with the same settings. Writes ``--results`` (json + .md); runs go to ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from common import ROOT, environment, run_once, save_study, table
from posekit.data.io import read_image
from posekit.engine import robustness as rb
from posekit.methods import scai

RESULTS = ROOT / "benchmarks" / "results" / "scai.json"
CORRUPTIONS = "gaussian_noise,motion_blur,fog,contrast,jpeg_compression"
METRICS = ("pck@0.2_torso", "pck@0.05_box", "distal_pck@0.2_torso", "distal_pck@0.05_box", "auc_torso")
#: the heading of the .md (the json holds the table under "markdown")
TITLE = "SCAI on LSPET (clean and corrupted)"
LABELS = {"none": "none (the pose model alone)", "correct": "heatmap nets: correction",
          "tta": "heatmap nets: correction + TTA", "coords:correct": "coordinate nets: correction",
          "coords:tta": "coordinate nets: correction + TTA"}

log = logging.getLogger("scai_benchmark")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="pose model (heatmap head), e.g. zoo/lspet_compact.pt")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train", help="labeled data for SCAI's nets")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--designs", default="heatmap", help="comma-separated SCAI designs: heatmap, coords")
    p.add_argument("--epochs", type=int, default=10, help="SCAI training epochs (the heatmap design)")
    p.add_argument("--coords-epochs", type=int, help="training epochs of the coordinate design (default --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=1, help="data-loading workers of SCAI training")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--max-iters", type=int, help="cap SCAI iterations per epoch, every design")
    p.add_argument("--heatmap-max-iters", type=int, help="cap the heatmap design's iterations per epoch "
                   "(default --max-iters)")
    p.add_argument("--scai-kwargs", default="{}", help='JSON train_scai options, e.g. \'{"width": 32}\'')
    p.add_argument("--corruptions", default=CORRUPTIONS, help="comma-separated names (posekit.data.corruptions)")
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--modes", default=",".join(scai.MODES), help="comma-separated subset of none,correct,tta")
    p.add_argument("--tta-steps", type=int, default=1)
    p.add_argument("--tta-lr", type=float, default=1e-4)
    p.add_argument("--limit", type=int, help="evaluate on the first N val images only")
    p.add_argument("--seed", type=int, default=0, help="SCAI training seed and corruption seed")
    p.add_argument("--runs", default=str(ROOT / "runs" / "scai_bench"), help="SCAI training folders")
    p.add_argument("--results", default=str(RESULTS), help="results json (the markdown goes next to it)")
    return p.parse_args(argv)


def conditions(args) -> list[tuple[str, str | None]]:
    names = [c.strip() for c in args.corruptions.split(",") if c.strip()]
    rb.parse_corruptions(names)  # validates
    rb.parse_severities([args.severity])
    return [("clean", None)] + [(f"{c}@{args.severity}", c) for c in names]


def row_name(design: str, mode: str) -> str:
    """Cell row of a (design, mode): the heatmap design's rows are the bare modes (as in the first results)."""
    return mode if mode == "none" or design == "heatmap" else f"{design}:{mode}"


def train(args, pose_fp: str, design: str) -> tuple[Path, float]:
    """SCAI's nets of one design on top of the pose model, trained once (:func:`common.run_once`, keyed by every
    training option; :func:`~posekit.methods.scai.train_scai` itself resumes an interrupted run). Returns the
    checkpoint and the training wall seconds (summed over the epochs' log)."""
    kwargs = json.loads(args.scai_kwargs)
    epochs = args.epochs if design == "heatmap" or args.coords_epochs is None else args.coords_epochs
    max_iters = args.heatmap_max_iters if design == "heatmap" and args.heatmap_max_iters else args.max_iters
    run = Path(args.runs) / f"{Path(args.checkpoint).stem}_{pose_fp[:8]}_e{epochs}" \
        f"{'' if max_iters is None else f'_it{max_iters}'}_seed{args.seed}" \
        f"{'' if design == 'heatmap' else '_' + design}"
    options = dict(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=args.workers,
                   max_iters=max_iters, tta_steps=args.tta_steps, tta_lr=args.tta_lr, **kwargs)
    if design != "heatmap":
        options["design"] = design
    record = run_once(run, lambda: {"checkpoint": scai.train_scai(args.checkpoint, args.train, run, progress=True,
                                                                  **options)},
                      key={"pose_weights": pose_fp, "train": args.train, **options})
    _, cfg = scai.load_scai(record["checkpoint"])
    seconds = round(sum(h.get("seconds", 0.0) for h in cfg.get("history", [])), 1)
    log.info("SCAI %s nets: %s (%.0f s of training)", design, record["checkpoint"], seconds)
    return Path(record["checkpoint"]), seconds


# -- one condition's shared work -------------------------------------------------------------------
class CachedImages:
    """Duck-typed predictor for ``evaluate_samples``: the wrapped one's ``predict_samples`` with each image read
    (and corrupted, with ``corrupted``) once per condition."""

    def __init__(self, predictor, read, cache: dict):
        self.predictor, self._read, self.cache = predictor, read, cache

    @property
    def num_keypoints(self) -> int:
        return self.predictor.num_keypoints

    @property
    def config(self):
        return self.predictor.config

    def read(self, sample):
        if sample.image_path not in self.cache:
            self.cache[sample.image_path] = self._read(sample)
        return self.cache[sample.image_path]

    def predict_samples(self, samples, on_error=None):
        return self.predictor.predict_samples(samples, on_error=on_error, read=self.read)


def crop_frame_truth(samples, predictor) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth joints in each person's (unflipped) crop, heatmap px (N, K, 2), and their visibility (N, K)."""
    from posekit.data.transforms import affine_points, box_to_center_scale, crop_matrix
    w, h = predictor.input_size
    xy, vis = [], []
    for s in samples:
        center, size = box_to_center_scale(s.box, w / h, predictor.padding)
        matrix = crop_matrix(center, size, predictor.input_size, 0.0, False)
        xy.append(predictor.codec.input_to_heatmap(affine_points(s.keypoints[:, :2], matrix)))
        vis.append(s.keypoints[:, 2] > 0)
    return np.stack(xy), np.stack(vis)


def referee_agreement(logged: list[tuple[np.ndarray, np.ndarray]], samples, corrector) -> dict:
    """Pearson / Spearman correlation of the referee's fitness error with the true error of the uncorrected
    distal joints, over every labelled (person, chain). ``logged``: per batch, the rows' distal joints
    (people * C, 2) and fitness errors (people * C,), in the order the corrector saw them (with flip test it
    sees each person's fused views once)."""
    c = len(corrector.chains)
    distal = np.concatenate([d.reshape(-1, c, 2) for d, _ in logged])
    fitness = np.concatenate([e.reshape(-1, c) for _, e in logged])
    if len(distal) != len(samples):
        return {"referee_pearson": None, "referee_spearman": None, "referee_pairs": 0}
    gt, vis = crop_frame_truth(samples, corrector.predictor)
    joints = np.asarray(corrector.distal)
    true = np.linalg.norm(distal - gt[:, joints], axis=-1)
    keep = vis[:, joints]
    a, b = fitness[keep], true[keep]
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731 (no ties in continuous errors)
    pearson = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else None
    spearman = float(np.corrcoef(rank(a), rank(b))[0, 1]) if len(a) > 2 else None
    return {"referee_pearson": pearson, "referee_spearman": spearman, "referee_pairs": int(keep.sum()),
            "fitness_mean_px": float(a.mean()), "true_error_mean_px": float(b.mean())}


def measure(corrector, mode: str, samples, wrap) -> dict:
    """One cell: the metrics of ``mode`` (and, for ``correct``, the referee's agreement with the truth)."""
    logged = []
    if mode == "correct":
        corrector.observer = lambda rows, ctx: logged.append(
            (rows["coords"][:, scai.DISTAL].numpy().copy(), ctx["error"].numpy().copy()))
    try:
        metrics = scai.evaluate_modes(corrector, samples, modes=(mode,), wrap=wrap)[mode]
    finally:
        corrector.observer = None
    cell = {k: metrics.get(k) for k in METRICS + ("n_evaluated", "n_failed", "seconds", "tta_loss_first",
                                                  "tta_loss_last")}
    skeleton = corrector.predictor.pose_config.skeleton
    if skeleton is not None:
        from posekit.skeletons import SKELETONS
        names = [SKELETONS[skeleton].keypoints[j] for j in corrector.distal]
        cell["distal_per_joint"] = {n: metrics["per_joint"][n]["pck@0.2_torso"] for n in names
                                    if n in metrics.get("per_joint", {})}
    if mode == "correct":
        cell.update(referee_agreement(logged, samples, corrector))
    return cell


# -- report --------------------------------------------------------------------------------------
def p2(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def f2(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"


def markdown(results: dict) -> str:
    cells, s = results["cells"], results["settings"]
    # every condition and row measured (a later run may ask for fewer), in the settings' order, then the rest
    known_conds = list(s["conditions"]) + [k.split("/")[0] for k in cells if k.split("/")[0] not in s["conditions"]]
    known_rows = list(s["rows"]) + [r for r in LABELS if r not in s["rows"]]
    conds = [c for c in dict.fromkeys(known_conds) if any(k.startswith(c + "/") for k in cells)]
    rows = [r for r in known_rows if any(k.endswith("/" + r) for k in cells)]
    corrupted = [c for c in conds if c != "clean"]
    lines = []
    for metric, title in (("pck@0.2_torso", "PCK@0.2 (torso), all joints"),
                          ("distal_pck@0.2_torso", "PCK@0.2 (torso), the six corrected (distal) joints"),
                          ("pck@0.05_box", "PCK@0.05 (box), all joints"),
                          ("distal_pck@0.05_box", "PCK@0.05 (box), the six distal joints")):
        body = []
        for row in rows:
            vals = [cells.get(f"{c}/{row}", {}).get(metric) for c in conds]
            line = [LABELS.get(row, row), *(p2(v) for v in vals)]
            if corrupted:
                cv = vals[1:] if conds[0] == "clean" else vals
                line.append(p2(float(np.mean(cv)) if all(v is not None for v in cv) else None))
            body.append(line)
        lines += [f"{title}, %:", ""]
        lines += table(["SCAI", *(c.replace("_", " ") for c in conds), *(["mean corrupted"] if corrupted else [])],
                       body)
        lines.append("")
    ref_rows = [r for r in rows if r.endswith("correct")]
    if ref_rows:
        lines += ["The referee's fitness error vs the true error of the uncorrected distal joints (Pearson / "
                  "Spearman; heatmap px):", ""]
        body = [[LABELS.get(r, r).split(":")[0], *(f"{f2(cells.get(f'{c}/{r}', {}).get('referee_pearson'))} / "
                                                  f"{f2(cells.get(f'{c}/{r}', {}).get('referee_spearman'))}"
                                                  for c in conds)] for r in ref_rows]
        lines += table(["referee of", *(c.replace("_", " ") for c in conds)], body)
        lines.append("")
    lines.append(f"Pose model `{s['checkpoint']}` (flip test); evaluated on {s['val']}"
                 f"{' (first ' + str(s['limit']) + ' images)' if s.get('limit') else ''}, {s.get('n_images', '?')} "
                 f"people; corruptions at severity {s['severity']}, seed {s['seed']}; test-time training: "
                 f"{s['tta_steps']} Adam step(s) per batch of {s['batch_size']} crops at lr {s['tta_lr']}, online "
                 f"within each condition.")
    for design, info in results.get("scai", {}).items():
        t, hist = info.get("train", {}), info.get("history") or []
        last = hist[-1] if hist else {}
        lines.append(f"- {design} nets ({info.get('params')} parameters): trained on {t.get('data')} for "
                     f"{t.get('epochs')} epochs (batch {t.get('batch_size')}, lr {t.get('lr')}, seed {t.get('seed')}"
                     f"{', ' + str(t.get('max_iters')) + ' iterations per epoch' if t.get('max_iters') else ''}) in "
                     f"{info.get('train_seconds', 0) / 60:.1f} min; last epoch on the training data: distal error "
                     f"{f2(last.get('distal_err'))} -> {f2(last.get('corrected_err'))} heatmap px after correction, "
                     f"referee-true error correlation {f2(last.get('feedback_corr'))}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    if any(m not in scai.MODES for m in modes):
        raise SystemExit(f"--modes: choose from {scai.MODES}")
    if any(d not in scai.DESIGNS for d in designs):
        raise SystemExit(f"--designs: choose from {sorted(scai.DESIGNS)}")
    conds = conditions(args)
    pose_fp = rb.file_fingerprint(args.checkpoint)

    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("cells", {})
    rows = (["none"] if "none" in modes else []) + [row_name(d, m) for d in designs for m in modes if m != "none"]
    results["settings"] = {"checkpoint": str(args.checkpoint), "val": args.val, "limit": args.limit,
                           "seed": args.seed, "severity": args.severity, "tta_steps": args.tta_steps,
                           "tta_lr": args.tta_lr, "batch_size": args.batch_size, "threads": args.threads,
                           "conditions": [c for c, _ in conds], "rows": rows,
                           **environment("machine", "processor", machine=platform.platform())}
    results["scai"] = {k: v for k, v in results.get("scai", {}).items() if k in designs}
    samples, _ = rb.load_benchmark_samples(args.val, args.limit)
    indices = rb.image_indices(samples)
    from posekit.inference.predictor import Predictor
    predictor = Predictor.load(args.checkpoint, batch_size=args.batch_size)
    # every condition's pose outputs and images are kept for the whole run (the designs are evaluated one after
    # the other, each right after its training): about 0.26 MB of heatmaps per person and condition
    network = scai.NetworkMemo(predictor).__enter__()
    images = {cond: {} for cond, _ in conds}
    readers = {cond: (lambda s: read_image(s.image_path)) if corruption is None else
               rb.CorruptedImages(predictor, corruption, args.severity, args.seed, indices).read
               for cond, corruption in conds}
    base_settings = {"val": args.val, "limit": args.limit, "seed": args.seed, "severity": args.severity,
                     "pose_weights": pose_fp, "tta_steps": args.tta_steps, "tta_lr": args.tta_lr}
    for i, design in enumerate(designs):
        path, seconds = train(args, pose_fp, design)
        nets, cfg = scai.load_scai(path)
        results["scai"][design] = {"checkpoint": str(path), "train": cfg["train"], "nets": cfg["nets"],
                                   "history": cfg["history"], "train_seconds": seconds,
                                   "params": sum(p.numel() for p in nets.parameters())}
        corrector = scai.SCAICorrector(predictor, nets, cfg, tta_steps=args.tta_steps, tta_lr=args.tta_lr)
        scai_fp = rb.file_fingerprint(path)
        for cond, _ in conds:
            for mode in modes:
                if mode == "none" and i > 0:
                    continue
                key = f"{cond}/{row_name(design, mode)}"
                settings = {**base_settings, "scai_weights": None if mode == "none" else scai_fp}
                done = results["cells"].get(key)
                if done and done.get("settings") == settings:
                    log.info("%s: measured with the same settings, skipped", key)
                    continue
                t0 = time.time()
                cell = measure(corrector, mode, samples, lambda p, c=cond: CachedImages(p, readers[c], images[c]))
                cell["settings"] = settings
                results["cells"][key] = cell
                results["settings"]["n_images"] = cell["n_evaluated"]
                save_study(results, results_path, TITLE, markdown)
                log.info("%s: PCK@0.2 %.4f, distal %.4f, PCK@0.05 box %.4f, referee r %s (%.0f s)", key,
                         cell["pck@0.2_torso"], cell["distal_pck@0.2_torso"], cell["pck@0.05_box"],
                         cell.get("referee_pearson"), time.time() - t0)
        save_study(results, results_path, TITLE, markdown)
    network.__exit__(None, None, None)
    save_study(results, results_path, TITLE, markdown)
    print(results["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
