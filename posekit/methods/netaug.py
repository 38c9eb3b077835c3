"""Network Augmentation, NetAug (Cai, Gan, Lin & Han, "Network Augmentation for Tiny Deep Learning", ICLR 2022).

A tiny model under-fits rather than over-fits, so instead of adding noise (data augmentation, dropout) NetAug
adds capacity during training only -- "reverse dropout": the tiny model is trained both on its own and as
the sub-model of wider models that contain it.

1. **Augmented models.** The tiny model ``W_t`` is the trainer's model. An augmented model ``[W_t, W_i]`` is
   the same architecture built ``r`` times wider, every weight tensor of which holds ``W_t``'s tensor in
   its leading slice (the first input and output channels) and new trainable weights ``W_i`` for the added
   channels (starting from the wider model's own posekit initialisation; the official code trains from
   scratch with Kaiming-uniform). Only the largest augmented model (factor ``max(widths)``) owns new
   weights; a smaller one is the leading slice of it, as in the paper, which builds every augmented model
   as a subset of the channels of the largest. Widening keeps the constructor's own rules: ``width`` (the
   channel multiplier) and every integer ``*_channels`` option stated in ``model_kwargs`` (SimpleBaseline's
   ``deconv_channels``) are scaled by ``r``; the input (3 colours) and output (K joints) stay. Any posekit
   model whose constructor takes ``width`` qualifies; :meth:`NetAug.bind` refuses one whose wider tensors
   do not contain the base tensors (checked at ``r = 1`` too: the rule must rebuild the base model exactly).

2. **Loss.** Every step samples ONE augmented width uniformly from ``widths`` (the paper found several per
   step to hurt: the base's share of the supervision shrinks) and minimises

       L = L(W_t) + α · L([W_t, W_i])

   on the same batch, the base loss always included. ``α`` (``aug_weight``) is 1 as in the official training
   loop (the two losses' gradients are summed unweighted). Gradients of the augmented loss reach ``W_t``
   through the shared slices: the tiny model learns to work as part of a wider one.

3. **Widths.** ``widths`` are factors of the base width, > 1. The default (1.8, 2.6) is the official
   MobileNetV2-Tiny / MobileNetV2-0.35 setting (width multipliers [1.0, 1.8, 2.6]: r = 2.6, diversity
   factor s = 2) without its 1.0, which would repeat the base loss. The official code samples a factor per
   layer; a posekit constructor has one ``width``, so here one factor widens every layer of a step.

4. **BatchNorm.** The BN weights and biases are shared like every other tensor (leading slices). The
   running statistics are not: the official code slices one set of buffers for both and afterwards
   re-estimates the base model's statistics on training images, because the augmented passes pollute
   them. Here the augmented models keep no running statistics at all (they only ever run in training mode,
   on batch statistics), so the base's statistics are measured by the base's own passes, as in plain
   training, and need no re-estimation.

5. **Deployment.** The base model is the trained model: ``model.pt`` / ``best.pt`` are plain checkpoints of
   the base architecture with its FLOPs, and validation measures it. The added weights are this method's
   own module (:attr:`NetAug.extra`, trained through :meth:`NetAug.trainable_modules`, saved in ``last.pt``
   by :meth:`NetAug.state_dict` for exact resume); the width drawn at a step depends only on (seed, step).

6. **With FPD** (``teacher`` given; the note's "the two stack", as the paper's KD experiments report): the
   loss of the base and of the augmented model is FPD's, ``α_fpd · MSE(teacher) + (1 - α_fpd) · MSE(labels)``
   (:meth:`posekit.methods.fpd.FPD.labelled_losses`), the teacher run once per step. Without a teacher it is
   the configured head's loss, so any head trains.

Not carried over from the official code: expand-ratio augmentation (MobileNet's inverted-bottleneck width; a
posekit constructor has no such knob), sorting channels by L1 norm every epoch, and stopping the width
augmentation for the second half of training.

    posekit train --method netaug --netaug-widths 1.8,2.6 [--teacher CKPT --alpha 0.5] ...
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call

from posekit.methods.base import ALPHA, TEACHER, MethodOption, StepProgress, TrainContext, register_method
from posekit.methods.fpd import FPD
from posekit.methods.supervised import Supervised

__all__ = ["NetAug", "AddedWeights", "parse_widths", "widened_kwargs", "DEFAULT_WIDTHS"]

#: the official MobileNetV2-Tiny width multipliers [1.0, 1.8, 2.6] without the base's own 1.0
DEFAULT_WIDTHS = (1.8, 2.6)


def parse_widths(text: str | float | Sequence[float]) -> tuple[float, ...]:
    """``"1.8,2.6"`` (or a number, or a sequence) -> ``(1.8, 2.6)``: sorted, distinct, each > 1."""
    values = [float(v) for v in text.split(",") if v.strip()] if isinstance(text, str) else \
        [float(text)] if isinstance(text, (int, float)) else [float(v) for v in text]
    if not values or any(not v > 1.0 for v in values):
        raise ValueError(f"netaug widths are factors of the base width, each > 1, got {text!r}")
    return tuple(sorted(set(values)))


def widened_kwargs(model_kwargs: dict, factor: float) -> dict:
    """The constructor options of the model ``factor`` times wider: ``width`` (1.0 when not stated) and every
    integer ``*_channels`` option scaled; the rest unchanged."""
    out = dict(model_kwargs)
    out["width"] = round(float(model_kwargs.get("width", 1.0)) * factor, 6)  # 1.04, not 1.0400000000000001
    for key, value in model_kwargs.items():
        if key.endswith("_channels") and isinstance(value, int) and not isinstance(value, bool):
            out[key] = int(round(value * factor))
    return out


class AddedWeights(nn.Module):
    """The added weights of the largest augmented model, and the assembly of its tensors around the base's.

    A wide tensor of shape (w_0, ..., w_{d-1}) embeds a base tensor of shape (b_0, ..., b_{d-1}) in its leading
    slice. The rest is stored as one block per widened dimension k: leading base sizes on the dimensions
    before k, the added ``w_k - b_k`` entries on k, the full wide sizes after k. Appending the blocks to the
    base tensor from the last dimension to the first rebuilds the wide tensor, so exactly
    ``numel(wide) - numel(base)`` numbers are stored and nothing of the base is copied.
    """

    def __init__(self, base: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]):
        super().__init__()
        self.blocks = nn.ParameterDict()
        self.layout: dict[str, list[tuple[int, str]]] = {}  # tensor name -> [(dimension, block key)], last dim first
        for name, tensor in wide.items():
            b, w = tuple(base[name].shape), tuple(tensor.shape)
            self.layout[name] = []
            for k in reversed(range(len(w))):
                if w[k] == b[k]:
                    continue
                index = tuple(slice(0, b[j]) if j < k else slice(b[k], None) if j == k else slice(None)
                              for j in range(len(w)))
                key = f"{name.replace('.', ':')}@{k}"  # a parameter name may not hold '.'
                self.blocks[key] = nn.Parameter(tensor[index].detach().clone())
                self.layout[name].append((k, key))

    def assemble(self, name: str, base: torch.Tensor) -> torch.Tensor:
        """The largest augmented model's tensor ``name``: ``base`` in the leading slice, the added blocks around it
        (differentiable in both)."""
        out = base
        for k, key in self.layout[name]:
            out = torch.cat([out, self.blocks[key].to(base.dtype)], dim=k)
        return out


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _not_a_leading_slice(inner: dict[str, tuple], outer: dict[str, tuple]) -> str | None:
    """Why the tensors ``inner`` (name -> shape) are not the leading slices of ``outer``'s, or None."""
    if inner.keys() != outer.keys():
        return f"other tensors: {sorted(set(inner) ^ set(outer))[:4]}"
    for name, shape in inner.items():
        if len(shape) != len(outer[name]) or any(i > o for i, o in zip(shape, outer[name])):
            return f"{name} is {shape} in one, {outer[name]} in the other"
    return None


class _AllStages(nn.Module):
    """``forward`` = the model's ``forward_all`` (every supervised stage), for ``functional_call``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_all(x)


def _structure_only(model: nn.Module, device) -> nn.Module:
    """``model`` as an architecture to call with assembled tensors: BatchNorm without running statistics
    (batch statistics always: see 4. in the module docstring), parameters on the meta device (never used,
    no memory), other buffers (fixed input scalings) on ``device``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
            raise ValueError(f"NetAug: {type(m).__name__} normalises over all channels, so the added channels would "
                             "change the base channels' outputs: the base is no sub-model of the wider one")
        for key, p in m._parameters.items():
            if p is not None:
                m._parameters[key] = nn.Parameter(p.detach().to("meta"), requires_grad=False)
        for key, b in m._buffers.items():
            if b is not None:
                m._buffers[key] = b.to(device)
    return _AllStages(model.train())


@register_method
class NetAug(Supervised):
    name = "netaug"
    options = (MethodOption("netaug-widths", parse_widths, "augmented widths as factors of the base width, "
                            "one drawn per step (comma-separated, each > 1)", kwarg="widths"),
               MethodOption("netaug-weight", float, "weight α of the augmented model's loss", kwarg="aug_weight"),
               TEACHER, ALPHA)

    def __init__(self, *, widths: str | Sequence[float] = DEFAULT_WIDTHS, aug_weight: float = 1.0,
                 teacher: str | None = None, alpha: float = 0.5):
        self.widths = parse_widths(widths)
        if not aug_weight >= 0:
            raise ValueError(f"aug_weight must be >= 0, got {aug_weight}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.aug_weight, self.teacher_path, self.alpha = float(aug_weight), teacher, float(alpha)
        # FPD distils heatmaps (heatmap MSE on the labels too); alone, NetAug trains with the configured head loss
        self.uses_head_loss = teacher is None

    def bind(self, ctx: TrainContext) -> None:
        if ctx.world_size > 1:
            raise ValueError("NetAug does not support distributed training (its added weights are not wrapped in DDP)")
        if ctx.config is None:
            raise ValueError("NetAug builds the wider versions of the model from its config: bind it with config=...")
        super().bind(ctx)
        self.fpd = None
        if self.teacher_path is not None:
            self.fpd = FPD(teacher=self.teacher_path, alpha=self.alpha)
            self.fpd.bind(ctx)
        config, largest = ctx.config, self.widths[-1]
        # the added weights start as the widest model's own initialisation, the same for every run of a seed
        # (and the global random state, which the trainer seeded, is left as it was)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed + 7919)
            same = self.build_wide(config, 1.0)
            models = {factor: self.build_wide(config, factor) for factor in self.widths}
        # the widening rule at factor 1 must rebuild the base model exactly (else its width is not stated)
        if _shapes(same) != _shapes(ctx.model):
            raise ValueError(f"NetAug: {config.model!r} with model_kwargs {config.model_kwargs} (width "
                             f"{config.model_kwargs.get('width', 1.0)}) is not the trained model; state its `width` "
                             "(and channel options) in model_kwargs")
        for what, inner in {"the base model": ctx.model, **{f"the {f}x model": models[f] for f in self.widths[:-1]}
                            }.items():
            problem = _not_a_leading_slice(_shapes(inner), _shapes(models[largest]))
            if problem:
                raise ValueError(f"NetAug: {what} is no leading slice of the {largest}x one ({problem})")
        self.extra = AddedWeights(dict(ctx.model.named_parameters()),
                                      dict(models[largest].named_parameters())).to(ctx.device)
        self.augmented = {factor: (_structure_only(model, ctx.device), _shapes(model))
                          for factor, model in models.items()}

    @staticmethod
    def build_wide(config, factor: float) -> nn.Module:
        try:
            return config.replace(model_kwargs=widened_kwargs(config.model_kwargs, factor)).build_model()
        except TypeError as err:
            raise ValueError(f"NetAug widens models whose constructor takes `width`; {config.model!r}: {err}") from None

    def trainable_modules(self) -> list[nn.Module]:
        return [*super().trainable_modules(), self.extra]

    def sample_width(self, progress: StepProgress) -> float:
        """The augmented width of this step: uniform over ``widths``, a function of (seed, step) only."""
        rng = np.random.default_rng([self.ctx.seed, progress.step])
        return self.widths[int(rng.integers(len(self.widths)))]

    def augmented_weights(self, factor: float) -> dict[str, torch.Tensor]:
        """Every parameter of the ``factor`` x model: the leading slice of the largest one's assembled tensor."""
        _, shapes = self.augmented[factor]
        tensors = {}
        for name, base in self.model.named_parameters():
            full = self.extra.assemble(name, base)
            tensors[f"model.{name}"] = full[tuple(slice(0, s) for s in shapes[name])]
        return tensors

    def forward_augmented(self, images: torch.Tensor, factor: float) -> list[torch.Tensor]:
        """Every stage's output of the ``factor`` x augmented model on ``images``."""
        structure, _ = self.augmented[factor]
        return functional_call(structure, self.augmented_weights(factor), (images,))

    def losses(self, stages: list[torch.Tensor], batch: dict, teacher: torch.Tensor | None) -> dict:
        """The loss of one model (base or augmented): FPD's with a teacher, else the head's."""
        if self.fpd is None:
            return self.supervised_losses(stages, batch)
        return self.fpd.labelled_losses(stages, batch, teacher)

    def training_step(self, batch: dict, progress: StepProgress = StepProgress()) -> dict:
        images = batch["image"]
        teacher = self.fpd.teacher_heatmaps(images) if self.fpd is not None else None
        factor = self.sample_width(progress)
        base = self.losses(self.train_model.forward_all(images), batch, teacher)
        aug = self.losses(self.forward_augmented(images, factor), batch, teacher)
        logs = {f"{k}_base": v.detach() for k, v in base.items()} | {f"{k}_aug": v.detach() for k, v in aug.items()}
        return {"loss": base["loss"] + self.aug_weight * aug["loss"], **logs, "aug_width": factor}

    def state_dict(self) -> dict:
        return {"netaug": self.extra.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "netaug" in state:
            self.extra.load_state_dict(state["netaug"])
