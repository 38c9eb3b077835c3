import math

import pytest
import torch

from posekit.codecs import HeatmapCodec, IntegralCodec, RegressionCodec
from posekit.losses import (AutomaticWeightedLoss, BoneLoss, CoordL1Loss, CoordL2Loss, HeatmapHeadLoss, HeatmapKLLoss,
                            KeypointMSELoss, build_head_loss, check_finite)


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


# -- bone / AWL known answers and the head losses (build_head_loss) ----------------------------------
def test_bone_loss_on_skeleton_limbs_by_hand():
    # a 4-joint chain 0-1-2-3; limbs (0,1), (1,2), (2,3); joint 3 unlabelled in the second person
    target = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0]],
                           [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [5.0, 5.0]]])
    pred = torch.tensor([[[0.0, 0.0], [0.0, 2.0], [0.0, 2.5], [0.0, 3.0]],     # lengths 2, 0.5, 0.5 vs 1, 1, 1
                         [[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [0.0, 0.0]]])     # lengths 5, 0 vs 2, 2
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    limbs = [(0, 1), (1, 2), (2, 3)]
    # person 1: |2-1| + |0.5-1| + |0.5-1| = 2; person 2: |5-2| + |0-2| = 5 (limb (2,3) has an unlabelled end)
    assert BoneLoss(limbs)(pred, target, weights).item() == pytest.approx((2.0 + 5.0) / 5)
    # all pairs of person 1 alone: (0,1) 1, (0,2) |2.5-2| .5, (0,3) 0, (1,2) .5, (1,3) |1-2| 1, (2,3) .5
    assert BoneLoss()(pred[:1], target[:1]).item() == pytest.approx(3.5 / 6)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
def test_awl_with_equal_sigmas_is_the_scaled_sum_plus_log_terms(s):
    awl = AutomaticWeightedLoss(3)
    with torch.no_grad():
        awl.params.fill_(s)
    losses = [torch.tensor(0.3), torch.tensor(1.7), torch.tensor(4.0)]
    expected = 0.5 / s ** 2 * sum(float(l) for l in losses) + 3 * math.log(1 + s ** 2)
    assert awl(*losses).item() == pytest.approx(expected, rel=1e-6)


def _coord_batch():
    target = torch.tensor([[[0.0, 0.0], [0.1, 0.2], [-0.2, 0.1]]])
    return {"coords": target, "weights": torch.tensor([[1.0, 1.0, 0.0]])}


def test_regression_head_loss_is_coord_plus_weighted_bone():
    batch = _coord_batch()
    pred = batch["coords"] + torch.tensor([[[0.1, -0.1], [0.0, 0.3], [5.0, 5.0]]])
    for coord, per_joint in (("l1", [0.2, 0.3]), ("l2", [math.sqrt(0.02), 0.3]), ("mse", [0.02, 0.09])):
        loss = build_head_loss("regression", RegressionCodec((64, 64)),
                               {"coord": coord, "bone_loss": "all", "bone_weight": 0.5})
        out = loss([pred], batch)
        coord_value = sum(per_joint) / 2  # joint 2 has weight 0
        bone = BoneLoss()(pred, batch["coords"], batch["weights"]).item()
        assert out["loss_coord"].item() == pytest.approx(coord_value, rel=1e-5)
        assert out["loss"].item() == pytest.approx(coord_value + 0.5 * bone, rel=1e-5)
    # intermediate supervision: terms add over stages
    loss = build_head_loss("regression", RegressionCodec((64, 64)))
    assert loss([pred, pred], batch)["loss"].item() == pytest.approx(2 * loss([pred], batch)["loss"].item())


def test_dsnt_head_loss_is_zero_coord_error_on_a_one_hot_map_at_the_target():
    codec = IntegralCodec(input_size=(32, 32))  # 8 x 8 maps
    logits = torch.full((1, 2, 8, 8), -1e4)
    logits[0, 0, 2, 5] = 1e4
    logits[0, 1, 7, 0] = 1e4
    target = torch.tensor([[[5 / 8 - 0.5, 2 / 8 - 0.5], [0 / 8 - 0.5, 7 / 8 - 0.5]]])
    out = build_head_loss("dsnt", codec, {"js_weight": 0.0})([logits], {"coords": target, "weights": torch.ones(1, 2)})
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)
    with_js = build_head_loss("dsnt", codec, {"js_weight": 2.0, "js_sigma": 1.0})
    out = with_js([logits], {"coords": target, "weights": torch.ones(1, 2)})
    # a one-hot map against a sigma-1 Gaussian has a positive JS divergence below ln 2
    assert 0 < out["loss_js"].item() < math.log(2)
    assert out["loss"].item() == pytest.approx(out["loss_coord"].item() + 2.0 * out["loss_js"].item(), rel=1e-6)


def test_awl_head_loss_trains_its_weights():
    loss = build_head_loss("regression", RegressionCodec((64, 64)), {"bone_loss": "limbs", "awl": True},
                           limbs=[(0, 1), (1, 2)])
    assert isinstance(loss.awl, AutomaticWeightedLoss) and len(loss.awl.params) == 2
    pred = torch.zeros(1, 3, 2, requires_grad=True)
    out = loss([pred], _coord_batch())
    terms = [out["loss_coord"], out["loss_bone"]]
    expected = sum(0.5 * t + math.log(2) for t in terms)  # s = 1 at the start
    assert out["loss"].item() == pytest.approx(float(expected), rel=1e-6)
    out["loss"].backward()
    assert loss.awl.params.grad is not None and torch.isfinite(loss.awl.params.grad).all()


def test_rle_head_loss_is_finite_on_extreme_outputs():
    loss = build_head_loss("rle", RegressionCodec((64, 64)), {"bone_loss": "limbs"}, limbs=[(0, 1)])
    output = torch.tensor([[[1e6, -1e6, -1e4, 1e4], [0.0, 0.0, 0.0, 0.0], [0.1, 0.1, 50.0, -50.0]]],
                          requires_grad=True)
    out = loss([output], _coord_batch())
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and torch.isfinite(output.grad).all()
    assert {"loss_rle", "loss_bone"} <= set(out)
    assert sum(1 for _ in loss.parameters()) > 0  # the RealNVP flow trains with the model


def test_build_head_loss_validation():
    codec = RegressionCodec((64, 64))
    assert isinstance(build_head_loss("heatmap", HeatmapCodec((64, 64))), HeatmapHeadLoss)
    with pytest.raises(ValueError, match="do not apply to the heatmap head"):
        build_head_loss("heatmap", HeatmapCodec((64, 64)), {"bone_loss": "all"})
    with pytest.raises(ValueError, match="do not apply to the regression head"):
        build_head_loss("regression", codec, {"js_weight": 1.0})
    with pytest.raises(ValueError, match="coord must be one of"):
        build_head_loss("regression", codec, {"coord": "huber"})
    with pytest.raises(ValueError, match="bone_loss must be one of"):
        build_head_loss("regression", codec, {"bone_loss": "some"})
    with pytest.raises(ValueError, match="needs the skeleton's limbs"):
        build_head_loss("regression", codec, {"bone_loss": "limbs"})
    with pytest.raises(ValueError, match="only"):
        build_head_loss("regression", codec, {"awl": True})  # a single term: nothing to weigh
    with pytest.raises(ValueError, match="awl is not available with the rle head"):
        build_head_loss("rle", codec, {"awl": True})
    with pytest.raises(ValueError, match="unknown head"):
        build_head_loss("heatmaps", codec)
