"""The one record every reader produces and every transform consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Bad input data. The message always names the file and, where there is one, the record."""

    def __init__(self, path, what: str, record=None):
        self.path = str(path)
        self.record = record
        self.what = what
        where = self.path if record is None else f"{self.path}, record {record}"
        super().__init__(f"{where}: {what}")


@dataclass
class Sample:
    """One person in one image.

    image_path: absolute path of the image file (already resolved inside the dataset root).
    box: (4,) float32 ``x, y, w, h`` in image pixels, w > 0 and h > 0.
    keypoints: (K, 3) float32 ``x, y, v`` in image pixels; v follows COCO: 0 = not labelled
        (x, y meaningless, set to 0), 1 = labelled but occluded, 2 = labelled and visible.
    """

    image_path: str
    box: np.ndarray
    keypoints: np.ndarray
    skeleton: str
    image_id: int = 0
    ann_id: int = 0
    file_name: str = ""
    extra: dict = field(default_factory=dict)


class SampleList(list):
    """The Samples a reader returns, and what it skipped on the way: ``records`` (how many ``unit`` the file
    holds) and ``skipped`` (reason -> count), so a caller left with no usable person can say why instead of
    guessing (all crowd, all joints invisible, an empty list, every record invalid)."""

    def __init__(self, samples=(), *, source="", records: int = 0, unit: str = "records", skipped=None):
        super().__init__(samples)
        self.source, self.records, self.unit = str(source), int(records), unit
        self.skipped = {reason: int(n) for reason, n in (skipped or {}).items()}

    def why_empty(self) -> str:
        if self.records == 0:
            return f"it holds no {self.unit}"
        reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items() if n)
        return f"all {self.records} {self.unit} were skipped ({reasons or 'reasons not recorded'})"


def require_people(samples, purpose: str, source=None) -> list:
    """``samples`` if there is at least one, else a DataError naming the file and why nothing was usable."""
    if len(samples):
        return samples
    if isinstance(samples, SampleList):
        raise DataError(samples.source or source, f"no usable person to {purpose}: {samples.why_empty()}")
    if source is None:
        raise ValueError(f"no usable person to {purpose}: no samples given")
    raise DataError(source, f"no usable person to {purpose}: no samples")
