"""Seeded randomness: one global seed per run, and shuffles that depend only on (seed, epoch).

Shuffles never read the global random state, so a run resumed at an epoch boundary draws the same batches
as an uninterrupted one.
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "epoch_permutation", "epoch_indices"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``n`` samples for one epoch of a run seeded ``seed``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch))


def epoch_indices(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's shuffled share of the data for one epoch (all ranks agree on the permutation)."""
    perm = epoch_permutation(n, seed, epoch).tolist()
    per_rank = n // world  # drop the remainder so every rank runs the same number of steps
    return perm[rank * per_rank:(rank + 1) * per_rank]
