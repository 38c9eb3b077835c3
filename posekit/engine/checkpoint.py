"""Checkpoints: plain state dicts plus a JSON-able config, written atomically, read with weights_only=True."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a temp file in the same folder, fsync, then os.replace.

    A process killed mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def build_from_checkpoint(path_or_payload):
    """Rebuild (model in eval mode, config) from a checkpoint file or an already loaded payload."""
    from posekit.models.heads import build_from_config

    payload = load_checkpoint(path_or_payload) if not isinstance(path_or_payload, dict) else path_or_payload
    if "model" not in payload or "config" not in payload:
        raise ValueError("checkpoint lacks 'model' or 'config': not written by posekit")
    config = payload["config"]
    model = build_from_config(config)
    model.load_state_dict(payload["model"])
    model.eval()
    return model, config


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
    import shutil
    return shutil.disk_usage(path).free // (1024 * 1024)
