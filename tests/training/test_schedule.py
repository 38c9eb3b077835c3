"""The warm-up + cosine schedule and the seeded shuffles, with known answers."""
import pytest
import torch

from posekit.training.schedule import lr_factor
from posekit.training.seeding import epoch_indices, epoch_permutation


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)
    assert lr_factor(0, 10, 0, 0.0) == 1.0  # no warm-up: the cosine starts at full rate


def test_ranks_split_one_permutation():
    a, b = epoch_indices(10, 1, 0, 0, 2), epoch_indices(10, 1, 0, 1, 2)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    assert epoch_indices(10, 1, 0, 0, 1) != epoch_indices(10, 1, 1, 0, 1)


def test_the_permutation_depends_on_seed_and_epoch_only():
    expected = torch.randperm(7, generator=torch.Generator().manual_seed(3 * 1000003 + 2)).tolist()
    torch.manual_seed(123)  # the global stream plays no part
    assert epoch_permutation(7, 3, 2).tolist() == expected
    assert epoch_indices(7, 3, 2, 0, 1) == expected
    assert epoch_indices(7, 3, 2, 1, 2) == expected[3:6]  # rank 1 of 2: the second of two equal shares
