"""JSON that strict parsers accept: NaN and infinities are written as ``null``.

Python's ``json`` writes bare ``NaN`` / ``Infinity``, which is not JSON (browsers, ``jq`` and most languages'
parsers refuse the file). Metrics legitimately have no value at times (COCOeval's "no such objects", an AP with
no scorable person): in every file and printout posekit writes that is ``null``.
"""
from __future__ import annotations

import json
import math

__all__ = ["finite_or_none", "dumps_strict"]


def finite_or_none(value):
    """``value`` with every non-finite float replaced by None, NumPy / torch values as plain Python, tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy scalars and arrays, tensors
        return finite_or_none(value.tolist())
    return value


def dumps_strict(value, **kwargs) -> str:
    """``json.dumps`` of :func:`finite_or_none` (``value``) with ``allow_nan=False``: always valid JSON."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
