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
