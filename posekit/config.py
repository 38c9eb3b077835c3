"""The model config a checkpoint carries: one typed, versioned owner, written once and read once.

A checkpoint is ``{"model": state_dict, "config": PoseConfig.to_dict(), ...}``. ``PoseConfig`` knows
everything needed to rebuild the network and its codec and to crop a person the way the model was
trained: the registered model and its kwargs, the head, the codec config, the input size, the keypoint
set (skeleton name and flip index) and the box padding. Version-1 configs (every checkpoint written
before the version field existed, the zoo included) load unchanged.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PoseConfig", "DEFAULT_PADDING", "CONFIG_VERSION"]

#: a person box is grown by this factor before cropping (SimpleBaseline / mmpose top-down convention)
DEFAULT_PADDING = 1.25
#: bumped when the stored layout changes; from_dict upgrades older layouts
CONFIG_VERSION = 2
#: the largest model input side a config may state (far beyond any pose model; a typo fails when loaded)
MAX_INPUT_SIDE = 4096


@dataclass(frozen=True)
class PoseConfig:
    model: str                                   # registered model name
    model_kwargs: dict                           # its keyword arguments, without num_keypoints
    num_keypoints: int
    codec: dict                                  # codec.to_config()
    input_size: tuple[int, int]                  # (W, H)
    skeleton: str                                # "lsp" | "coco" | "mpii" | a dataset's own name
    flip_index: tuple[int, ...]
    head: str = "heatmap"                        # a registered head type (posekit.models.heads.HEADS)
    head_kwargs: dict = field(default_factory=dict)
    padding: float = DEFAULT_PADDING
    extra: dict = field(default_factory=dict)    # JSON-able provenance: the training options, import source, ...

    def __post_init__(self):
        # one canonical form whatever the caller passed (lists or tuples, numpy ints, ...), so two configs
        # of the same model compare equal and to_dict() is JSON-able
        def put(name, value):
            object.__setattr__(self, name, value)

        put("num_keypoints", int(self.num_keypoints))
        put("input_size", tuple(int(v) for v in self.input_size))
        put("flip_index", tuple(int(i) for i in self.flip_index))
        put("padding", float(self.padding))
        for name in ("model_kwargs", "codec", "head_kwargs", "extra"):
            put(name, dict(getattr(self, name) or {}))
        if self.num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {self.num_keypoints}")
        if len(self.input_size) != 2 or not all(1 <= side <= MAX_INPUT_SIDE for side in self.input_size):
            raise ValueError(f"input_size must be (W, H), two sides from 1 to {MAX_INPUT_SIDE}, got {self.input_size}")
        if len(self.flip_index) != self.num_keypoints:
            raise ValueError(f"flip_index has {len(self.flip_index)} entries for {self.num_keypoints} keypoints")
        if sorted(self.flip_index) != list(range(self.num_keypoints)):
            # flip fusion gathers the flipped view's joints by this index: it must be a permutation of 0..K-1
            wrong = [i for i in self.flip_index if not 0 <= i < self.num_keypoints] or self.flip_index
            raise ValueError(f"flip_index must be a permutation of 0..{self.num_keypoints - 1}, got {list(wrong)[:8]}"
                             f"{' (out of range)' if wrong != self.flip_index else ' (repeats a joint)'}")
        if not (math.isfinite(self.padding) and self.padding > 0):
            raise ValueError(f"padding must be a positive number, got {self.padding}")
        if "num_keypoints" in self.model_kwargs:
            raise ValueError("model_kwargs must not repeat num_keypoints (it is its own field)")

    # -- building ----------------------------------------------------------------------------------
    def build_model(self):
        """The untrained network this config describes (load the checkpoint's state dict into it)."""
        from posekit.models.heads import build_pose_model
        return build_pose_model(self.model, self.num_keypoints, dict(self.model_kwargs), self.head,
                                dict(self.head_kwargs) or None)

    def build_codec(self, **overrides):
        """The codec, with optional overrides of its config (e.g. ``decode="argmax"``)."""
        from posekit.codecs import build_codec
        return build_codec({**self.codec, **overrides})

    def replace(self, **changes) -> "PoseConfig":
        from dataclasses import replace
        return replace(self, **changes)

    # -- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON-able layout stored in checkpoints (version 2; readable by posekit's version-1 code)."""
        config = {"version": CONFIG_VERSION,
                  "model": {"name": self.model, "kwargs": {"num_keypoints": self.num_keypoints, **self.model_kwargs}},
                  "codec": copy.deepcopy(self.codec), "input_size": list(self.input_size),
                  "num_keypoints": self.num_keypoints, "skeleton": self.skeleton,
                  "flip_index": list(self.flip_index), "padding": self.padding}
        if self.head != "heatmap":
            config["head"] = {"type": self.head, "kwargs": copy.deepcopy(self.head_kwargs)}
        for key, value in self.extra.items():
            config.setdefault(key, copy.deepcopy(value))
        return json.loads(json.dumps(config))

    @classmethod
    def from_dict(cls, config: dict) -> "PoseConfig":
        """Read a stored config (any version); a missing or malformed field is a ValueError naming it."""
        if isinstance(config, PoseConfig):
            return config
        if not isinstance(config, dict):
            raise ValueError(f"checkpoint config must be a dict, got {type(config).__name__}")
        version = config.get("version", 1)
        if version not in (1, CONFIG_VERSION):
            raise ValueError(f"checkpoint config version {version!r} is newer than this posekit understands "
                             f"({CONFIG_VERSION})")
        try:
            kwargs = dict(config["model"]["kwargs"])
            num_keypoints = int(kwargs.pop("num_keypoints", config.get("num_keypoints", 17)))
            head = config.get("head") or {}
            known = {"version", "model", "codec", "input_size", "num_keypoints", "skeleton", "flip_index",
                     "padding", "head"}
            return cls(model=str(config["model"]["name"]), model_kwargs=kwargs, num_keypoints=num_keypoints,
                       codec=dict(config["codec"]), input_size=tuple(config["input_size"]),
                       skeleton=str(config.get("skeleton", "unknown")),
                       flip_index=tuple(int(i) for i in config.get("flip_index", range(num_keypoints))),
                       head=str(head.get("type", "heatmap")), head_kwargs=dict(head.get("kwargs") or {}),
                       padding=float(config.get("padding", DEFAULT_PADDING)),
                       extra={k: v for k, v in config.items() if k not in known})
        except KeyError as err:
            raise ValueError(f"checkpoint config lacks {err} (it must say the model, its codec and its input size)") \
                from None
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"checkpoint config is malformed ({type(err).__name__}: {err})") from None
