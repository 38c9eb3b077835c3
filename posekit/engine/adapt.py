"""Domain adaptation of a trained pose model to unlabelled target data, through the ordinary trainer.

``adapt_config`` turns (source checkpoint, target data spec, options) into a
:class:`~posekit.engine.trainer.TrainConfig` that rebuilds the source's network (model, kwargs, input size,
heatmap codec), starts from its weights (``init``) and trains with an adaptation method (``sfda``:
:mod:`posekit.methods.sfda`) on the target spec, whose labels the method withholds. The run folder is an
ordinary one: ``model.pt`` / ``best.pt`` hold the adapted inference model (loadable by
``Predictor.from_checkpoint``), ``last.pt`` everything for ``--resume``.

    from posekit.engine.adapt import adapt_config, run_adapt
    cfg = adapt_config("runs/synth/model.pt", "lsp:../shared/datasets/lspet@train", "runs/sfda", epochs=5)
    run_adapt(cfg)
"""
from __future__ import annotations

from posekit.checkpoint import load_checkpoint

#: SFDA defaults (the paper's loss weights and EMA momentum; tau as in the authors' code)
SFDA_DEFAULTS = {"alpha": 0.7, "beta": 0.5, "gamma": 0.85, "ema": 0.999, "tau": 1.0}


def source_settings(source) -> dict:
    """The TrainConfig options that rebuild a source checkpoint's network and codec."""
    payload = load_checkpoint(source)
    config = payload.get("config")
    if not isinstance(config, dict) or "model" not in config or "codec" not in config:
        raise ValueError(f"source {source}: not a posekit checkpoint (no model/codec config)")
    head = config.get("head", {}).get("type", "heatmap")
    if head != "heatmap":
        raise ValueError(f"source {source}: adaptation needs a heatmap model, this one has head {head!r}")
    codec = config["codec"]
    if codec.get("type", "HeatmapCodec") != "HeatmapCodec":
        raise ValueError(f"source {source}: adaptation needs a HeatmapCodec, got {codec.get('type')}")
    kwargs = {k: v for k, v in config["model"].get("kwargs", {}).items() if k != "num_keypoints"}
    return {"model": config["model"]["name"], "model_kwargs": kwargs, "input_size": tuple(config["input_size"]),
            "sigma": codec.get("sigma", 2.0), "unbiased": codec.get("unbiased", False),
            "decode": codec.get("decode", "dark")}


def adapt_config(source, target: str, out, *, method: str = "sfda", val: str | None = None, epochs: int = 5,
                 batch_size: int = 32, lr: float = 1e-4, seed: int = 0, workers: int = 2,
                 max_iters_per_epoch: int | None = None, warmup_iters: int = 0, progress: bool = True,
                 augment: dict | None = None, val_every: int = 1, nan_policy: str = "raise",
                 method_kwargs: dict | None = None, **loss_options):
    """A TrainConfig adapting ``source`` to the unlabelled ``target`` spec.

    ``loss_options`` (sfda: ``alpha``, ``beta``, ``gamma``, ``ema``, ``tau``; ``None`` = the default) and
    ``method_kwargs`` (any other option of the method, e.g. ``{"regressor": "head"}``) go to the method.
    The learning rate is the target model's (the authors use Adam at 1e-4); warm-up defaults to none
    (the network is already trained) and the trainer's cosine decay applies.
    """
    from posekit.engine.trainer import TrainConfig
    if method != "sfda":
        raise ValueError(f"adapt_config builds sfda runs; got method {method!r}")
    unknown = set(loss_options) - set(SFDA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown sfda options {sorted(unknown)}; known: {sorted(SFDA_DEFAULTS)} "
                         "(others go in method_kwargs)")
    kwargs = {**SFDA_DEFAULTS, **{k: v for k, v in loss_options.items() if v is not None},
              **(method_kwargs or {}), "source": str(source)}
    settings = source_settings(source)
    return TrainConfig(train=target, val=val, out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                       workers=workers, max_iters_per_epoch=max_iters_per_epoch, warmup_iters=warmup_iters,
                       progress=progress, augment=dict(augment or {}), val_every=val_every, nan_policy=nan_policy,
                       method=method, method_kwargs=kwargs, init=str(source), **settings)


def run_adapt(cfg, *, resume: bool = False) -> dict:
    """Train the adaptation run; returns the last epoch's log record."""
    from posekit.engine.trainer import Trainer
    return Trainer(cfg, resume=resume).fit()
