"""Training methods, one file per paper. Each exposes ``training_step(batch) -> {'loss': ..}``."""
from __future__ import annotations

METHODS = {
    "supervised": "posekit.methods.supervised:Supervised",
    "fpd": "posekit.methods.fpd:FPD",
    "okdhp": "posekit.methods.okdhp:OKDHP",
    "advmix": "posekit.methods.advmix:AdvMix",
    "sfda": "posekit.methods.sfda:SFDA",
}


def build_method(name: str, model, **kwargs):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    import importlib
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **kwargs)
