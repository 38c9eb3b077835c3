import math

import pytest
import torch

from posekit.losses import (AutomaticWeightedLoss, BoneLoss, CoordL1Loss, CoordL2Loss, HeatmapKLLoss,
                            KeypointMSELoss, check_finite)


def test_keypoint_mse_by_hand():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2)
    weights = torch.tensor([[1.0, 0.0]])
    loss_fn = KeypointMSELoss()
    # mean over the 8 pixel-joint values; the weighted-out joint contributes zeros
    assert loss_fn(pred, target, weights).item() == pytest.approx(0.5)
    assert loss_fn([pred, pred], target, weights).item() == pytest.approx(1.0)
    assert KeypointMSELoss(use_target_weight=False)(pred, target).item() == pytest.approx(1.0)


def test_keypoint_mse_validation():
    loss_fn = KeypointMSELoss()
    with pytest.raises(ValueError, match="weights"):
        loss_fn(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="stage 1"):
        loss_fn([torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)], torch.zeros(1, 2, 4, 4), torch.ones(1, 2))


def test_coordinate_losses_by_hand():
    pred = torch.tensor([[[0.0, 0.0], [100.0, 100.0]]])
    target = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
    weights = torch.tensor([[1.0, 0.0]])
    assert CoordL1Loss()(pred, target, weights).item() == pytest.approx(7.0)
    assert CoordL2Loss()(pred, target, weights).item() == pytest.approx(5.0)
    assert CoordL2Loss(squared=True)(pred, target, weights).item() == pytest.approx(25.0)
    # without weights: mean over both joints
    assert CoordL2Loss()(pred, target).item() == pytest.approx((5.0 + 100 * math.sqrt(2)) / 2)


def test_coordinate_losses_with_no_labelled_joint_are_zero_with_finite_gradients():
    pred = torch.zeros(2, 3, 2, requires_grad=True)
    loss = CoordL2Loss()(pred, torch.zeros(2, 3, 2), torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


def test_l2_gradient_is_finite_at_zero_distance():
    pred = torch.zeros(1, 1, 2, requires_grad=True)
    CoordL2Loss()(pred, torch.zeros(1, 1, 2)).backward()
    assert torch.equal(pred.grad, torch.zeros(1, 1, 2))


def test_bone_loss_three_joint_hand_case():
    pred = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]])
    target = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]])
    # pairs (0,1): |3 - 4| = 1; (0,2): |4 - 4| = 0; (1,2): |5 - sqrt(32)|
    all_pairs = (1.0 + 0.0 + abs(5.0 - math.sqrt(32.0))) / 3
    assert BoneLoss()(pred, target).item() == pytest.approx(all_pairs, rel=1e-6)
    assert BoneLoss(limbs=[(0, 1), (0, 2)])(pred, target).item() == pytest.approx(0.5)
    weights = torch.tensor([[1.0, 1.0, 0.0]])  # joint 2 unlabelled: only pair (0, 1) counts
    assert BoneLoss()(pred, target, weights).item() == pytest.approx(1.0)


def test_bone_loss_gradient_finite_when_joints_coincide():
    pred = torch.zeros(1, 3, 2, requires_grad=True)
    target = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    BoneLoss()(pred, target).backward()
    assert torch.isfinite(pred.grad).all()


def test_bone_loss_validation():
    with pytest.raises(ValueError):
        BoneLoss(limbs=[(1, 1)])
    with pytest.raises(ValueError, match="out of range"):
        BoneLoss(limbs=[(0, 5)])(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))


def test_automatic_weighted_loss_with_equal_losses():
    awl = AutomaticWeightedLoss(3)
    loss = torch.tensor(2.0)
    total = awl(loss, loss, loss)
    # s = 1: 0.5 * L + log(2) per task
    assert total.item() == pytest.approx(3 * (0.5 * 2.0 + math.log(2)))
    total.backward()
    grad = awl.params.grad
    assert torch.allclose(grad, grad[0].expand(3))
    # d/ds [0.5 L / s^2 + log(1 + s^2)] at s = 1 = -L + 1
    assert grad[0].item() == pytest.approx(-2.0 + 1.0)
    torch.testing.assert_close(awl.weights, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="expected 3"):
        awl(loss, loss)


def test_heatmap_kl_is_zero_for_identical_maps():
    maps = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    assert HeatmapKLLoss()(maps, maps.clone()).item() == 0.0
    assert HeatmapKLLoss(temperature=4.0)(maps, maps.clone()).item() == 0.0


def test_heatmap_kl_by_hand_and_teacher_is_detached():
    # two-pixel maps: teacher softmax = (0.5, 0.5), student logits (log 3, 0) -> (0.75, 0.25)
    student = torch.tensor([[[[math.log(3.0), 0.0]]]], requires_grad=True)
    teacher = torch.zeros(1, 1, 1, 2, requires_grad=True)
    loss = HeatmapKLLoss()(student, teacher)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert teacher.grad is None and torch.isfinite(student.grad).all()


def test_check_finite():
    value = torch.tensor(1.5)
    assert check_finite(value, where="step 1") is value
    assert check_finite(2.0, where="x") == 2.0
    for bad in (torch.tensor(float("nan")), torch.tensor(float("inf")), float("-inf")):
        with pytest.raises(FloatingPointError, match="non-finite loss at step 3"):
            check_finite(bad, where="step 3")
