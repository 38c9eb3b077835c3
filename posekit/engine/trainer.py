"""The training loop: AdamW, warm-up + cosine schedule, channels_last, worker data loading, JSONL log,
atomic checkpoints, exact resume, optional DDP (gloo on the CPU) under torchrun.

The loop knows no training method: ``Trainer(cfg, method)`` is handed a
:class:`~posekit.methods.base.Method` instance and talks to it through that contract only (a
:class:`~posekit.training.context.TrainContext` once, a :class:`~posekit.training.context.StepProgress`
every step). ``posekit.methods.build_trainer(cfg)`` builds the method ``cfg.method`` names.

Reproducibility: model init, shuffling and augmentation all derive from ``seed`` and the epoch number,
and checkpoints are taken at epoch boundaries, so a run killed and resumed reaches the same numbers on
the CPU as an uninterrupted one.

Training options: :class:`~posekit.engine.train_config.TrainConfig` (the ``head`` option and its codec/loss there).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader

from posekit.config import DEFAULT_PADDING, PoseConfig
from posekit.data.crop_cache import training_crop_cache
from posekit.data.dataset import BatchedView, TopDownDataset
from posekit.data.formats import load_samples
from posekit.data.transforms import AugmentConfig
from posekit.checkpoint import check_writable, checkpoint_payload, load_weights, save_checkpoint
from posekit.data.sample import require_people
from posekit.engine.train_config import TrainConfig, build_train_codec, skeleton_of
from posekit.losses import build_head_loss
from posekit.models.base import CoordinateModel
from posekit.models.heads import HEATMAP_OUTPUT_HEADS, build_pose_model
from posekit.skeletons import get_skeleton, SKELETONS
from posekit.training.context import StepProgress, TrainContext
from posekit.training.guard import BufferSnapshot, check_finite_weights, check_skipped_share, guarded_step
from posekit.training.run_folder import prepare_run_folder
from posekit.training.precision import autocast, float32_loss, slow_autocast_warning
from posekit.training.runlog import RunLog
from posekit.training.schedule import lr_factor
from posekit.training.seeding import epoch_indices, seed_everything

__all__ = ["Trainer", "TrainConfig", "build_train_codec", "skeleton_of", "dist_info", "lr_factor", "epoch_indices",
           "seed_everything"]

log = logging.getLogger(__name__)


def dist_info() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class AllStages(torch.nn.Module):
    """forward() = the wrapped model's forward_all(), so DistributedDataParallel sees every stage."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_all(x)


class DistributedStages(torch.nn.Module):
    """What a method sees under DDP: forward_all/forward routed through the DDP wrapper."""

    def __init__(self, ddp: torch.nn.Module):
        super().__init__()
        self.ddp = ddp

    def forward_all(self, x):
        return self.ddp(x)

    def forward(self, x):
        return self.ddp(x)[-1]


class Trainer:
    """One training run of ``method`` (a :class:`~posekit.methods.base.Method`) as ``cfg`` describes it;
    ``cfg.method`` must name that method (it is what the run folder records)."""

    def __init__(self, cfg: TrainConfig, method, *, resume: bool = False, overwrite: bool = False):
        if method.name != cfg.method:
            raise ValueError(f"the training config names method {cfg.method!r}, but the trainer was handed "
                             f"{method.name!r}")
        self.cfg, self.method = cfg, method
        self.rank, self.world = dist_info()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo" if cfg.device == "cpu" else "nccl")
        self.is_main = self.rank == 0
        self.device = torch.device(cfg.device if cfg.device != "cuda" else f"cuda:{self.rank % max(1, torch.cuda.device_count())}")
        self.out = check_writable(cfg.out) if self.is_main else Path(cfg.out)
        if self.is_main:  # before any data is read: a refused folder costs nothing
            prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
        seed_everything(cfg.seed)
        if cfg.threads:
            # Fewer threads than cores keeps training fast when other processes share the CPU: oversubscribed
            # intra-op threads slow a 2-core run several-fold.
            torch.set_num_threads(cfg.threads)
        slow_amp = slow_autocast_warning(self.device.type, cfg.amp)
        if slow_amp and self.is_main:
            log.warning(slow_amp)

        loaded = require_people(load_samples(cfg.train, skip_invalid=cfg.skip_invalid), "train on", source=cfg.train)
        self.train_samples = method.select_samples(loaded)
        if not self.train_samples:
            raise ValueError(f"method {cfg.method!r} kept none of the {len(loaded)} people of {cfg.train}")
        self.val_samples = require_people(load_samples(cfg.val, skip_invalid=cfg.skip_invalid), "validate on",
                                          source=cfg.val) if cfg.val else []
        self.skeleton, self.flip_index = skeleton_of(self.train_samples)
        self.num_keypoints = int(self.train_samples[0].keypoints.shape[0])
        self.codec = build_train_codec(cfg)
        self.model = build_pose_model(cfg.model, self.num_keypoints, cfg.model_kwargs, cfg.head,
                                      cfg.head_kwargs).to(self.device)
        limbs = get_skeleton(self.skeleton).limbs if self.skeleton in SKELETONS else None
        self.head_loss = build_head_loss(cfg.head, self.codec, cfg.loss, limbs=limbs).to(self.device)
        if cfg.init:
            self.load_init(cfg.init)
        # Some models' backward crashes in channels_last on torch's CPU kernels (RepVGG's train form on 2.13).
        self.channels_last = cfg.channels_last and getattr(self.model, "channels_last_training", True)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ddp_model = train_model = None
        if self.world > 1:
            # DDP all-reduces gradients only for calls that go through its forward(): wrap forward_all.
            # A coordinate head leaves the backbone's heatmap conv unused: DDP must be told.
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                AllStages(self.model), find_unused_parameters=cfg.head not in HEATMAP_OUTPUT_HEADS)
            train_model = DistributedStages(self.ddp_model)

        augment = AugmentConfig(**cfg.augment)
        crop_cache = training_crop_cache(self.train_samples, cfg.input_size, DEFAULT_PADDING, augment,
                                         cfg.cache_dir) if cfg.crop_cache else None
        self.dataset = TopDownDataset(self.train_samples, self.codec, cfg.input_size, flip_index=np.array(self.flip_index),
                                      train=True, augment=augment, seed=cfg.seed, crop_cache=crop_cache,
                                      threads=cfg.loader_threads)
        self.steps_per_epoch = len(self.dataset) // self.world // cfg.batch_size
        if cfg.max_iters_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.max_iters_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.dataset)} samples are fewer than one batch of {cfg.batch_size}")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        method.bind(TrainContext(
            model=self.model, train_model=train_model, codec=self.codec, head_loss=self.head_loss,
            config=self.pose_config, samples=tuple(self.train_samples), device=self.device, seed=cfg.seed,
            total_steps=self.total_steps, channels_last=cfg.channels_last, world_size=self.world,
            options=cfg.to_dict()))
        if (cfg.head != "heatmap" or cfg.loss) and not method.uses_head_loss:
            raise ValueError(f"method {cfg.method!r} trains with its own heatmap loss: head {cfg.head!r} and loss "
                             f"options need a method that uses the configured head loss (e.g. 'supervised')")
        self.named_params = [(name, p) for m in method.trainable_modules() for name, p in m.named_parameters()
                             if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.log = RunLog(self.out / "log.jsonl")
        self.epoch, self.step, self.best, self.history = 0, 0, -1.0, []
        self.skipped_nonfinite, self.bad_images = 0, set()
        if resume:
            self.resume()

    def param_groups(self) -> list[dict]:
        """The network's parameters with weight decay; the head loss's own (RLE flow, AWL weights) without."""
        loss_params = {id(p) for p in self.head_loss.parameters()}
        groups = [{"params": [p for _, p in self.named_params if id(p) not in loss_params]}]
        no_decay = [p for _, p in self.named_params if id(p) in loss_params]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def pose_config(self) -> PoseConfig:
        """What a checkpoint needs to rebuild network + codec and crop as in training; the training options
        ride along (``extra["train"]``)."""
        cfg = self.cfg
        return PoseConfig(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), num_keypoints=self.num_keypoints,
                          codec=self.codec.to_config(), input_size=tuple(cfg.input_size), skeleton=self.skeleton,
                          flip_index=tuple(self.flip_index), head=cfg.head, head_kwargs=dict(cfg.head_kwargs),
                          padding=DEFAULT_PADDING, extra={"train": cfg.to_dict()})

    def model_config(self) -> dict:
        """The checkpoint config (:meth:`pose_config` as stored)."""
        return self.pose_config.to_dict()

    def load_init(self, path) -> None:
        payload, _ = checkpoint_payload(path, required=("model",))
        own = self.model.state_dict()
        source = dict(payload["model"])
        if isinstance(self.model, CoordinateModel) and not any(k.startswith("backbone.") for k in source):
            # a heatmap checkpoint initialising a coordinate model: its tensors are the backbone's
            source = {f"backbone.{k}": v for k, v in source.items()}
        # Keep only tensors of matching shape: pretraining on another keypoint set still transfers the trunk.
        state = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        self.model.load_state_dict(state, strict=False)
        if self.is_main:
            log.info("initialised %d/%d tensors from %s", len(state), len(own), path)

    def save(self, name: str, payload: dict) -> None:
        """Write a checkpoint of the run folder; weights that are not finite are never written (the run stops)."""
        check_finite_weights(payload["model"], f"epoch {self.epoch}; {name} not written")
        save_checkpoint(self.out / name, payload)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "config": self.model_config(),
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "step": self.step, "best": self.best,
                "history": json.loads(json.dumps(self.history)), "method": self.method.state_dict()}

    def resume(self) -> None:
        path = Path(self.cfg.out) / "last.pt"
        if not path.exists():
            log.info("no checkpoint at %s; starting fresh", path)
            return
        payload, source = checkpoint_payload(path, required=("model", "optimizer", "epoch", "step", "best"))
        load_weights(self.model, payload["model"], source, f"the {self.cfg.model!r} model of this run's options")
        self.optimizer.load_state_dict(payload["optimizer"])
        self.epoch, self.step, self.best = payload["epoch"], payload["step"], payload["best"]
        self.history = payload.get("history", [])
        if payload.get("method"):
            self.method.load_state_dict(payload["method"])
        if self.is_main:
            log.info("resumed from %s at epoch %d", path, self.epoch)

    # -- loop ------------------------------------------------------------------------------------
    def loader(self, epoch: int) -> DataLoader:
        self.dataset.set_epoch(epoch)
        indices = epoch_indices(len(self.dataset), self.cfg.seed, epoch, self.rank, self.world)
        indices = indices[:self.steps_per_epoch * self.cfg.batch_size]
        # whole batches from TopDownDataset.batch (the collated items, made stage by stage), not item by item
        return DataLoader(BatchedView(self.dataset), batch_size=None,
                          sampler=BatchSampler(indices, self.cfg.batch_size, drop_last=True),
                          num_workers=self.cfg.workers, persistent_workers=False,
                          multiprocessing_context="fork" if self.cfg.workers > 0 and sys.platform != "win32" else None)

    def progress(self, epoch: int) -> StepProgress:
        """Set this step's learning rate; the method is told it as a factor on the base rate."""
        cfg = self.cfg
        lr = cfg.lr * lr_factor(self.step, self.total_steps, cfg.warmup_iters, cfg.final_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # the factor as the optimiser applies it (lr / base), so a method scaling its own optimisers follows bit for bit
        factor = self.optimizer.param_groups[0]["lr"] / cfg.lr if cfg.lr else 0.0
        return StepProgress(step=self.step, epoch=epoch, total_steps=self.total_steps, lr_factor=factor)

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        for m in self.method.trainable_modules():
            m.train()
        totals, n, t0 = {}, 0, time.time()
        batches = self.loader(epoch)
        if self.is_main and cfg.progress:
            from tqdm import tqdm
            batches = tqdm(batches, total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                           file=sys.stderr, dynamic_ncols=True)
        for batch in batches:
            bad = batch["index"][batch["ok"] == 0].tolist()
            self.bad_images.update(self.train_samples[i].image_path for i in bad)
            batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            if self.channels_last:
                batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            progress = self.progress(epoch)
            buffers = BufferSnapshot(self.method.trainable_modules())
            with autocast(self.device.type, enabled=cfg.amp):  # bf16 on the CPU; weights and optimiser stay fp32
                logs = float32_loss(self.method.training_step(batch, progress))
            where = f"epoch {epoch + 1}, step {self.step}, samples {batch['index'][:8].tolist()}..."
            refused = guarded_step(logs["loss"], [self.optimizer], self.named_params, buffers, policy=cfg.nan_policy,
                                   where=where)
            if refused:  # no weight update, the forward pass's BatchNorm updates undone
                self.skipped_nonfinite += 1
                log.warning("skipped step: %s (%d so far)", refused, self.skipped_nonfinite)
                check_skipped_share(self.skipped_nonfinite, self.total_steps, cfg.max_skipped_share, refused)
                self.step += 1
                continue
            self.method.after_step(progress)
            self.step += 1
            n += 1
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if self.is_main and cfg.progress and hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{totals['loss'] / n:.3e}")
        seconds = time.time() - t0
        return {k: v / max(1, n) for k, v in totals.items()} | {
            "seconds": round(seconds, 1), "images_per_s": round(n * cfg.batch_size * self.world / max(seconds, 1e-9), 1),
            "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self) -> dict:
        from posekit.engine.evaluate import evaluate_samples
        from posekit.inference.predictor import Predictor
        model = self.method.deploy_model()
        predictor = Predictor(model, self.model_config(), flip_test=True, device=str(self.device))
        metrics = evaluate_samples(predictor, self.val_samples)
        model.train()
        return metrics

    def fit(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            self.log.trim(self.epoch)
        while self.epoch < cfg.epochs:
            record = {"epoch": self.epoch + 1, **self.train_epoch(self.epoch)}
            self.epoch += 1
            if self.val_samples and self.is_main and (self.epoch % cfg.val_every == 0 or self.epoch == cfg.epochs):
                metrics = self.validate()
                record["val"] = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
                score = metrics.get("pck@0.2_torso", metrics.get("AP", 0.0))
                if isinstance(score, float) and score == score and score > self.best:
                    self.best = score
                    self.save("best.pt", {"model": self.model.state_dict(), "config": self.model_config()})
            if self.bad_images:
                record["unreadable_images"] = sorted(self.bad_images)
            if self.skipped_nonfinite:
                record["skipped_nonfinite"] = self.skipped_nonfinite
            self.history.append(record)
            if self.is_main:
                self.log.append(record)
                self.save("last.pt", self.state())
                log.info("epoch %d: %s", self.epoch, {k: v for k, v in record.items() if k != "unreadable_images"})
        if self.is_main:
            self.save("model.pt", {"model": self.model.state_dict(), "config": self.model_config()})
        if self.world > 1:
            dist.barrier()
        return self.history[-1] if self.history else {}
