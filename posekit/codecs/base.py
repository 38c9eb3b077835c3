"""The codec contract: keypoints in the model-input frame <-> training targets and model outputs.

Every codec subclasses :class:`Codec` and registers in :data:`CODECS` under its class name, which its config
stores as ``"type"``::

    @CODECS.register
    class MyCodec(Codec):
        def __init__(self, input_size=(192, 256), sigma: float = 2.0): ...   # keeps each argument as an attribute
        def encode(self, keypoints, visible) -> dict: ...
        def decode(self, outputs) -> tuple[coords, scores]: ...

The config is the ``__init__`` arguments: :meth:`Codec.to_config` reads each back from the attribute of the
same name (or the one :attr:`Codec.config_attributes` names), :meth:`Codec.from_config` calls ``__init__``
with them, and :func:`build_codec` picks the class from ``config["type"]``. So
``build_codec(codec.to_config()) == codec`` for every codec, with no per-codec (de)serialisation code.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

import numpy as np

from posekit.registry import Registry

__all__ = ["Codec", "CODECS", "build_codec", "check_person"]

#: codec class name -> codec class
CODECS = Registry("codec")


class Codec:
    """Base class of the codecs (in the spirit of mmpose's ``BaseKeypointCodec``).

    Subclasses implement :meth:`encode` and :meth:`decode`; configuration, equality and ``repr`` come from
    the ``__init__`` arguments.
    """

    #: ``__init__`` argument -> the attribute that holds its value, where the two names differ
    config_attributes: ClassVar[dict[str, str]] = {}

    def encode(self, keypoints, visible) -> dict:
        """One person: keypoints (K, 2) model-input pixels, visible (K,) -> training targets (a dict of arrays,
        ``weights`` (K,) among them)."""
        raise NotImplementedError

    def encode_batch(self, keypoints, visible) -> dict:
        """N people: keypoints (N, K, 2), visible (N, K) -> every target of :meth:`encode` stacked on a new first
        axis (``weights`` (N, K) among them). This default encodes person by person; a codec with a vectorised form
        overrides it (the same values, person for person)."""
        people = [self.encode(k, v) for k, v in zip(keypoints, visible)]
        if not people:
            raise ValueError("encode_batch needs at least one person")
        return {name: np.stack([person[name] for person in people]) for name in people[0]}

    def decode(self, outputs) -> tuple:
        """Model outputs of N people -> ``coords (N, K, 2)`` float32 model-input pixels, ``scores (N, K)``."""
        raise NotImplementedError

    # -- configuration -----------------------------------------------------------------------------
    @classmethod
    def config_fields(cls) -> list[str]:
        """The ``__init__`` argument names, in signature order: what a config holds besides ``type``."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise TypeError(f"{cls.__name__}.__init__ must name its arguments to be configurable")
        return [p.name for p in params]

    def to_config(self) -> dict:
        """JSON-able ``{"type": class name, argument: value, ...}``; :func:`build_codec` rebuilds the codec."""
        config: dict[str, Any] = {"type": type(self).__name__}
        for name in self.config_fields():
            config[name] = getattr(self, self.config_attributes.get(name, name))
        return json.loads(json.dumps(config))  # tuples -> lists: exactly what a checkpoint stores

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        config = dict(config)
        kind = config.pop("type", cls.__name__)
        if kind != cls.__name__:
            raise ValueError(f"config describes a {kind}, not a {cls.__name__}")
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_config(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, self.config_attributes.get(name, name))!r}"
                         for name in self.config_fields())
        return f"{type(self).__name__}({args})"


def check_person(keypoints, visible, *, batch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """What every ``encode`` checks first: keypoints (K, 2) -> float64 array, visible (K,) -> the labelled mask
    ``visible > 0``; with ``batch``, N people: (N, K, 2) and (N, K). Unlabelled joints may hold anything (NaN
    included); labelled ones must be finite."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visible = np.asarray(visible)
    if keypoints.ndim != 2 + batch or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be ({'N, ' if batch else ''}K, 2), got shape {keypoints.shape}")
    if visible.shape != keypoints.shape[:-1]:
        raise ValueError(f"visible must be {keypoints.shape[:-1]}, got shape {visible.shape}")
    labelled = visible > 0
    if not np.isfinite(keypoints[labelled]).all():
        raise ValueError("keypoints of visible joints must be finite")
    return keypoints, labelled


def build_codec(config: dict) -> Codec:
    """The codec ``config`` (``codec.to_config()`` output) describes: dispatches on ``config["type"]``."""
    return CODECS.get(config.get("type")).from_config(config)
