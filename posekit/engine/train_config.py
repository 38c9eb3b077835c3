"""The training options of a run (:class:`TrainConfig`) and what follows from them alone.

Target representation: the ``head`` option picks the network's output, the codec and the loss together
(mmpose style: the codec encodes targets and decodes outputs, the head module makes the raw output, the
method's loss matches the head), for any registered backbone:

* ``heatmap`` (default): the backbone's heatmaps, HeatmapCodec (``sigma``, ``unbiased``, ``decode``),
  heatmap MSE;
* ``dsnt``: the same maps read as logits, IntegralCodec (soft-argmax), loss ``coord`` (``"l2"`` Euclidean
  by default, ``"l1"``, ``"mse"``) + ``js_weight`` x the JS divergence regulariser (``js_sigma`` px);
* ``regression``: global pool + linear -> (N, K, 2), RegressionCodec, loss ``coord`` (``"l1"`` default,
  ``"l2"``, ``"mse"``);
* ``rle``: the same head with raw sigmas -> (N, K, 4), RegressionCodec, RLE log-likelihood (``rle``: a
  dict of :class:`~posekit.codecs.rle.RLELoss` options).

Coordinate heads also take ``bone_loss`` ("none" | "all" | "limbs"), ``bone_weight`` and ``awl``
(see :func:`posekit.losses.build_head_loss`); ``head_kwargs`` go to the head module and ``codec_kwargs``
to the codec (e.g. ``{"normalized": false}`` for pixel-unit regression targets, ``{"beta": 2.0}`` for DSNT).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from posekit.codecs import HeatmapCodec, IntegralCodec, RegressionCodec
from posekit.models.heads import head_type
from posekit.skeletons import SKELETONS, get_skeleton

__all__ = ["TrainConfig", "build_train_codec", "skeleton_of", "default_workers"]


def default_workers() -> int:
    """DataLoader workers when a config names none: 0 (load in the training process) on a machine with up to 2
    cores, else half the cores (at most 4).

    Measured on 2 cores (benchmarks/results/train_speed.md, compact model, crop cache on, 2 training threads): in-process
    loading kept 0.98 (fp32) / 1.02 (bf16) of the model-only rate, one worker 0.94 / 0.58 and two workers about
    0.5: a worker process is a third busy thread next to the two training threads, and every time it preempts one
    of them the other waits for it; with the crop cache an item costs well under a millisecond, less than that."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 2)


@dataclass
class TrainConfig:
    train: str                                   # data spec, e.g. "lsp:../shared/datasets/lspet@train"
    val: str | None = None
    out: str = "runs/train"
    model: str = "simplebaseline_r18"
    model_kwargs: dict = field(default_factory=dict)
    input_size: tuple[int, int] = (128, 128)     # (W, H)
    sigma: float = 2.0
    unbiased: bool = False
    decode: str = "dark"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    final_lr_ratio: float = 0.01
    workers: int = field(default_factory=default_workers)  # DataLoader worker processes (0: load in the training process)
    threads: int | None = None                   # torch intra-op threads (None: torch's default, all cores)
    seed: int = 0
    device: str = "cpu"
    amp: bool = False                            # mixed precision: bf16 autocast on the CPU (fp32 weights)
    crop_cache: bool = True                      # warp training crops from a decoded-once cache (posekit.data.crop_cache)
    cache_dir: str | None = None                 # where the crop cache lives (None: $POSEKIT_CACHE or ~/.cache/posekit/crops)
    channels_last: bool = True
    augment: dict = field(default_factory=dict)
    method: str = "supervised"
    method_kwargs: dict = field(default_factory=dict)
    init: str | None = None                      # checkpoint to start from (e.g. synthetic pretraining)
    nan_policy: str = "raise"                    # "raise" | "skip" a non-finite loss or gradient
    val_every: int = 1
    max_iters_per_epoch: int | None = None
    progress: bool = True
    skip_invalid: bool = False
    head: str = "heatmap"                        # "heatmap" | "dsnt" | "regression" | "rle" (see module doc)
    head_kwargs: dict = field(default_factory=dict)   # options of the head module (regression, rle)
    codec_kwargs: dict = field(default_factory=dict)  # extra codec options (e.g. {"normalized": false})
    loss: dict = field(default_factory=dict)     # head loss options, e.g. {"coord": "l1", "bone_loss": "limbs"}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        d = dict(d)
        if "input_size" in d:
            d["input_size"] = tuple(d["input_size"])
        return cls(**d)


def skeleton_of(samples) -> tuple[str, list[int]]:
    name = samples[0].skeleton
    if name in SKELETONS:
        return name, get_skeleton(name).flip_index.tolist()
    return name, list(range(samples[0].keypoints.shape[0]))  # unknown keypoint set: no flip pairs known


def build_train_codec(cfg: TrainConfig):
    """The codec of ``cfg.head``: heatmap -> HeatmapCodec, dsnt -> IntegralCodec, regression/rle -> RegressionCodec."""
    head = head_type(cfg.head)
    extra = dict(cfg.codec_kwargs)
    if head == "rle" and not extra.get("normalized", True):
        raise ValueError("the rle head needs normalised coordinates (its sigmas live in (0, 1)): "
                         "drop codec_kwargs normalized=false")
    try:
        if head == "heatmap":
            return HeatmapCodec(input_size=cfg.input_size, sigma=cfg.sigma, unbiased=cfg.unbiased, decode=cfg.decode,
                                **extra)
        if head == "dsnt":
            return IntegralCodec(input_size=cfg.input_size, **extra)
        return RegressionCodec(input_size=cfg.input_size, **extra)
    except TypeError as err:  # an unknown or duplicated codec_kwargs key
        raise ValueError(f"head {head!r}: bad codec_kwargs {extra}: {err}") from None
