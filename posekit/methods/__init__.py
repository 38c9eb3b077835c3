"""Training methods, one file per paper. Each is a :class:`~posekit.methods.base.Method` registered in
:data:`METHODS`; the trainer (:mod:`posekit.engine.trainer`) is handed an instance and knows no method.

    from posekit.methods import build_trainer
    build_trainer(TrainConfig(train=..., method="fpd", method_kwargs={"teacher": "t.pt"})).fit()

SCAI (:mod:`posekit.methods.scai`) and AdaBN (:mod:`posekit.methods.adabn`) work on a trained model outside
the trainer and are not registered here.
"""
from __future__ import annotations

from posekit.methods import advmix, fpd, netaug, okdhp, sfda, supervised  # noqa: F401  (each registers its method)
from posekit.methods.base import METHODS, Method, MethodOption, StepProgress, TrainContext

__all__ = ["METHODS", "Method", "MethodOption", "StepProgress", "TrainContext", "MethodOptionError",
           "build_method", "method_for", "build_trainer"]


class MethodOptionError(TypeError, ValueError):
    """A method built with an option it does not have (or without a required one)."""


def build_method(name: str, **options) -> Method:
    """The registered method ``name`` with its ``options`` (unbound: the trainer binds it)."""
    cls = METHODS.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise MethodOptionError(f"method {name!r}: {err}") from None


def method_for(cfg) -> Method:
    """The method a :class:`~posekit.engine.trainer.TrainConfig` names, with its ``method_kwargs``."""
    return build_method(cfg.method, **cfg.method_kwargs)


def build_trainer(cfg, *, resume: bool = False, overwrite: bool = False):
    """``Trainer(cfg, method_for(cfg), resume=resume, overwrite=overwrite)``: a trainer for the method the config
    names (``overwrite``: replace a previous run in ``cfg.out`` instead of refusing to start)."""
    from posekit.engine.trainer import Trainer
    return Trainer(cfg, method_for(cfg), resume=resume, overwrite=overwrite)
