"""SFDA (Peng et al., ICCV 2023): the loss functions by hand, the G/F split and one adaptation iteration's
bookkeeping (what each step may and may not change). The second view's geometry and the EMA are tested with
posekit.training (tests/training)."""
import math

import numpy as np
import pytest
import torch

from posekit.methods import build_method
from posekit.methods.sfda import (SFDA, consistency_loss, finetune_loss, information_maximization_loss,
                                  joint_similarity, pose_contrastive_loss, project_heatmaps, regressor_split,
                                  residual_kl_loss, resolve_regressor, spatial_probabilities)
from posekit.models import build_model
from posekit.skeletons import get_skeleton
from posekit.training.context import StepProgress


def one_hot_maps(n, k, h, w, positions):
    """positions[n][k] = (x, y) -> (N, K, h, w) one-hot heatmaps."""
    maps = torch.zeros(n, k, h, w)
    for i in range(n):
        for j in range(k):
            x, y = positions[i][j]
            maps[i, j, y, x] = 1.0
    return maps


# -- residual loss ---------------------------------------------------------------------------------
def test_residual_kl_is_zero_for_identical_heatmaps():
    maps = torch.rand(2, 3, 5, 4)
    assert residual_kl_loss(maps, maps.clone()).item() == pytest.approx(0.0, abs=1e-7)
    assert residual_kl_loss(maps, maps.clone(), tau=0.1).item() == pytest.approx(0.0, abs=1e-6)


def test_residual_kl_by_hand_ignores_the_peak():
    # Both peaks at pixel 0; the residuals [1, 2, 0] and [1, 0, 2] are permutations, so their log-sum-exps
    # agree and log p_sr - log p_in = [0, 2, -2]: KL = 2 p_sr[1] - 2 p_sr[2] = 2 (e^2 - 1) / (e + e^2 + 1).
    source = torch.tensor([[5.0, 1.0], [2.0, 0.0]]).view(1, 1, 2, 2)
    intermediate = torch.tensor([[9.0, 1.0], [0.0, 2.0]]).view(1, 1, 2, 2)
    e = math.e
    expected = 2 * (e ** 2 - 1) / (e + e ** 2 + 1)
    assert residual_kl_loss(source, intermediate).item() == pytest.approx(expected, rel=1e-6)
    # the peak's value never matters
    louder = source.clone()
    louder[0, 0, 0, 0] = 100.0
    assert residual_kl_loss(louder, intermediate).item() == pytest.approx(expected, rel=1e-6)
    # and maps that differ only at their shared peak are identical residuals
    assert residual_kl_loss(louder, source).item() == pytest.approx(0.0, abs=1e-7)
    # tau divides the logits: residuals [1, 2, 0] / 2 -> log-ratio [0, 1, -1]
    expected_tau = (math.exp(1.0) - 1) / (math.exp(0.5) + math.exp(1.0) + 1)
    assert residual_kl_loss(source, intermediate, tau=2.0).item() == pytest.approx(expected_tau, rel=1e-6)


def test_residual_kl_removes_both_peaks_from_both_maps():
    # source peak at pixel 0, intermediate peak at pixel 3: both pixels go, the residual is pixels 1, 2.
    source = torch.tensor([[9.0, 1.0], [0.0, 5.0]]).view(1, 1, 2, 2)
    intermediate = torch.tensor([[4.0, 0.0], [0.0, 7.0]]).view(1, 1, 2, 2)
    p = torch.softmax(torch.tensor([1.0, 0.0]), 0)
    q = torch.tensor([0.5, 0.5])
    expected = float((p * (p.log() - q.log())).sum())
    assert residual_kl_loss(source, intermediate).item() == pytest.approx(expected, rel=1e-6)


def test_residual_kl_gradients_are_finite_and_inputs_validated():
    source = torch.rand(2, 3, 4, 4)
    intermediate = torch.rand(2, 3, 4, 4, requires_grad=True)
    residual_kl_loss(source, intermediate, tau=0.5).backward()
    assert torch.isfinite(intermediate.grad).all() and intermediate.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same shape"):
        residual_kl_loss(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        residual_kl_loss(torch.rand(2, 4, 4), torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="tau"):
        residual_kl_loss(source, source, tau=0.0)
    with pytest.raises(TypeError):
        residual_kl_loss(np.zeros((1, 1, 4, 4)), source)


def test_finetune_loss_is_the_heatmap_mse():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    assert finetune_loss(a, b).item() == pytest.approx(0.5)


# -- spatial probability space ---------------------------------------------------------------------
def test_projection_of_a_one_hot_heatmap_is_one_hot():
    maps = one_hot_maps(1, 2, 4, 5, [[(3, 1), (0, 2)]])  # (x, y)
    horizontal, vertical = project_heatmaps(maps)
    assert horizontal.shape == (1, 2, 5) and vertical.shape == (1, 2, 4)
    assert torch.equal(horizontal[0, 0], torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]))
    assert torch.equal(vertical[0, 0], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert torch.equal(horizontal[0, 1], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(vertical[0, 1], torch.tensor([0.0, 0.0, 1.0, 0.0]))
    px, py = spatial_probabilities(maps)
    assert torch.allclose(px.sum(-1), torch.ones(1, 2)) and torch.allclose(py.sum(-1), torch.ones(1, 2))
    assert px[0, 0].argmax() == 3 and py[0, 0].argmax() == 1
    sharp_x, sharp_y = spatial_probabilities(maps, temperature=0.01)  # a cold softmax is one-hot again
    assert torch.allclose(sharp_x, horizontal, atol=1e-6) and torch.allclose(sharp_y, vertical, atol=1e-6)


# -- contrastive -----------------------------------------------------------------------------------
def test_contrastive_loss_is_lower_when_positives_match():
    torch.manual_seed(0)
    maps = torch.rand(3, 6, 8, 8) * 4
    target = spatial_probabilities(maps)
    noisy = spatial_probabilities(maps + 0.1 * torch.rand_like(maps))
    shuffled = spatial_probabilities((maps + 0.1 * torch.rand_like(maps))[:, [1, 2, 3, 4, 5, 0]])
    assert pose_contrastive_loss(target, noisy) < pose_contrastive_loss(target, shuffled)
    assert pose_contrastive_loss(target, noisy, temperature=0.1) < pose_contrastive_loss(target, shuffled, 0.1)


def test_contrastive_loss_by_hand():
    # two joints with disjoint one-hot vectors: s = identity, so -log(s_kk / sum_j s_kj) = 0; swapped: s_kk = 0.
    maps = one_hot_maps(1, 2, 4, 4, [[(0, 0), (3, 3)]])
    pair = project_heatmaps(maps)
    assert torch.allclose(joint_similarity(pair, pair), torch.eye(2)[None])
    assert pose_contrastive_loss(pair, pair).item() == pytest.approx(0.0, abs=1e-6)
    swapped = project_heatmaps(maps[:, [1, 0]])
    assert pose_contrastive_loss(pair, swapped).item() > 10  # -log(eps)
    # InfoNCE with T = 1: -log(e / (e + 1)) for each joint
    assert pose_contrastive_loss(pair, pair, temperature=1.0).item() == pytest.approx(-math.log(math.e / (math.e + 1)),
                                                                                       rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 joints"):
        pose_contrastive_loss(project_heatmaps(maps[:, :1]), project_heatmaps(maps[:, :1]))
    with pytest.raises(TypeError, match="pair"):
        pose_contrastive_loss(pair[0], pair)


# -- information maximisation ----------------------------------------------------------------------
def test_information_maximization_by_hand():
    length = 4
    uniform = torch.full((2, 3, length), 1 / length)
    # uniform: per-sample entropy log L, the batch mean is uniform too -> log L - log L = 0
    assert information_maximization_loss(uniform).item() == pytest.approx(0.0, abs=1e-6)
    # one-hot at different places in the two samples: 0 - H([1/2, 1/2, 0, 0]) = -log 2 (/ log 4 normalised)
    diverse = torch.zeros(2, 3, length)
    diverse[0, :, 0] = 1
    diverse[1, :, 1] = 1
    assert information_maximization_loss(diverse, normalize=False).item() == pytest.approx(-math.log(2), rel=1e-5)
    assert information_maximization_loss(diverse).item() == pytest.approx(-0.5, rel=1e-5)
    # one-hot at the same place in every sample: confident but not diverse -> 0
    collapsed = torch.zeros(2, 3, length)
    collapsed[:, :, 2] = 1
    assert information_maximization_loss(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    # a pair averages its two axes
    assert information_maximization_loss((diverse, uniform)).item() == pytest.approx(-0.25, rel=1e-5)
    with pytest.raises(ValueError, match="sum to 1"):
        information_maximization_loss(torch.ones(2, 3, length))


# -- consistency ---------------------------------------------------------------------------
def test_consistency_loss_counts_only_valid_pixels():
    reference = torch.zeros(1, 2, 2, 2)
    other = torch.ones(1, 2, 2, 2)
    other[:, :, 0, 0] = 3.0
    valid = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    valid[0, 0, 1, :] = True
    assert consistency_loss(reference, other, valid).item() == pytest.approx(1.0)
    assert consistency_loss(reference, other).item() == pytest.approx((9 + 1 + 1 + 1) / 4)
    assert consistency_loss(reference, other, torch.zeros(1, 1, 2, 2)).item() == 0.0
    with pytest.raises(ValueError, match="valid"):
        consistency_loss(reference, other, torch.ones(1, 3, 2, 2))


# -- model split and the method --------------------------------------------------------------------
def tiny_model(name="simplebaseline_r18", **kw):
    torch.manual_seed(0)
    kw = kw or {"width": 0.25, "deconv_channels": 32}
    return build_model(name, num_keypoints=14, **kw)


@pytest.mark.parametrize("name,kw,regressor", [("simplebaseline_r18", {}, "upsample_head"),
                                               ("simplebaseline_r18", {}, "head"),
                                               ("lite_hourglass_2x32", {"depth": 2}, "head")])
def test_features_then_regressor_is_the_model(name, kw, regressor):
    model = tiny_model(name, **kw).eval()
    x = torch.randn(2, 3, 64, 64)
    split = regressor_split(model, regressor)
    with torch.no_grad():
        assert torch.allclose(split.head(split.trunk(x)), model(x), atol=1e-6)
    assert resolve_regressor(model) == ("upsample_head" if name.startswith("simplebaseline") else "head")
    head = [type(m).__name__ for m in split.head]
    assert head == (["DeconvUpsampler", "HeatmapHead"] if regressor == "upsample_head" else ["HeatmapHead"])


def test_regressor_split_is_validated():
    with pytest.raises(ValueError, match="upsample_head"):
        resolve_regressor(tiny_model("lite_hourglass_2x32", depth=2), "upsample_head")
    with pytest.raises(ValueError, match="regressor must be"):
        resolve_regressor(tiny_model(), "neck")
    with pytest.raises(ValueError, match="not a posekit PoseModel"):
        resolve_regressor(torch.nn.Conv2d(3, 14, 1))


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, 64, 64, generator=g)}


def split_states(model, regressor):
    head = {id(p) for p in regressor_split(model, regressor).head.parameters()}
    named = list(model.named_parameters())
    return ({n: p.detach().clone() for n, p in named if id(p) not in head},
            {n: p.detach().clone() for n, p in named if id(p) in head})


def changed(before, model):
    now = dict(model.named_parameters())
    return {n for n, p in before.items() if not torch.equal(p, now[n])}


def test_step_a_trains_only_the_source_regressor_and_the_intermediate_features():
    method = SFDA(flip_index=get_skeleton("lsp").flip_index, lr=1e-3).bind_model(tiny_model())
    assert method.regressor == "upsample_head"
    sr_g, sr_f = split_states(method.source_model, method.regressor)
    in_g, in_f = split_states(method.model, method.regressor)
    tg = {n: p.detach().clone() for n, p in method.target_model.named_parameters()}
    source_stats = {n: b.clone() for n, b in method.source_model.trunk.named_buffers()}
    logs = method.source_protection_step(batch()["image"])
    assert logs["loss_ft"] >= 0 and logs["loss_res"] >= 0
    assert not changed(sr_g, method.source_model)                      # G_sr frozen ...
    assert all(torch.equal(b, source_stats[n]) for n, b in method.source_model.trunk.named_buffers())  # ... BN too
    assert changed(sr_f, method.source_model) == set(sr_f)             # F_sr fine-tuned
    assert changed(in_g, method.model)                                 # G_in updated
    assert not changed(in_f, method.model)                             # F_in only by EMA
    assert not changed(tg, method.target_model)                        # f_tg only by the trainer's optimiser


def test_training_step_and_ema():
    method = SFDA(flip_index=get_skeleton("lsp").flip_index, lr=1e-3, ema=0.5).bind_model(tiny_model())
    out = method.training_step(batch())
    assert set(out) == {"loss", "loss_ft", "loss_res", "loss_con", "loss_cst", "loss_im"}
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.target_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert not any(p.grad is not None for p in method.model.parameters())  # the teacher gets no gradient
    with torch.no_grad():
        for p in method.target_model.parameters():
            p.add_(1.0)
    before = {n: p.detach().clone() for n, p in method.model.named_parameters()}
    target = dict(method.target_model.named_parameters())
    method.after_step()
    for n, p in method.model.named_parameters():
        assert torch.allclose(p, 0.5 * before[n] + 0.5 * target[n])
    assert method.iteration == 1


def test_zero_weights_skip_terms_and_all_zero_is_refused():
    method = SFDA(alpha=0.0, beta=0.0, gamma=0.0, finetune_weight=0.0).bind_model(tiny_model())
    out = method.training_step(batch())
    assert out["loss_res"] == 0 and out["loss_cst"] == 0 and out["loss_im"] == 0 and out["loss_ft"] == 0
    assert out["loss"] == out["loss_con"]
    with pytest.raises(ValueError, match="learn nothing"):
        SFDA(contrast_weight=0.0, beta=0.0, gamma=0.0)
    with pytest.raises(ValueError, match="alpha"):
        SFDA(alpha=-1.0)
    with pytest.raises(TypeError):
        SFDA(alhpa=0.5)  # typos are errors, not silently ignored


def test_state_dict_round_trip_and_registry():
    a = SFDA(lr=1e-3).bind_model(tiny_model())
    a.training_step(batch())
    b = build_method("sfda", lr=1e-3).bind_model(tiny_model())
    b.load_state_dict(a.state_dict())
    assert b.iteration == a.iteration == 1
    for x, y in zip(a.source_model.state_dict().values(), b.source_model.state_dict().values()):
        assert torch.equal(x, y)
    assert a.source_optimizer.state_dict()["state"].keys() == b.source_optimizer.state_dict()["state"].keys()


def test_step_a_follows_the_trainers_schedule_and_refuses_a_non_finite_step():
    method = SFDA(lr=1e-3).bind_model(tiny_model(), options={"nan_policy": "skip"})
    method.source_protection_step(batch()["image"], StepProgress(step=3, total_steps=10, lr_factor=0.25))
    assert method.source_optimizer.param_groups[0]["lr"] == 0.25 * 1e-3
    assert method.intermediate_optimizer.param_groups[0]["lr"] == 0.25 * 1e-4  # ten times smaller
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    source = {k: v.clone() for k, v in method.source_model.state_dict().items()}
    poisoned = batch()["image"].clone()
    poisoned[0, 0, 5, 5] = float("nan")
    logs = method.source_protection_step(poisoned)
    assert method.skipped_source_steps == 1 and not torch.isfinite(logs["loss_ft"])
    for name, value in method.model.state_dict().items():  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(value, before[name]), name
    for name, value in method.source_model.state_dict().items():
        assert torch.equal(value, source[name]), name
    strict = SFDA(lr=1e-3).bind_model(tiny_model())  # outside a trainer: nan_policy "raise"
    with pytest.raises(FloatingPointError, match="non-finite loss at sfda step A, iteration 0"):
        strict.source_protection_step(poisoned)


def test_target_samples_of_another_keypoint_set_get_the_sources_empty_joints(tmp_path):
    from posekit.checkpoint import save_checkpoint
    from posekit.data.sample import Sample
    source = tmp_path / "coco_source.pt"
    save_checkpoint(source, {"model": {}, "config": {"skeleton": "coco", "num_keypoints": 17}})
    lsp = Sample("a.jpg", np.array([0, 0, 10, 20], np.float32), np.ones((14, 3), np.float32), "lsp")
    kept = SFDA(source=str(source)).select_samples([lsp])
    assert kept[0].skeleton == "coco" and kept[0].keypoints.shape == (17, 3) and not kept[0].keypoints.any()
    assert lsp.keypoints.shape == (14, 3) and lsp.skeleton == "lsp"  # the loaded samples are not changed
    coco = Sample("b.jpg", np.array([0, 0, 10, 20], np.float32), np.ones((17, 3), np.float32), "coco")
    same = SFDA(source=str(source)).select_samples([coco])[0]
    assert same.keypoints.shape == (17, 3) and not same.keypoints.any()


def test_movenet_regressor_is_its_heatmap_head():
    model = build_model("movenet_lightning", num_keypoints=17).eval()
    assert resolve_regressor(model) == "head" and resolve_regressor(model, "own") == "own"
    assert [n for n, _ in regressor_split(model, "own").head.named_children()] == ["heatmap", "sigmoid"]


def test_spatial_probabilities_of_bf16_maps_are_float32_and_sum_to_one():
    # MoveNet's 48-wide maps under bf16 autocast: a bf16 softmax misses 1 by more than the losses' 1e-3 check
    maps = torch.randn(2, 17, 48, 48, generator=torch.Generator().manual_seed(0)).bfloat16() * 4
    px, py = spatial_probabilities(maps)
    assert px.dtype == py.dtype == torch.float32
    assert torch.allclose(px.sum(-1), torch.ones(2, 17), atol=1e-6)
    assert torch.equal(px, spatial_probabilities(maps.float())[0])
    assert torch.isfinite(information_maximization_loss((px, py)))
