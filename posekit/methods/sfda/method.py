"""SFDA's update order (see :mod:`posekit.methods.sfda`): three copies of the source network, step A (source
protection) inside the training step, step B (target relevance) as the trainer's loss, then the EMA."""
from __future__ import annotations

import copy
import dataclasses
import logging
import math

import numpy as np
import torch
import torch.nn as nn

from posekit.data.transforms import invert_affine
from posekit.methods.base import Method, MethodOption, StepProgress, TrainContext, register_method
from posekit.methods.sfda.losses import (check_positive, consistency_loss, finetune_loss,
                                         information_maximization_loss, pose_contrastive_loss, residual_kl_loss,
                                         spatial_probabilities)
from posekit.models.base import PoseModel, TrunkHead
from posekit.training.ema import ema_update
from posekit.training.guard import BufferSnapshot, guarded_step
from posekit.training.warp import map_to_reference, sample_view_transforms, warp

log = logging.getLogger(__name__)

__all__ = ["SFDA", "REGRESSORS", "CONSISTENCY_REFERENCES", "resolve_regressor", "regressor_split",
           "check_source_compatible"]

REGRESSORS = ("auto", "head", "upsample_head", "own")
CONSISTENCY_REFERENCES = ("target", "intermediate")


# -- model split: G (features) and F (regressor) ---------------------------------------------------
def resolve_regressor(model: nn.Module, regressor: str = "auto") -> str:
    """'auto' -> 'upsample_head' for models whose own split has trunk stages (SimpleBaseline, RepVGG: encoder |
    upsampler + head), else 'head' (features | final 1x1 heatmap conv). 'own' is the architecture's own split
    (``split_trunk_head()``; MoveNet: backbone + FPN | its CenterNet heatmap head)."""
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
    if not isinstance(model, PoseModel):
        raise ValueError(f"{type(model).__name__} is not a posekit PoseModel: sfda needs a posekit heatmap model")
    try:
        own = model.split_trunk_head()
    except NotImplementedError as err:
        raise ValueError(f"sfda splits the network into features and regressor: {err}") from None
    if regressor == "auto":
        return "upsample_head" if own.stages is not None else "head"
    if regressor == "upsample_head" and own.stages is None:
        raise ValueError(f"regressor 'upsample_head' needs a model with trunk stages, an upsampler and a head "
                         f"(SimpleBaseline, RepVGG); {type(model).__name__} has not: use 'head'")
    return regressor


def regressor_split(model: PoseModel, regressor: str) -> TrunkHead:
    """G = ``split.trunk`` and F = ``split.head`` of a resolved ``regressor`` ('upsample_head', 'own' or 'head')."""
    return model.split_trunk_head(final_conv=regressor == "head")


def check_source_compatible(source_cfg: dict, adapted_cfg: dict, path) -> None:
    """The adapted network must be the source's: same model and kwargs, input size, joints, heatmap size, head."""
    if source_cfg.get("head", {"type": "heatmap"}).get("type", "heatmap") != "heatmap":
        raise ValueError(f"source {path}: sfda adapts heatmap models, this one has head {source_cfg['head']}")
    checks = {"model": (source_cfg.get("model"), adapted_cfg.get("model")),
              "input_size": (list(source_cfg.get("input_size", [])), list(adapted_cfg.get("input_size", []))),
              "num_keypoints": (source_cfg.get("num_keypoints"), adapted_cfg.get("num_keypoints")),
              "heatmap_size": (source_cfg.get("codec", {}).get("heatmap_size"),
                               adapted_cfg.get("codec", {}).get("heatmap_size"))}
    for key, (theirs, ours) in checks.items():
        if theirs != ours:
            raise ValueError(f"source {path}: {key} {theirs} differs from the adapted network's {ours} "
                             "(adapt with the source's model, input size and keypoint set)")


# -- the method ------------------------------------------------------------------------------------
@register_method
class SFDA(Method):
    """``ctx.model`` is f_in (what the trainer saves and validates); f_tg is what the trainer's optimiser
    trains (:meth:`trainable_modules`); f_sr and both step-A optimisers live here."""

    name = "sfda"
    options = (MethodOption("residual-weight", float, "weight α of the residual loss L_res", kwarg="alpha"),
               MethodOption("beta", float, "weight β of the consistency loss L_cst"),
               MethodOption("gamma", float, "weight γ of information maximisation L_im"),
               MethodOption("ema", float, "EMA momentum of the intermediate (inference) model"),
               MethodOption("tau", float, "temperature τ of the residual softmax"))

    def __init__(self, *, source: str | None = None, alpha: float = 0.7, beta: float = 0.5, gamma: float = 0.85,
                 ema: float = 0.999, tau: float = 1.0, finetune_weight: float = 1.0, contrast_weight: float = 1.0,
                 projection_temperature: float = 1.0, contrast_temperature: float | None = None,
                 regressor: str = "auto", source_lr: float | None = None, intermediate_lr_ratio: float = 0.1,
                 consistency_reference: str = "target", view_rotation: float = 30.0, view_scale: float = 0.25,
                 view_shift: float = 0.05, view_flip: float = 0.5, view_color: float = 0.2, flip_index=None,
                 seed: int | None = None, lr: float | None = None, weight_decay: float | None = None):
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("finetune_weight", finetune_weight),
                            ("contrast_weight", contrast_weight)):
            if not (math.isfinite(float(value)) and value >= 0):
                raise ValueError(f"{name} must be a non-negative weight, got {value!r}")
        if contrast_weight == 0 and beta == 0 and gamma == 0:
            raise ValueError("contrast_weight, beta and gamma are all 0: the target model would learn nothing")
        if not 0.0 <= float(ema) <= 1.0:
            raise ValueError(f"ema must be in [0, 1], got {ema!r}")
        check_positive("tau", tau)
        check_positive("projection_temperature", projection_temperature)
        if contrast_temperature is not None:
            check_positive("contrast_temperature", contrast_temperature)
        if consistency_reference not in CONSISTENCY_REFERENCES:
            raise ValueError(f"consistency_reference must be one of {CONSISTENCY_REFERENCES}, got "
                             f"{consistency_reference!r}")
        if not 0 <= view_color < 1:
            raise ValueError(f"view_color must be in [0, 1), got {view_color!r}")
        check_positive("intermediate_lr_ratio", intermediate_lr_ratio)
        if regressor not in REGRESSORS:
            raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
        sample_view_transforms(np.random.default_rng(0), 1, (4, 4), rotation=view_rotation, scale=view_scale,
                               shift=view_shift, flip_prob=view_flip)  # validates the view options
        self.alpha, self.beta, self.gamma, self.ema = float(alpha), float(beta), float(gamma), float(ema)
        self.finetune_weight, self.contrast_weight = float(finetune_weight), float(contrast_weight)
        self.tau, self.projection_temperature = float(tau), float(projection_temperature)
        self.contrast_temperature = contrast_temperature
        self.consistency_reference = consistency_reference
        self.view = dict(rotation=float(view_rotation), scale=float(view_scale), shift=float(view_shift),
                         flip_prob=float(view_flip))
        self.view_color = float(view_color)
        self.source, self.regressor_option, self.source_lr_option = source, regressor, source_lr
        self.intermediate_lr_ratio = float(intermediate_lr_ratio)
        self.given = {"flip_index": flip_index, "seed": seed, "lr": lr, "weight_decay": weight_decay}

    def select_samples(self, samples: list) -> list:
        """Source-free, label-free: the target labels are withheld (zeroed) before the dataset sees the samples.

        Target data of another keypoint set than the source's (LSP photos for a COCO-17 MoveNet) get the
        source's empty joints: with no label read, nothing needs mapping, and the adapted network stays the
        source's."""
        skeleton, num_keypoints = self.source_keypoints()
        if skeleton is not None and samples and samples[0].skeleton != skeleton:
            log.info("sfda: target keypoint set %s, source %s: the target samples carry the source's %d empty "
                     "joints (labels are withheld anyway)", samples[0].skeleton, skeleton, num_keypoints)
            empty = np.zeros((num_keypoints, 3), np.float32)
            return [dataclasses.replace(s, keypoints=empty.copy(), skeleton=skeleton) for s in samples]
        return [dataclasses.replace(s, keypoints=np.zeros_like(s.keypoints)) for s in samples]

    def source_keypoints(self) -> tuple[str | None, int]:
        """(skeleton name, K) of the source checkpoint's config; (None, 0) when no source is given yet."""
        if not self.source:
            return None, 0
        from posekit.checkpoint import load_checkpoint
        config = load_checkpoint(self.source).get("config") or {}
        return config.get("skeleton"), int(config.get("num_keypoints", 0))

    # -- setup -------------------------------------------------------------------------------------
    def bind(self, ctx: TrainContext) -> None:
        """f_in = ``ctx.model`` loaded with the source; f_sr and f_tg copies of it; the step-A optimisers."""
        if ctx.world_size > 1:
            raise ValueError("sfda runs in one process: its three networks are not wrapped for DDP")
        cfg = ctx.config
        if cfg is not None and cfg.head != "heatmap":
            raise ValueError(f"sfda adapts heatmap models; head {cfg.head!r} is not supported")
        source = self.source or ctx.options.get("init")
        if cfg is not None and not source:
            raise ValueError("sfda adapts a trained source model: give method_kwargs.source (or init) = CKPT")
        super().bind(ctx)
        given, options = self.given, ctx.options
        flip_index = given["flip_index"] if given["flip_index"] is not None else (cfg.flip_index if cfg else None)
        self.flip_index = None if flip_index is None else [int(i) for i in flip_index]
        self.unbiased = bool(ctx.codec.unbiased) if ctx.codec is not None else False
        lr = given["lr"] if given["lr"] is not None else options.get("lr")
        weight_decay = given["weight_decay"] if given["weight_decay"] is not None else options.get("weight_decay")
        self.lr = float(1e-4 if lr is None else lr)
        self.seed = int(given["seed"] if given["seed"] is not None else ctx.seed)
        if source:
            self.load_source(source)
        model = self.model
        self.regressor = resolve_regressor(model, self.regressor_option)
        self.source_model = copy.deepcopy(model)
        self.target_model = copy.deepcopy(model)
        self.split = regressor_split(model, self.regressor)
        self.source_split = regressor_split(self.source_model, self.regressor)
        # f_sr: G frozen, F trained by step A. f_in: G trained by step A, F only by the EMA.
        self.source_model.requires_grad_(False)
        source_head = [p for p in self.source_split.head.parameters()]
        for p in source_head:
            p.requires_grad_(True)
        self.split.head.requires_grad_(False)
        head_ids = {id(p) for p in self.split.head.parameters()}
        features = [p for p in model.parameters() if id(p) not in head_ids]
        weight_decay = 1e-4 if weight_decay is None else float(weight_decay)
        self.source_lr = float(self.lr if self.source_lr_option is None else self.source_lr_option)
        self.intermediate_lr = self.lr * self.intermediate_lr_ratio
        self.source_optimizer = torch.optim.AdamW(source_head, lr=self.source_lr, weight_decay=weight_decay)
        self.intermediate_optimizer = torch.optim.AdamW(features, lr=self.intermediate_lr, weight_decay=weight_decay)
        self.step_a_params = ([(f"source_model.{n}", p) for n, p in self.source_model.named_parameters()
                               if p.requires_grad]
                              + [(n, p) for n, p in model.named_parameters() if id(p) not in head_ids])
        self.iteration = 0
        self.skipped_source_steps = 0

    def load_source(self, path) -> None:
        """Load the source checkpoint into f_in (all of it: the three networks start from it)."""
        from posekit.checkpoint import load_checkpoint
        payload = load_checkpoint(path)
        if "model" not in payload or "config" not in payload:
            raise ValueError(f"source {path}: not a posekit checkpoint (no 'model' / 'config')")
        if self.ctx.config is not None:
            check_source_compatible(payload["config"], self.ctx.config.to_dict(), path)
        weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as err:
            raise ValueError(f"source {path} does not fit the adapted network: {str(err).splitlines()[0]}") from None

    def trainable_modules(self) -> list[nn.Module]:
        """What the trainer's optimiser trains: the target model f_tg."""
        return [self.target_model]

    # -- one iteration -----------------------------------------------------------------------------
    def source_protection_step(self, images: torch.Tensor, progress: StepProgress = StepProgress()) -> dict:
        """Step A: F_sr on w_ft L_ft, G_in on w_ft L_ft + α L_res (both on the trainer's schedule). Returns
        detached logs."""
        if self.finetune_weight == 0 and self.alpha == 0:
            zero = images.new_zeros(())
            return {"loss_ft": zero, "loss_res": zero}
        for group in self.source_optimizer.param_groups:
            group["lr"] = self.source_lr * progress.lr_factor
        for group in self.intermediate_optimizer.param_groups:
            group["lr"] = self.intermediate_lr * progress.lr_factor
        self.source_model.eval()
        self.source_split.head.train()
        self.model.train()
        buffers = BufferSnapshot([self.source_model, self.model])
        with torch.no_grad():
            features = self.source_split.trunk(images)
        # the losses in float32 under bf16 autocast, as every method's
        source_maps = self.source_split.head(features).float()
        intermediate_maps = self.model(images).float()
        loss_ft = finetune_loss(source_maps, intermediate_maps)
        loss_res = residual_kl_loss(source_maps.detach(), intermediate_maps, self.tau) if self.alpha > 0 \
            else intermediate_maps.new_zeros(())
        total = self.finetune_weight * loss_ft + self.alpha * loss_res
        optimizers = (self.source_optimizer, self.intermediate_optimizer)
        refused = guarded_step(total, optimizers, self.step_a_params, buffers,
                               policy=self.ctx.options.get("nan_policy", "raise"),
                               where=f"sfda step A, iteration {self.iteration}")
        if refused:
            self.skipped_source_steps += 1
            log.warning("sfda: skipped step A: %s", refused)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        return {"loss_ft": loss_ft.detach(), "loss_res": loss_res.detach()}

    def second_view(self, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """x' = A(x) for the crop batch: (view (N, 3, H, W), matrices (N, 2, 3) x -> x' pixels, flipped (N,))."""
        n, _, h, w = images.shape
        rng = np.random.default_rng([self.seed % 2**32, self.iteration])
        matrices, flipped = sample_view_transforms(rng, n, (w, h), **self.view)
        inverse = torch.from_numpy(np.stack([invert_affine(m) for m in matrices]))
        view, _ = warp(images.contiguous(), inverse.to(images.device), (w, h))
        if self.view_color > 0:
            a = self.view_color
            contrast = torch.from_numpy(rng.uniform(1 - a, 1 + a, n)).to(view)
            brightness = torch.from_numpy(rng.uniform(-a, a, n)).to(view)
            view = view * contrast[:, None, None, None] + brightness[:, None, None, None]
        return view.contiguous(memory_format=torch.channels_last), matrices, flipped

    def heatmap_scale(self, images: torch.Tensor, heatmaps: torch.Tensor) -> tuple[float, float]:
        (h_in, w_in), (h, w) = images.shape[2:], heatmaps.shape[2:]
        if self.unbiased:
            return (w - 1) / (w_in - 1), (h - 1) / (h_in - 1)
        return w / w_in, h / h_in

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        """batch['image'] (N, 3, H, W): unlabelled target crops -> {'loss': L_tg (trains f_tg), logs}."""
        images = batch["image"]
        logs = self.source_protection_step(images, progress)

        # Step B: target relevance.
        n = images.shape[0]
        want_view = self.beta > 0
        if want_view:
            view, matrices, flipped = self.second_view(images)
            both = self.target_model(torch.cat([images, view.to(images.dtype)])).float()
            target_maps, view_maps = both[:n], both[n:]
        else:
            target_maps = self.target_model(images).float()
        zero = target_maps.new_zeros(())
        intermediate_maps = None
        if self.contrast_weight > 0 or (want_view and self.consistency_reference == "intermediate"):
            with torch.no_grad():
                self.model.eval()
                intermediate_maps = self.model(images).float()
                self.model.train()
        target_probs = spatial_probabilities(target_maps, self.projection_temperature)
        loss_con = zero
        if self.contrast_weight > 0:
            loss_con = pose_contrastive_loss(target_probs,
                                             spatial_probabilities(intermediate_maps, self.projection_temperature),
                                             self.contrast_temperature)
        loss_im = information_maximization_loss(target_probs) if self.gamma > 0 else zero
        loss_cst = zero
        if want_view:
            flip_index = self.flip_index if self.flip_index is not None else list(range(target_maps.shape[1]))
            back, valid = map_to_reference(view_maps, matrices, flipped, flip_index,
                                           self.heatmap_scale(images, target_maps))
            reference = target_maps if self.consistency_reference == "target" else intermediate_maps
            loss_cst = consistency_loss(reference, back, valid)
        loss = self.contrast_weight * loss_con + self.beta * loss_cst + self.gamma * loss_im
        self.iteration += 1
        return {"loss": loss, **logs, "loss_con": loss_con.detach(), "loss_cst": loss_cst.detach(),
                "loss_im": loss_im.detach()}

    def after_step(self, progress: StepProgress = StepProgress()) -> None:
        """f_in ← EMA of f_tg (called by the trainer after its optimiser step)."""
        ema_update(self.model, self.target_model, self.ema)

    # -- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything but f_in (the trainer's ``model``) needed for exact resume."""
        return {"source_model": self.source_model.state_dict(), "target_model": self.target_model.state_dict(),
                "source_optimizer": self.source_optimizer.state_dict(),
                "intermediate_optimizer": self.intermediate_optimizer.state_dict(),
                "iteration": self.iteration, "skipped_source_steps": self.skipped_source_steps}

    def load_state_dict(self, state: dict) -> None:
        self.source_model.load_state_dict(state["source_model"])
        self.target_model.load_state_dict(state["target_model"])
        self.source_optimizer.load_state_dict(state["source_optimizer"])
        self.intermediate_optimizer.load_state_dict(state["intermediate_optimizer"])
        self.iteration = int(state["iteration"])
        self.skipped_source_steps = int(state.get("skipped_source_steps", 0))
