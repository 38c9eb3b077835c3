"""posekit: fast, robust and adaptable 2D human pose estimation on the CPU.

The names below are imported on first use, so ``import posekit`` stays cheap (no torch until needed).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Predictor": "posekit.inference.predictor",
    "build_model": "posekit.models",
    "list_models": "posekit.models",
    "get_skeleton": "posekit.skeletons",
    "load_samples": "posekit.data.formats",
    "evaluate": "posekit.engine.evaluate",
    "Trainer": "posekit.engine.trainer",
    "TrainConfig": "posekit.engine.trainer",
    "build_trainer": "posekit.methods",
    "generate_dataset": "posekit.data.synth",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'posekit' has no attribute {name!r}")
