"""Training SCAI's networks on labelled data, on top of a frozen pose checkpoint (see :mod:`posekit.methods.scai`).

Not a trainer :class:`~posekit.methods.base.Method`: the trainer trains *its* network and checkpoints it as a
pose model, while here the pose network is a frozen input and the artefact is a SCAI checkpoint (three small
nets + the pose model's fingerprint), with its own sample order and schedule (changing either would change
every SCAI number). The loop is small and uses the shared machinery: seeding and the warm-up + cosine
schedule (:mod:`posekit.training`), atomic checkpoints, and a run log trimmed to the checkpoint on resume.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from posekit.config import DEFAULT_PADDING
from posekit.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from posekit.methods.scai.corrector import TTA_WEIGHTINGS, scai_payload
from posekit.methods.scai.designs import build_nets, nets_from_config
from posekit.methods.scai.nets import chains_of, gather_chains
from posekit.training.runlog import RunLog
from posekit.training.schedule import lr_factor
from posekit.training.seeding import seed_everything

__all__ = ["train_scai", "training_rows", "pose_chains", "run_paths"]

log = logging.getLogger(__name__)


def run_paths(out) -> dict[str, Path]:
    """``out`` a folder -> out/scai.pt (+ scai_last.pt, scai_log.jsonl); ``out`` a .pt file -> next to it."""
    out = Path(out)
    if out.suffix == ".pt":
        return {"final": out, "last": out.with_name(out.stem + "_last.pt"),
                "log": out.with_name(out.stem + "_log.jsonl")}
    return {"final": out / "scai.pt", "last": out / "scai_last.pt", "log": out / "scai_log.jsonl"}


def pose_chains(pose_cfg: dict) -> np.ndarray:
    from posekit.skeletons import SKELETONS
    name = pose_cfg.get("skeleton")
    if name not in SKELETONS:
        raise ValueError(f"SCAI needs a known skeleton for its chains, the pose model's is {name!r}")
    return chains_of(SKELETONS[name])


@torch.no_grad()
def training_rows(model, codec, batch: dict, chains, device) -> tuple[dict, tuple]:
    """A training batch -> (chain rows of the frozen pose model's heatmaps, (gt_xy, gt_vis, gt_maps) rows)."""
    images = batch["image"].to(device).contiguous(memory_format=torch.channels_last)
    heatmaps = model(images).float().cpu()
    coords, scores = codec.decode(heatmaps.numpy())
    hm_xy = torch.from_numpy(codec.input_to_heatmap(coords).astype(np.float32))
    rows = gather_chains(heatmaps, hm_xy, torch.from_numpy(scores.astype(np.float32)), chains)
    gt_xy = torch.from_numpy(codec.input_to_heatmap(batch["keypoints"][..., :2].numpy()).astype(np.float32))
    gt = gather_chains(batch["heatmaps"].float(), gt_xy, batch["weights"].float(), chains)
    rows = {k: v.to(device) for k, v in rows.items()}
    return rows, (gt["coords"].to(device), gt["scores"].to(device), gt["maps"].to(device))


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _labelled_dataset(data_spec: str, pose_cfg: dict, codec, augment: dict | None, seed: int, skip_invalid: bool):
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples
    from posekit.data.transforms import AugmentConfig
    samples = load_samples(data_spec, skip_invalid=skip_invalid)
    if not samples:
        raise ValueError(f"no samples in {data_spec}")
    if not any((s.keypoints[:, 2] > 0).any() for s in samples):
        raise ValueError(f"{data_spec}: SCAI's networks are trained with labels, and this data has none")
    if samples[0].keypoints.shape[0] != pose_cfg["num_keypoints"]:
        raise ValueError(f"{data_spec} has {samples[0].keypoints.shape[0]} keypoints, the pose model "
                         f"{pose_cfg['num_keypoints']}")
    return TopDownDataset(samples, codec, tuple(pose_cfg["input_size"]), flip_index=np.asarray(pose_cfg["flip_index"]),
                          train=True, augment=AugmentConfig(**(augment or {})), seed=seed,
                          padding=pose_cfg.get("padding", DEFAULT_PADDING))


def train_scai(pose_checkpoint, data_spec: str, out, epochs: int = 10, *, batch_size: int = 32, lr: float = 1e-3,
               weight_decay: float = 1e-4, seed: int = 0, workers: int = 0, max_iters: int | None = None,
               augment: dict | None = None, design: str = "heatmap", width: int | None = None,
               max_offset: float | None = None,
               feedback_weight: float = 0.1, tta_steps: int = 1, tta_lr: float = 1e-4, tta_weighting: str = "none",
               episodic: bool = False, resume: bool = True, skip_invalid: bool = False, device: str = "cpu",
               progress: bool = False) -> Path:
    """Train Φ, Γ and C on labeled data with the pose network frozen; returns the SCAI checkpoint path.

    ``out``: a folder (writes ``scai.pt``, ``scai_last.pt`` for resume, ``scai_log.jsonl``) or a ``.pt``
    path. ``design``: "heatmap" (nets on the chain's heatmaps) or "coords" (MLPs on its joint coordinates and
    confidences), see :mod:`posekit.methods.scai.designs`; ``width`` None -> the design's default. The
    checkpoint holds the three nets' weights and ``config``: ``method`` "scai", ``nets``, ``pose``
    (``checkpoint`` path, ``fingerprint``, ``config``), ``tta`` defaults, ``train`` settings, ``history``.
    Written atomically, loadable with ``weights_only=True``. A finished run with the same settings is
    returned as is; an interrupted one resumes from its last epoch.
    """
    from posekit.codecs import HeatmapCodec, build_codec
    from posekit.engine.robustness import file_fingerprint

    if tta_weighting not in TTA_WEIGHTINGS:
        raise ValueError(f"tta_weighting must be one of {TTA_WEIGHTINGS}, got {tta_weighting!r}")
    paths = run_paths(out)
    paths["final"].parent.mkdir(parents=True, exist_ok=True)
    model, pose_cfg = build_from_checkpoint(str(pose_checkpoint))
    codec = build_codec(pose_cfg["codec"])
    if not isinstance(codec, HeatmapCodec) or pose_cfg.get("head", {}).get("type", "heatmap") != "heatmap":
        raise ValueError(f"{pose_checkpoint}: SCAI needs a heatmap pose model, this one has codec "
                         f"{type(codec).__name__}")
    chains = pose_chains(pose_cfg)
    train_settings = {"data": data_spec, "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr),
                      "weight_decay": float(weight_decay), "seed": int(seed), "max_iters": max_iters,
                      "augment": dict(augment or {}), "feedback_weight": float(feedback_weight)}
    fingerprint = file_fingerprint(pose_checkpoint)
    nets_cfg = build_nets(codec.heatmap_size, codec.sigma, chains, design=design, width=width,
                          max_offset=max_offset).config()
    config = {"method": "scai", "nets": nets_cfg, "skeleton": pose_cfg.get("skeleton"),
              "pose": {"checkpoint": str(pose_checkpoint), "fingerprint": fingerprint, "config": pose_cfg},
              "tta": {"steps": int(tta_steps), "lr": float(tta_lr), "weighting": tta_weighting,
                      "episodic": bool(episodic)},
              "train": train_settings, "history": []}

    def same_run(cfg: dict) -> bool:
        return (cfg.get("train") == train_settings and cfg.get("nets") == nets_cfg
                and cfg.get("pose", {}).get("fingerprint") == fingerprint)

    if resume and paths["final"].exists():
        done = load_checkpoint(paths["final"])
        if same_run(done.get("config", {})):
            log.info("SCAI: %s already trained with these settings", paths["final"])
            if done["config"].get("tta") != config["tta"]:  # only the test-time defaults changed
                done["config"]["tta"] = config["tta"]
                save_checkpoint(paths["final"], done)
            return paths["final"]

    seed_everything(seed)
    dev = torch.device(device)
    nets = nets_from_config(nets_cfg).to(dev)
    model.to(dev).eval().requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(nets.parameters(), lr=lr, weight_decay=weight_decay)
    start, history = 0, []
    if resume and paths["last"].exists():
        state = load_checkpoint(paths["last"])
        if same_run(state.get("config", {})):
            for name in ("prediction", "correction", "referee"):
                getattr(nets, name).load_state_dict(state["scai"][name])
            optimizer.load_state_dict(state["optimizer"])
            start, history = int(state["epoch"]), list(state["config"].get("history", []))
            log.info("SCAI: resumed from %s at epoch %d", paths["last"], start)
    run_log = RunLog(paths["log"])
    run_log.trim(start)

    dataset = _labelled_dataset(data_spec, pose_cfg, codec, augment, seed, skip_invalid)
    steps = len(dataset) // batch_size
    if max_iters:
        steps = min(steps, int(max_iters))
    if steps < 1:
        raise ValueError(f"{len(dataset)} samples are fewer than one batch of {batch_size}")
    schedule = {"total": steps * epochs, "warmup": min(100, max(1, steps * epochs // 10)), "final_ratio": 0.01}

    for epoch in range(start, epochs):
        t0 = time.time()
        totals, n, fitness, true_err = _train_epoch(nets, optimizer, model, codec, chains, dataset, epoch, steps, dev,
                                                    lr=lr, schedule=schedule, batch_size=batch_size, seed=seed,
                                                    workers=workers, feedback_weight=feedback_weight,
                                                    progress=progress)
        record = {"epoch": epoch + 1, **{k: v / max(1, n) for k, v in totals.items()},
                  "feedback_corr": _correlation(np.concatenate(fitness), np.concatenate(true_err)),
                  "seconds": round(time.time() - t0, 1)}
        history.append(record)
        config["history"] = json.loads(json.dumps(history, default=float))
        run_log.append(record)
        save_checkpoint(paths["last"], {**scai_payload(nets, config), "optimizer": optimizer.state_dict(),
                                        "epoch": epoch + 1})
        log.info("SCAI epoch %d: %s", epoch + 1,
                 {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()})
    config["history"] = json.loads(json.dumps(history, default=float))
    save_checkpoint(paths["final"], scai_payload(nets.cpu(), config))
    return paths["final"]


def _train_epoch(nets, optimizer, model, codec, chains, dataset, epoch: int, steps: int, device, *, lr: float,
                 schedule: dict, batch_size: int, seed: int, workers: int, feedback_weight: float, progress: bool):
    """One epoch over ``steps`` seeded batches: (summed logs, steps taken, fitness and true errors per batch)."""
    from torch.utils.data import DataLoader
    dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed * 1000003 + epoch))
    totals: dict[str, float] = {}
    fitness, true_err = [], []
    nets.train()
    n = 0
    for it, batch in enumerate(loader):
        if it >= steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(epoch * steps + it, schedule["total"], schedule["warmup"],
                                         schedule["final_ratio"])
        rows, gt = training_rows(model, codec, batch, chains, device)
        logs = nets.losses(rows, *gt, feedback_weight=feedback_weight)
        optimizer.zero_grad(set_to_none=True)
        logs["loss"].backward()
        optimizer.step()
        n += 1
        for k, v in logs.items():
            if k not in ("fitness", "true_err", "visible"):
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        keep = logs["visible"] > 0
        fitness.append(logs["fitness"][keep].cpu().numpy())
        true_err.append(logs["true_err"][keep].cpu().numpy())
        if progress and it % 20 == 0:
            log.info("SCAI epoch %d it %d/%d loss %.4f", epoch + 1, it, steps, float(logs["loss"].detach()))
    return totals, n, fitness, true_err
