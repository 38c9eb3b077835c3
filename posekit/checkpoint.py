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
import shutil
import tempfile
from pathlib import Path

import torch

from posekit.config import PoseConfig

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "build_from_checkpoint", "check_writable"]


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


def load_checkpoint(path) -> dict:
    """Load a checkpoint without unpickling code: anything but tensors and plain containers is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError with long messages, EOFError with none
        first_line = next(iter(str(err).splitlines()), "")
        reason = f"{type(err).__name__}: {first_line}" if first_line else type(err).__name__
        raise ValueError(f"{path}: not a loadable posekit checkpoint (only weights and plain data are accepted): "
                         f"{reason}") from err


def _payload(path_or_payload) -> dict:
    payload = path_or_payload if isinstance(path_or_payload, dict) else load_checkpoint(path_or_payload)
    if "model" not in payload or "config" not in payload:
        raise ValueError("checkpoint lacks 'model' or 'config': not written by posekit")
    return payload


def load_model(path_or_payload) -> tuple[torch.nn.Module, PoseConfig]:
    """Rebuild ``(model in eval mode, PoseConfig)`` from a checkpoint file or an already loaded payload.

    The state dict is loaded strictly: every tensor of the network must be in the file and nothing else.
    """
    payload = _payload(path_or_payload)
    config = PoseConfig.from_dict(payload["config"])
    model = config.build_model()
    model.load_state_dict(payload["model"])
    model.eval()
    return model, config


def build_from_checkpoint(path_or_payload) -> tuple[torch.nn.Module, dict]:
    """:func:`load_model`, with the config as the dict the checkpoint stores (for code that edits or re-stores
    that dict, e.g. an adapted checkpoint that adds a provenance key). New readers use :func:`load_model`."""
    payload = _payload(path_or_payload)
    model, _ = load_model(payload)
    return model, payload["config"]


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
