"""Checkpoints: plain state dicts plus the JSON-able model config, written atomically, read with
``weights_only=True``.

This module sits below both training (:mod:`posekit.engine`, :mod:`posekit.methods`) and inference
(:mod:`posekit.inference`): it knows files and :class:`~posekit.config.PoseConfig`, nothing else.

A pose checkpoint is ``{"model": state_dict, "config": PoseConfig.to_dict(), ...}`` (training checkpoints
add optimizer state, epoch, history; zoo files hold only the two keys). :func:`load_model` is the one way
to turn one back into a network: ``(model in eval mode, PoseConfig)``.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch

from posekit.config import PoseConfig

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "checkpoint_payload", "load_model", "load_weights",
           "build_from_checkpoint", "checkpoint_temp_files", "check_writable"]


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a temp file in the same folder, fsync, then os.replace.

    ``payload["config"]`` may be a :class:`PoseConfig` (stored as its ``to_dict()``) or a JSON-able dict.
    A process killed mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload.get("config"), PoseConfig):
        payload = {**payload, "config": payload["config"].to_dict()}
    if "config" in payload:
        json.dumps(payload["config"])  # configs must stay JSON-able: fail here, not when a user loads it
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the file and what is wrong."""

    def __init__(self, source, what: str):
        self.source, self.what = str(source), what
        super().__init__(f"{self.source}: {what}")


#: lines of torch's weights_only error that are advice, not a reason: posekit never retries with
#: ``weights_only=False`` (that would run whatever code the file pickles), so it must not suggest it either
_TORCH_ADVICE = ("weights_only", "Weights only load failed", "Check the documentation", "Please file an issue",
                 "trusted source")


def _load_failure(err: Exception) -> str:
    """Why ``torch.load`` refused a file, in one line, without torch's advice to load it unsafely."""
    reasons = [line.strip().removeprefix("WeightsUnpickler error:").strip() for line in str(err).splitlines()]
    reasons = [line for line in reasons if line and not any(advice in line for advice in _TORCH_ADVICE)]
    reason = f"{type(err).__name__}: {'; '.join(reasons)}" if reasons else type(err).__name__
    if isinstance(err, pickle.UnpicklingError):
        return reason
    # the zip reader's errors (OSError, RuntimeError "failed finding central directory", EOFError) mean a
    # file cut short or not a checkpoint at all: say that, with the library's words after it
    return f"the file is cut short, corrupt or not a checkpoint ({reason})"


def load_checkpoint(path) -> dict:
    """Load a checkpoint without unpickling code: anything but tensors and plain containers is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError with long messages, EOFError with none
        raise CheckpointError(path, f"not a loadable posekit checkpoint (only weights and plain data are accepted): "
                                    f"{_load_failure(err)}") from None


def _describe(value) -> str:
    if torch.is_tensor(value):
        return f"a bare tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def checkpoint_payload(path_or_payload, required=("model", "config"), *, source=None) -> tuple[dict, str]:
    """``(payload, source)``: a checkpoint file loaded (or a payload as given) that is a dict with the
    ``required`` keys and a state dict (names -> tensors) under ``"model"``; CheckpointError otherwise."""
    if isinstance(path_or_payload, (str, os.PathLike)):
        source = source or str(path_or_payload)
        payload = load_checkpoint(path_or_payload)
    else:
        source, payload = source or "checkpoint", path_or_payload
    if not isinstance(payload, dict):
        raise CheckpointError(source, f"holds {_describe(payload)}, not a posekit checkpoint (a dict with "
                                      f"'model' and 'config')")
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(source, f"lacks {', '.join(map(repr, missing))}: not a posekit checkpoint")
    if "model" in payload:
        _check_state_dict(payload["model"], source)
    return payload, source


def _check_state_dict(weights, source) -> None:
    if not isinstance(weights, dict):
        raise CheckpointError(source, f"'model' must be a state dict (names -> tensors), got {_describe(weights)}")
    for name, value in weights.items():
        if not (isinstance(name, str) and torch.is_tensor(value)):
            raise CheckpointError(source, f"'model' must be a state dict (names -> tensors), but {name!r} holds "
                                          f"{_describe(value)}")


def _weights_mismatch(model: torch.nn.Module, weights: dict) -> str | None:
    """What keeps ``weights`` from loading strictly into ``model``, in one line; None if they fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    misshaped = [f"{k} {tuple(weights[k].shape)} (model {tuple(v.shape)})" for k, v in own.items()
                 if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    parts = [f"{len(names)} {what} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
             for what, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if names]
    return "; ".join(parts) or None


def load_model(path_or_payload, *, source=None) -> tuple[torch.nn.Module, PoseConfig]:
    """Rebuild ``(model in eval mode, PoseConfig)`` from a checkpoint file or an already loaded payload.

    The state dict is loaded strictly: every tensor of the network must be in the file, in its shape, and
    nothing else. Whatever is wrong (the config, the model options, the codec, the weights) is one
    CheckpointError naming the file (``source`` names a payload's file)."""
    payload, source = checkpoint_payload(path_or_payload, source=source)
    try:
        config = PoseConfig.from_dict(payload["config"])
    except ValueError as err:
        raise CheckpointError(source, str(err)) from None
    model = _build(source, "model", config.build_model)
    _build(source, "codec", config.build_codec)  # a broken codec config fails here, not at the first image
    load_weights(model, payload["model"], source, f"the {config.model!r} model its config describes")
    model.eval()
    return model, config


def load_weights(model: torch.nn.Module, weights: dict, source, model_text: str = "the model") -> None:
    """``model.load_state_dict(weights)`` (strict), or one CheckpointError saying which tensors do not fit."""
    mismatch = _weights_mismatch(model, weights)
    if mismatch:
        raise CheckpointError(source, f"weights do not fit {model_text}: {mismatch}")
    model.load_state_dict(weights)


def _build(source: str, what: str, build):
    """``build()``, with the errors a config can provoke (unknown names, options the builder does not take,
    impossible sizes) turned into one CheckpointError."""
    try:
        return build()
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(source, f"its config gives a {what} posekit cannot build: {reason}") from None


def build_from_checkpoint(path_or_payload, *, source=None) -> tuple[torch.nn.Module, dict]:
    """:func:`load_model`, with the config as the dict the checkpoint stores (for code that edits or re-stores
    that dict, e.g. an adapted checkpoint that adds a provenance key). New readers use :func:`load_model`."""
    payload, source = checkpoint_payload(path_or_payload, source=source)
    model, _ = load_model(payload, source=source)
    return model, payload["config"]


#: the temp files :func:`save_checkpoint` writes (``.NAME.pt.<8 random characters>.tmp``)
_TEMP_NAME = re.compile(r"^\..+\.pt\.[a-z0-9_]{8}\.tmp$")


def checkpoint_temp_files(folder) -> list[Path]:
    """The temp files an interrupted :func:`save_checkpoint` left in ``folder`` (empty if it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _TEMP_NAME.match(p.name) and p.is_file())


def check_writable(out_dir, min_free_mb: int = 200) -> Path:
    """Fail before training starts when the output folder can't take checkpoints."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".posekit_write_probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"output folder {out} is not writable: {err.strerror or err}") from err
    free_mb = shutil_free_mb(out)
    if free_mb < min_free_mb:
        raise OSError(f"output folder {out} has only {free_mb} MB free; checkpoints need at least {min_free_mb} MB")
    return out


def shutil_free_mb(path) -> int:
    return shutil.disk_usage(path).free // (1024 * 1024)
