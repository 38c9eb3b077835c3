"""`posekit demo`: the main job on the embedded default data.

Synthesises people, trains the default compact model, evaluates it and writes a report folder:
metrics.json, summary.md, training_curve.png, pck_curve.png, predictions.png.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "simplebaseline_r18"
DEFAULT_MODEL_KWARGS = {"width": 0.5, "deconv_channels": 128}
DEFAULT_INPUT = (128, 128)


#: what the report folder holds, in the order the last message lists it
REPORT_FILES = ("summary.md", "metrics.json", "training_curve.png", "pck_curve.png", "predictions.png")

log = logging.getLogger(__name__)


def check_demo_folder(out, overwrite: bool) -> None:
    """Refuse (before minutes of data generation) a folder that holds a previous demo, unless ``overwrite``."""
    from posekit.training.run_folder import previous_run_files
    previous = previous_run_files(Path(out) / "run")
    if previous and not overwrite:
        raise FileExistsError(f"{out} holds a previous demo (run/{', run/'.join(previous)}): pass --overwrite to "
                              f"replace it, or choose another --out")


def run_demo(out, *, num_train: int = 3200, num_val: int = 300, epochs: int = 14, seed: int = 0, workers: int = 2,
             style: str = "mixed", batch_size: int = 32, progress: bool = True, overwrite: bool = False) -> dict:
    from posekit.data.formats import load_samples
    from posekit.data.synth import generate_dataset
    from posekit.engine.evaluate import predict_all
    from posekit.engine.trainer import TrainConfig
    from posekit.inference.draw import draw_pose
    from posekit.inference.predictor import Predictor
    from posekit.data.io import read_image
    from posekit.methods import build_trainer
    from posekit.metrics import evaluate_keypoints, pck_curve, torso_lengths
    from posekit.report import plot_pck_curve, plot_training_curve, prediction_grid, write_json
    from posekit.skeletons import get_skeleton

    out = Path(out)
    check_demo_folder(out, overwrite)
    t0 = time.time()
    log.info("generating %d synthetic training people (%s style) in %s ...", num_train, style, out / "data" / "train")
    train_ann = generate_dataset(out / "data" / "train", num_train, style=style, skeleton="lsp", seed=seed,
                                 workers=workers, progress=progress)
    log.info("generating %d synthetic validation people in %s ...", num_val, out / "data" / "val")
    val_ann = generate_dataset(out / "data" / "val", num_val, style=style, skeleton="lsp", seed=seed + 10_000,
                               workers=workers, progress=progress)
    t_data = time.time() - t0
    log.info("data ready in %.0f s; training %s for %d epoch(s) in %s ...", t_data, DEFAULT_MODEL, epochs, out / "run")

    cfg = TrainConfig(train=f"coco:{train_ann}", val=f"coco:{val_ann}", out=str(out / "run"), model=DEFAULT_MODEL,
                      model_kwargs=DEFAULT_MODEL_KWARGS, input_size=DEFAULT_INPUT, epochs=epochs, batch_size=batch_size,
                      lr=2e-3, warmup_iters=100, workers=workers, seed=seed, val_every=max(1, epochs // 4),
                      progress=progress)
    trainer = build_trainer(cfg, overwrite=overwrite)
    trainer.fit()
    t_train = time.time() - t0 - t_data
    log.info("trained in %.0f s; evaluating on the %d validation people and writing the report ...", t_train, num_val)

    skeleton = get_skeleton("lsp")
    predictor = Predictor(trainer.model.eval(), trainer.model_config(), flip_test=True)
    samples = load_samples(f"coco:{val_ann}")
    preds, kept, _ = predict_all(predictor, samples)
    gt = np.stack([s.keypoints for s in kept])
    boxes = np.stack([s.box for s in kept])
    metrics = evaluate_keypoints(preds[:, :, :2], gt, boxes, skeleton)
    from posekit.metrics import coco_oks_ap
    from posekit.inference.predictor import prediction_record
    metrics.update(coco_oks_ap(str(val_ann), [prediction_record(s, p) for s, p in zip(kept, preds)], sigmas=skeleton.sigmas))
    alphas = np.linspace(0, 0.5, 51)
    plot_pck_curve({"posekit demo model": (alphas, pck_curve(preds[:, :, :2], gt, torso_lengths(gt, skeleton), alphas))},
                   out / "pck_curve.png")
    plot_training_curve(trainer.history, out / "training_curve.png")
    drawn = [draw_pose(read_image(s.image_path), p, skeleton, threshold=0.05) for s, p in list(zip(kept, preds))[:16]]
    prediction_grid(drawn, out / "predictions.png")

    wall = time.time() - t0
    report = {"model": DEFAULT_MODEL, "model_kwargs": DEFAULT_MODEL_KWARGS, "input_size": list(DEFAULT_INPUT),
              "num_train": num_train, "num_val": num_val, "epochs": epochs, "seed": seed, "style": style,
              "seconds": {"data": round(t_data, 1), "train": round(t_train, 1), "total": round(wall, 1)},
              "metrics": {k: v for k, v in metrics.items() if not isinstance(v, dict)}}
    write_json(out / "metrics.json", report | {"per_joint": metrics.get("per_joint", {})})
    from posekit.metrics import format_table
    (out / "summary.md").write_text(
        f"# posekit demo\n\nSynthetic people ({style} style), {num_train} train / {num_val} val images, seed {seed}.\n"
        f"Model `{DEFAULT_MODEL}` {DEFAULT_MODEL_KWARGS} at {DEFAULT_INPUT[0]}x{DEFAULT_INPUT[1]}, {epochs} epochs, "
        f"flip test + DARK decoding.\n\n"
        f"| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v:.4f} |\n" for k, v in report["metrics"].items()
                                                   if isinstance(v, float)) +
        f"\nWall time: {wall / 60:.1f} min (data {t_data:.0f} s, training {t_train:.0f} s).\n\n"
        f"## Per joint\n\n{format_table(metrics, skeleton)}\n\n"
        "![training](training_curve.png) ![pck](pck_curve.png)\n\n![predictions](predictions.png)\n")
    return report
