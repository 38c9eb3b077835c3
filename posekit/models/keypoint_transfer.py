"""Move a trained model to another keypoint set: every per-joint output channel is taken from the joint of
the same name, and a joint the source lacks starts from the mean of its stand-ins (e.g. the neck from the
two shoulders, the head top from the face joints).

Only the final per-joint convolutions change (every :class:`~posekit.models.heads.HeatmapHead` in the
model, i.e. the layer whose output channels are the joints); the rest of the state dict passes through.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from posekit.skeletons import Skeleton

from .heads import HeatmapHead

__all__ = ["STAND_INS", "joint_sources", "keypoint_output_layers", "transfer_keypoint_state"]

#: joint name -> joints of other keypoint sets whose mean gives its first values
STAND_INS: dict[str, tuple[str, ...]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "thorax": ("left_shoulder", "right_shoulder"),
    "upper_neck": ("left_shoulder", "right_shoulder", "nose"),
    "head_top": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    "pelvis": ("left_hip", "right_hip"),
}


def joint_sources(source: Skeleton, target: Skeleton) -> list[tuple[int, ...]]:
    """For each joint of ``target``, the ``source`` joints whose channels it starts from (one joint of the
    same name, else its present stand-ins). Raises ValueError for a target joint with neither."""
    sources = []
    for name in target.keypoints:
        if name in source.keypoints:
            sources.append((source.index(name),))
            continue
        stand_ins = tuple(source.index(j) for j in STAND_INS.get(name, ()) if j in source.keypoints)
        if not stand_ins:
            raise ValueError(f"joint {name!r} of {target.name} has no counterpart or stand-in in {source.name}")
        sources.append(stand_ins)
    return sources


def keypoint_output_layers(model: nn.Module) -> list[str]:
    """Names of the per-joint output convolutions (every HeatmapHead) of ``model``."""
    names = [name for name, module in model.named_modules() if isinstance(module, HeatmapHead)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no HeatmapHead: no per-joint output layer to transfer")
    return names


def transfer_keypoint_state(state: dict[str, torch.Tensor], model: nn.Module, source: Skeleton,
                            target: Skeleton) -> dict[str, torch.Tensor]:
    """``state`` of a network trained on ``source`` joints -> a state dict for ``model`` (the same network
    built for ``target`` joints): output channel k of each HeatmapHead = mean over ``joint_sources``' rows.

    state: weights ``(K_src, C, 1, 1)`` and biases ``(K_src,)`` at each layer name; returns a new dict
    (the input is not changed) that ``model.load_state_dict(..., strict=False)`` accepts for those layers.
    """
    sources = joint_sources(source, target)
    out = dict(state)
    for layer in keypoint_output_layers(model):
        for param in ("weight", "bias"):
            key = f"{layer}.{param}"
            if key not in state:
                continue
            rows = state[key]
            if rows.shape[0] != source.num_keypoints:
                raise ValueError(f"{key}: {rows.shape[0]} output channels, but skeleton {source.name} has "
                                 f"{source.num_keypoints} joints")
            out[key] = torch.stack([rows[list(idx)].mean(dim=0) for idx in sources])
    return out
