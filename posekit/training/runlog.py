"""The epoch log of a run folder (one JSON object per line) that a resumed run continues exactly.

A run checkpoints at epoch boundaries. :meth:`RunLog.trim` (at start) keeps only the lines of the epochs
the checkpoint holds -- a crash between an epoch's log line and its checkpoint left a line the resumed run
writes again, a fresh run in a used folder must not append to the old run's log, and a line torn by a
crash does not parse -- so every epoch is logged once.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from posekit.strict_json import dumps_strict

__all__ = ["RunLog", "logged_epoch"]

log = logging.getLogger(__name__)


def logged_epoch(line: str) -> float:
    """The epoch of one log line; inf if the line is not a complete epoch record."""
    try:
        epoch = json.loads(line).get("epoch")
    except (ValueError, AttributeError):
        return math.inf
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else math.inf


class RunLog:
    def __init__(self, path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(dumps_strict(record) + "\n")

    def trim(self, epoch: int) -> None:
        """Keep the lines of epochs <= ``epoch`` (none for a fresh run); rewritten atomically, only if needed."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        keep = [line for line in lines if logged_epoch(line) <= epoch]
        if keep == lines:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(line if line.endswith("\n") else line + "\n" for line in keep))
        os.replace(tmp, self.path)
        log.info("%s: dropped %d line(s) of epochs after %d", self.path, len(lines) - len(keep), epoch)
