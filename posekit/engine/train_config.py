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
import math
import numbers
import typing
import os
from dataclasses import dataclass, field

from posekit.codecs import HeatmapCodec, IntegralCodec, RegressionCodec
from posekit.config import MAX_INPUT_SIDE
from posekit.data.transforms import AugmentConfig
from posekit.models.heads import head_type
from posekit.skeletons import SKELETONS, get_skeleton
from posekit.training.guard import NAN_POLICIES

__all__ = ["TrainConfig", "TrainOptionError", "build_train_codec", "check_train_options", "skeleton_of",
           "default_workers"]


def default_workers() -> int:
    """DataLoader workers when a config names none: 0 (load in the training process) on a machine with up to 2
    cores, else half the cores (at most 4).

    On 2 cores a worker process is a third busy thread next to the two training threads, and every time it
    preempts one of them the other waits for it; in-process loading costs each step the items' preparation
    (about 0.5 ms of CPU per 128-px item with the crop cache, benchmarks/results/loader_speed.md, on the idle torch
    threads too: ``loader_threads``) and no more.
    Measured end to end / model-only: benchmarks/results/train_speed.md."""
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
    loader_threads: int | None = None            # threads making each batch's crops (None: as many as torch's)
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

    max_skipped_share: float = 0.05              # --nan-policy skip: stop once more of the run's steps were skipped

    def __post_init__(self):
        check_train_options(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        if not isinstance(d, dict):
            raise TrainOptionError(None, f"training options must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise TrainOptionError(sorted(unknown)[0], f"unknown training options: {sorted(unknown)}")
        if "train" not in d:
            raise TrainOptionError("train", "the training data is not given (option 'train', flag --data)")
        return cls(**d)


class TrainOptionError(ValueError):
    """A training option of the wrong kind or out of range; ``option`` names it (None: the whole config)."""

    def __init__(self, option, what: str):
        self.option = option
        super().__init__(what)


#: the allowed range of numeric options: (lowest, highest), None = unbounded; ints are checked as ints
OPTION_RANGES = {"epochs": (1, None), "batch_size": (1, None), "lr": (0, None), "weight_decay": (0, None),
                 "warmup_iters": (0, None), "final_lr_ratio": (0, 1), "workers": (0, None), "threads": (1, None),
                 "loader_threads": (1, None),
                 "val_every": (1, None), "max_iters_per_epoch": (1, None), "sigma": (0, None),
                 "max_skipped_share": (0, 1)}
#: options that must be strictly above their lowest value
EXCLUSIVE_LOW = {"lr", "sigma"}


def _kind_error(name: str, value, kind: str) -> TrainOptionError:
    return TrainOptionError(name.split(".")[0], f"training option {name!r} must be {kind}, got {type(value).__name__} {value!r}")


def _check_kind(name: str, value, hint) -> None:
    """``value`` is of the annotated type ``hint`` (``int``, ``float``, ``bool``, ``str``, ``dict``, ``X | None``);
    bools are not numbers and strings are not numbers (the readers' rule, for option files too)."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        ok, kind = isinstance(value, bool), "true or false"
    elif hint is int:
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif hint is float:
        ok, kind = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value), "a number"
    elif typing.get_origin(hint) is tuple:
        return
    else:
        ok, kind = isinstance(value, hint), {str: "a string", dict: "a JSON object"}.get(hint, hint.__name__)
    if not ok:
        raise _kind_error(name, value, kind)


def _check_range(name: str, value) -> None:
    low, high = OPTION_RANGES[name]
    if value is None:
        return
    if name in EXCLUSIVE_LOW and not value > low:
        raise TrainOptionError(name, f"training option {name!r} must be above {low}, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"between {low} and {high}"
        raise TrainOptionError(name, f"training option {name!r} must be {span}, got {value!r}")


def _input_size(value) -> tuple[int, int]:
    """``(W, H)`` from a pair (or one side for both) of positive integers up to :data:`MAX_INPUT_SIDE`."""
    pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIDE for v in pair)):
        raise TrainOptionError("input_size", f"training option 'input_size' must be [W, H], two integers from 1 to "
                                             f"{MAX_INPUT_SIDE}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_augment(augment: dict) -> None:
    fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    for key, value in augment.items():
        if key not in fields:
            raise TrainOptionError("augment", f"unknown augmentation option {key!r}; known: {', '.join(sorted(fields))}")
        _check_kind(f"augment.{key}", value, float)


def check_train_options(cfg: "TrainConfig") -> None:
    """One rule for every option, from the annotations of :class:`TrainConfig` plus :data:`OPTION_RANGES`: a
    config file's ``"epochs": "three"``, ``input_size: 0`` or ``batch_size: 0`` fails here, naming the option,
    before any data is read or any file of the run folder is touched."""
    hints = typing.get_type_hints(TrainConfig)
    cfg.input_size = _input_size(cfg.input_size)
    for f in dataclasses.fields(cfg):
        if f.name != "input_size":
            _check_kind(f.name, getattr(cfg, f.name), hints[f.name])
        if f.name in OPTION_RANGES:
            _check_range(f.name, getattr(cfg, f.name))
    if cfg.nan_policy not in NAN_POLICIES:
        raise TrainOptionError("nan_policy", f"training option 'nan_policy' must be one of {NAN_POLICIES}, "
                                             f"got {cfg.nan_policy!r}")
    _check_augment(cfg.augment)


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
