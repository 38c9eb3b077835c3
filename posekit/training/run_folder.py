"""A run folder at the start of a run: what a previous run left there, and what a killed one left behind.

* A fresh run (no ``--resume``) in a folder that holds another run's checkpoints or log would overwrite them
  and leave that run's ``best.pt`` beside its own files, so it is refused unless ``overwrite`` says to
  replace them (then they are removed first: nothing stale survives next to the new run).
* A process killed while writing a checkpoint leaves the temp file of
  :func:`posekit.checkpoint.save_checkpoint` (hundreds of MB each); the next run in the folder removes them.
"""
from __future__ import annotations

import logging
from pathlib import Path

from posekit.checkpoint import checkpoint_temp_files

__all__ = ["RUN_FILES", "prepare_run_folder", "previous_run_files"]

log = logging.getLogger(__name__)

#: what a run writes into its folder (config.json is not listed: users keep their own option files there)
RUN_FILES = ("last.pt", "best.pt", "model.pt", "log.jsonl")


def previous_run_files(out) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``out``."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def remove_stale_temp_files(out) -> int:
    """Delete the checkpoint temp files a killed run left in ``out``; returns how many."""
    stale = checkpoint_temp_files(out)
    size_mb = sum(p.stat().st_size for p in stale) / 2**20
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("%s: removed %d temporary checkpoint file(s) (%.1f MB) left by an interrupted run", out, len(stale),
                 size_mb)
    return len(stale)


def prepare_run_folder(out, *, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready for a run: stale temp files removed; a previous run's files refused (FileExistsError)
    unless the run resumes them or ``overwrite`` replaces them."""
    out = Path(out)
    remove_stale_temp_files(out)
    if resume:
        return
    previous = previous_run_files(out)
    if not previous:
        return
    if not overwrite:
        raise FileExistsError(f"{out} holds a previous run ({', '.join(previous)}): pass --resume to continue it "
                              f"or --overwrite to replace it")
    for name in previous:
        (out / name).unlink()
    log.info("%s: removed the previous run's %s (--overwrite)", out, ", ".join(previous))
