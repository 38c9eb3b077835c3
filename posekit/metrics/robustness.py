"""Corruption robustness (Hendrycks & Dietterich; AdvMix): mPC and rPC over a corruption x severity table.

* **mPC**: the mean of the metric over the corruptions and their severities 1-5 (15 x 5 on ImageNet-C);
* **rPC** = mPC / the metric on clean images (NaN when the clean metric is 0).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["SEVERITIES", "robustness_summary"]

SEVERITIES = (1, 2, 3, 4, 5)


def robustness_summary(clean: float, table: Mapping[str, Mapping[int, float]], partial: bool = False) -> dict:
    """Corruption robustness (Hendrycks & Dietterich; AdvMix): mPC and rPC.

    clean: the metric on clean images.
    table: ``{corruption: {severity 1..5: metric}}`` (severity keys may be ints or digit strings, as after a
        JSON round trip; a severity-0 "clean" entry is ignored). Every corruption needs all five severities.
    partial: accept rows with only some severities (e.g. 1 and 3): when any row lacks one, the same means are
        taken over the entries each row has, and the result carries ``"complete": False`` (such numbers are not
        comparable with five-severity mPC); a complete table gives the five-severity result plus
        ``"complete": True``.
    Returns ``{"mPC": mean over corruptions and severities 1-5, "rPC": mPC / clean (NaN if clean == 0),
    "per_corruption": {name: mean over its severities}, "n_corruptions": int}`` (+ ``"complete"`` if partial).
    """
    if partial:
        complete = all(sorted(int(s) for s in row) == list(SEVERITIES) for row in table.values())
        if not complete:
            per_corruption = {name: float(np.mean([float(v) for v in row.values()])) for name, row in table.items()}
            return {**_summary(clean, per_corruption), "complete": False}
        return {**robustness_summary(clean, table), "complete": True}
    if not table:
        raise ValueError("empty corruption table")
    per_corruption = {}
    for name, by_severity in table.items():
        values = {int(s): float(v) for s, v in by_severity.items()}
        missing = [s for s in SEVERITIES if s not in values]
        extra = sorted(set(values) - set(SEVERITIES) - {0})
        if missing or extra:
            raise ValueError(f"corruption {name!r}: severities must be 1-5, missing {missing}, unexpected {extra}")
        per_corruption[name] = float(np.mean([values[s] for s in SEVERITIES]))
    return _summary(clean, per_corruption)


def _summary(clean: float, per_corruption: dict[str, float]) -> dict:
    mpc = float(np.mean(list(per_corruption.values())))
    clean = float(clean)
    return {"mPC": mpc, "rPC": mpc / clean if clean != 0 else math.nan, "per_corruption": per_corruption,
            "n_corruptions": len(per_corruption)}
