"""SCAI on LSPET: a trained pose model without correction, with SCAI's correction, and with SCAI's test-time
training, on clean and corrupted LSPET val.

Run from the repository root:

    PYTHONPATH=. python benchmarks/scai.py --checkpoint zoo/lspet_compact.pt --epochs 10
    PYTHONPATH=. python benchmarks/scai.py --checkpoint zoo/lspet_compact.pt --limit 300 --tta-steps 2

1. SCAI's three networks (:mod:`posekit.methods.scai`) are trained on ``--train`` (LSPET train: the pose
   model's own training data) with the pose model frozen: ``--epochs`` epochs, batch ``--batch-size``,
   AdamW ``--lr``, any further :func:`~posekit.methods.scai.train_scai` option in ``--scai-kwargs``.
2. Every mode is evaluated on ``--val`` (LSPET val) clean and under each of ``--corruptions`` at
   ``--severity`` (ImageNet-C, :func:`posekit.data.corruptions.corrupt` on the full image before the crop,
   per-image seeds as in ``posekit robustness``):

   * ``none``    the pose model alone (flip test);
   * ``correct`` SCAI's correction network moves the six distal joints;
   * ``tta``     the correction network also trains on every test batch (``--tta-steps`` Adam steps at
     ``--tta-lr``, online within a condition, restarted from the trained weights for every condition).

Reported: PCK@0.2 (torso) and PCK@0.05 (box) over all joints, and PCK@0.2 of the six corrected joints.

Resumable: SCAI training resumes from its last epoch (and is skipped when finished with the same
settings); every (condition, mode) cell is saved as soon as it is measured and skipped on a rerun with the
same settings. Writes ``benchmarks/results/scai.json`` and ``.md`` (``--results``); runs go to ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
from pathlib import Path

import numpy as np

from common import ROOT, environment, pct, run_once, save_study, table
from posekit.engine import robustness as rb
from posekit.methods import scai

RESULTS = ROOT / "benchmarks" / "results" / "scai.json"
CORRUPTIONS = "gaussian_noise,motion_blur,fog,contrast,jpeg_compression"
METRICS = ("pck@0.2_torso", "pck@0.05_box", "distal_pck@0.2_torso", "distal_pck@0.05_box", "auc_torso")
#: the heading of the .md (the json holds the table under "markdown")
TITLE = "SCAI on LSPET (clean and corrupted)"

log = logging.getLogger("scai_benchmark")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="pose model (heatmap head), e.g. zoo/lspet_compact.pt")
    p.add_argument("--train", default="lsp:../shared/datasets/lspet@train", help="labeled data for SCAI's nets")
    p.add_argument("--val", default="lsp:../shared/datasets/lspet@val")
    p.add_argument("--epochs", type=int, default=10, help="SCAI training epochs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=1, help="data-loading workers of SCAI training")
    p.add_argument("--max-iters", type=int, help="cap SCAI iterations per epoch (smoke tests only)")
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


def train(args, pose_fp: str) -> Path:
    """SCAI's nets on top of the pose model, trained once (:func:`common.run_once`, keyed by every training
    option; :func:`~posekit.methods.scai.train_scai` itself resumes an interrupted run)."""
    kwargs = json.loads(args.scai_kwargs)
    run = Path(args.runs) / f"{Path(args.checkpoint).stem}_{pose_fp[:8]}_e{args.epochs}" \
        f"{'' if args.max_iters is None else f'_it{args.max_iters}'}_seed{args.seed}"
    options = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=args.workers,
                   max_iters=args.max_iters, tta_steps=args.tta_steps, tta_lr=args.tta_lr, **kwargs)
    record = run_once(run, lambda: {"checkpoint": scai.train_scai(args.checkpoint, args.train, run, progress=True,
                                                                  **options)},
                      key={"pose_weights": pose_fp, "train": args.train, **options})
    log.info("SCAI nets: %s (%.0f s)", record["checkpoint"], record["seconds_this_run"])
    return Path(record["checkpoint"])


def cell_settings(args, pose_fp: str, scai_fp: str) -> dict:
    return {"val": args.val, "limit": args.limit, "seed": args.seed, "severity": args.severity,
            "pose_weights": pose_fp, "scai_weights": scai_fp, "tta_steps": args.tta_steps, "tta_lr": args.tta_lr}


# -- report --------------------------------------------------------------------------------------
def fmt2(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"


def markdown(results: dict) -> str:
    cells, s = results["cells"], results["settings"]
    conds = [c for c in s["conditions"] if any(k.startswith(c + "/") for k in cells)]
    modes = [m for m in scai.MODES if any(k.endswith("/" + m) for k in cells)]
    corrupted = [c for c in conds if c != "clean"]
    lines = []
    for metric, title in (("pck@0.2_torso", "PCK@0.2 (torso), all joints"),
                          ("pck@0.05_box", "PCK@0.05 (box), all joints"),
                          ("distal_pck@0.2_torso", "PCK@0.2 (torso), the six corrected (distal) joints")):
        rows = []
        for mode in modes:
            row = [mode, *(pct(cells.get(f"{c}/{mode}", {}).get(metric)) for c in conds)]
            if corrupted:
                vals = [cells.get(f"{c}/{mode}", {}).get(metric) for c in corrupted]
                row.append(pct(float(np.mean(vals)) if all(v is not None for v in vals) else None))
            rows.append(row)
        lines += [f"{title}, %:", ""]
        lines += table(["SCAI", *(c.replace("_", " ") for c in conds), *(["mean corrupted"] if corrupted else [])],
                       rows)
        lines.append("")
    train_cfg = results.get("scai", {}).get("train", {})
    lines += [f"Pose model `{s['checkpoint']}` (flip test); SCAI nets trained on {train_cfg.get('data')} for "
              f"{train_cfg.get('epochs')} epochs (batch {train_cfg.get('batch_size')}, lr {train_cfg.get('lr')}"
              f"{', ' + str(train_cfg.get('max_iters')) + ' iterations per epoch' if train_cfg.get('max_iters') else ''}"
              f"); evaluated on {s['val']}{' (first ' + str(s['limit']) + ' images)' if s.get('limit') else ''}, "
              f"{s.get('n_images', '?')} people; corruptions at severity {s['severity']}, seed {s['seed']}; "
              f"test-time training: {s['tta_steps']} Adam step(s) per batch of {s['batch_size']} crops at lr "
              f"{s['tta_lr']}, online within each condition."]
    hist = results.get("scai", {}).get("history") or []
    if hist:
        last = hist[-1]
        lines.append(f"Last SCAI epoch on the training data: distal error {last.get('distal_err', float('nan')):.2f} "
                     f"-> {last.get('corrected_err', float('nan')):.2f} heatmap px after correction; correlation of "
                     f"the referee's fitness error with the true distal error {fmt2(last.get('feedback_corr'))}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in scai.MODES for m in modes):
        raise SystemExit(f"--modes: choose from {scai.MODES}")
    conds = conditions(args)
    pose_fp = rb.file_fingerprint(args.checkpoint)
    scai_path = train(args, pose_fp)
    scai_fp = rb.file_fingerprint(scai_path)
    settings = cell_settings(args, pose_fp, scai_fp)

    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("cells", {})
    results["settings"] = {"checkpoint": str(args.checkpoint), **settings, "batch_size": args.batch_size,
                           "conditions": [c for c, _ in conds], "modes": modes,
                           **environment("machine", "processor", machine=platform.platform())}
    _, scai_cfg = scai.load_scai(scai_path)
    results["scai"] = {"checkpoint": str(scai_path), "train": scai_cfg["train"], "nets": scai_cfg["nets"],
                       "history": scai_cfg["history"]}

    samples, _ = rb.load_benchmark_samples(args.val, args.limit)
    indices = rb.image_indices(samples)
    corrector = scai.SCAICorrector.from_checkpoint(scai_path, pose_checkpoint=args.checkpoint,
                                                   tta_steps=args.tta_steps, tta_lr=args.tta_lr,
                                                   batch_size=args.batch_size)
    for cond, corruption in conds:
        for mode in modes:
            key = f"{cond}/{mode}"
            done = results["cells"].get(key)
            if done and done.get("settings") == settings:
                log.info("%s: measured with the same settings, skipped", key)
                continue
            wrap = None if corruption is None else (
                lambda p, c=corruption: rb.CorruptedImages(p, c, args.severity, args.seed, indices))
            metrics = scai.evaluate_modes(corrector, samples, modes=(mode,), wrap=wrap)[mode]
            cell = {k: metrics.get(k) for k in METRICS + ("n_evaluated", "n_failed", "seconds",
                                                          "tta_loss_first", "tta_loss_last")}
            cell["settings"] = settings
            results["cells"][key] = cell
            results["settings"]["n_images"] = metrics["n_evaluated"]
            save_study(results, results_path, TITLE, markdown)
            log.info("%s: PCK@0.2 %.4f, PCK@0.05 box %.4f, distal PCK@0.2 %.4f (%.0f s)", key,
                     cell["pck@0.2_torso"], cell["pck@0.05_box"], cell["distal_pck@0.2_torso"], cell["seconds"])
    save_study(results, results_path, TITLE, markdown)
    print(results["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
