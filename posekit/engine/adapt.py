"""Adapting a trained model: the training options that rebuild a source checkpoint's network.

An adaptation run is an ordinary training run whose network, codec and initial weights are the source
checkpoint's; :func:`source_settings` gives those options. The adaptation method itself says how it is run
(SFDA: :func:`posekit.methods.sfda.adapt_config`).
"""
from __future__ import annotations

from posekit.config import PoseConfig
from posekit.checkpoint import load_checkpoint


def source_settings(source) -> dict:
    """The TrainConfig options that rebuild a source checkpoint's heatmap network and codec."""
    config = load_checkpoint(source).get("config")
    if not isinstance(config, dict) or "model" not in config or "codec" not in config:
        raise ValueError(f"source {source}: not a posekit checkpoint (no model/codec config)")
    pose = PoseConfig.from_dict(config)
    if pose.head != "heatmap":
        raise ValueError(f"source {source}: adaptation needs a heatmap model, this one has head {pose.head!r}")
    codec = pose.codec
    if codec.get("type", "HeatmapCodec") != "HeatmapCodec":
        raise ValueError(f"source {source}: adaptation needs a HeatmapCodec, got {codec.get('type')}")
    return {"model": pose.model, "model_kwargs": dict(pose.model_kwargs), "input_size": pose.input_size,
            "sigma": codec.get("sigma", 2.0), "unbiased": codec.get("unbiased", False),
            "decode": codec.get("decode", "dark")}
