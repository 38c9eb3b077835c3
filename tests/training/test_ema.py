"""EMA of a network with known answers."""
import pytest
import torch

from posekit.training.ema import ema_update


def pair():
    teacher, student = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1)), \
        torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        teacher[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        teacher[0].bias.fill_(0.0)
        student[0].weight.copy_(torch.tensor([[3.0, -2.0]]))
        student[0].bias.fill_(10.0)
        student[1].running_mean.fill_(4.0)
        student[1].num_batches_tracked.fill_(7)
    return teacher, student


def test_decay_half_is_the_midpoint():
    teacher, student = pair()
    ema_update(teacher, student, 0.5)
    assert torch.equal(teacher[0].weight, torch.tensor([[2.0, 0.0]]))
    assert torch.equal(teacher[0].bias, torch.tensor([5.0]))
    assert torch.equal(teacher[1].running_mean, torch.tensor([2.0]))
    assert torch.equal(teacher[1].running_var, torch.tensor([1.0]))  # both 1: the mean of equal values
    ema_update(teacher, student, 0.5)  # and again: halfway to the student once more
    assert torch.equal(teacher[0].weight, torch.tensor([[2.5, -1.0]]))


def test_ema_update_by_hand():
    teacher, student = pair()
    ema_update(teacher, student, 0.75)
    assert torch.allclose(teacher[0].weight, torch.tensor([[0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * -2]]))
    assert teacher[0].bias.item() == pytest.approx(2.5)
    assert teacher[1].running_mean.item() == pytest.approx(1.0)  # 0.75 * 0 + 0.25 * 4
    assert teacher[1].num_batches_tracked.item() == 7  # integer buffers are copied
    assert student[0].bias.item() == 10.0  # the student is untouched
    with pytest.raises(ValueError, match="decay"):
        ema_update(teacher, student, 1.5)


def test_decay_one_keeps_the_teacher_and_zero_copies_the_student():
    teacher, student = pair()
    ema_update(teacher, student, 1.0)
    assert torch.equal(teacher[0].weight, torch.tensor([[1.0, 2.0]]))
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), student.state_dict().values()))
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(teacher, torch.nn.Linear(2, 1), 0.5)
