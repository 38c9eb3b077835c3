"""OKDHP with known answers: the KL is zero when a branch equals the ensemble, the ensemble of identical branches
is that branch, shared part + branch 0 IS the plain model for every family, and a training run writes plain
single-branch checkpoints and resumes exactly."""
import json
import math

import numpy as np
import pytest
import torch

from posekit.cli import main as cli_main
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.inference.predictor import Predictor
from posekit.methods import METHODS, build_method, build_trainer
from posekit.methods.okdhp import (OKDHP, FeatureAggregationUnit, aggregate, pixelwise_kl, rampup_weight,
                                   split_model)
from posekit.models import build_model

STUDENT_KWARGS = {"width": 0.25, "deconv_channels": 32}


def config(out, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(out), model="simplebaseline_r18", model_kwargs=STUDENT_KWARGS,
                input_size=(64, 64), epochs=2, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=3,
                progress=False, max_iters_per_epoch=1, method="okdhp")
    return TrainConfig(**(base | kw))


def student(name="simplebaseline_r18", kwargs=STUDENT_KWARGS):
    torch.manual_seed(0)
    return build_model(name, num_keypoints=14, **kwargs)


def fake_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    heatmaps = torch.zeros(n, 14, 16, 16)
    heatmaps[:, :, 6:9, 6:9] = 1.0
    return {"image": torch.randn(n, 3, 64, 64, generator=g), "heatmaps": heatmaps, "weights": torch.ones(n, 14),
            "index": torch.arange(n)}


# -- the loss ------------------------------------------------------------------------------------
def test_kl_is_zero_when_a_branch_equals_the_ensemble():
    g = torch.Generator().manual_seed(0)
    heatmaps = torch.randn(2, 5, 8, 8, generator=g)
    assert pixelwise_kl(heatmaps, heatmaps.clone()) == 0
    assert pixelwise_kl(heatmaps, heatmaps + 3.0) < 1e-6  # a constant shift leaves the spatial softmax as it was
    other = torch.randn(2, 5, 8, 8, generator=g)
    assert pixelwise_kl(heatmaps, other) > 0


def test_kl_hand_value_masking_and_temperature():
    # one image, one joint, two pixels: target logits (0, 0) -> (1/2, 1/2); student (log 3, 0) -> (3/4, 1/4)
    student = torch.tensor([math.log(3.0), 0.0]).reshape(1, 1, 1, 2)
    target = torch.zeros(1, 1, 1, 2)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(target || student)
    assert pixelwise_kl(student, target).item() == pytest.approx(expected / 2, rel=1e-6)  # / (N * h * w) = 2
    assert pixelwise_kl(student, target, torch.zeros(1, 1)) == 0  # an unlabelled joint is left out
    two = torch.cat([student, student]), torch.cat([target, target])
    assert pixelwise_kl(*two, torch.tensor([[1.0], [0.0]])).item() == pytest.approx(expected / 4, rel=1e-6)
    # temperature T: logits / T, then x T^2
    t = 2.0
    p = torch.softmax(torch.tensor([math.log(3.0), 0.0]) / t, 0)
    expected_t = float((0.5 * torch.log(0.5 / p)).sum()) * t * t / 2
    assert pixelwise_kl(student, target, temperature=t).item() == pytest.approx(expected_t, rel=1e-5)


def test_the_ensemble_of_identical_branches_is_that_branch():
    torch.manual_seed(0)
    fau = FeatureAggregationUnit(16, num_branches=3, num_keypoints=14)
    z = torch.randn(2, 16, 8, 8)
    heatmaps = torch.randn(2, 14, 16, 16)
    weights = fau.weights(z)
    assert weights.shape == (2, 3, 14)
    assert torch.allclose(weights.sum(dim=1), torch.ones(2, 14), atol=1e-6)
    assert weights.std() > 0  # not a plain average
    torch.testing.assert_close(fau(z, [heatmaps, heatmaps.clone(), heatmaps.clone()]), heatmaps, atol=1e-6, rtol=1e-6)
    # channel-wise: each joint mixes the branches with its own weights
    one_hot = torch.zeros(1, 2, 3)
    one_hot[0, 0, 0] = one_hot[0, 1, 1] = one_hot[0, 1, 2] = 1.0
    a, b = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert aggregate(one_hot, [a, b])[0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]


def test_identical_branches_give_zero_distillation_in_a_training_step():
    method = OKDHP(branches=3).bind_model(student())
    for branch in method.extra.branches:  # make every branch a copy of branch 0
        branch.load_state_dict(method.split.branch.state_dict())
    with torch.no_grad():
        shared, branches, ensemble = method.forward_branches(fake_batch()["image"])
        torch.testing.assert_close(ensemble, branches[0][-1], atol=1e-6, rtol=1e-5)
        out = method.training_step(fake_batch())
    assert out["loss_kd"] < 1e-9
    assert out["loss_gt"] > 0 and out["loss_ens"] > 0


def test_rampup_is_the_official_sigmoid():
    assert rampup_weight(0.0) == pytest.approx(math.exp(-5))
    assert rampup_weight(0.5) == pytest.approx(math.exp(-1.25))
    assert rampup_weight(1.0) == 1.0 and rampup_weight(3.0) == 1.0


# -- the multi-branch network --------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs,shared_stages", [
    ("simplebaseline_r18", STUDENT_KWARGS, 0),
    ("repvgg_lite", {"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}, 0),
    ("lite_hourglass_2x32", {}, 1),
    ("hourglass", {"num_stacks": 4, "channels": 16, "depth": 2, "block": "narrow"}, 2),
])
def test_shared_part_plus_branch_zero_is_the_plain_model(name, kwargs, shared_stages):
    model = student(name, kwargs).eval()
    method = OKDHP(branches=2).bind_model(model)
    method.extra.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        shared, branches, ensemble = method.forward_branches(x)
        plain = model.forward_all(x)
    assert len(shared) == shared_stages and len(branches) == 2
    assert len(shared) + len(branches[0]) == len(plain)
    for mine, theirs in zip(shared + branches[0], plain):
        assert torch.equal(mine, theirs)
    assert ensemble.shape == plain[-1].shape
    # the extra branch is a fresh network of the same shape, not a copy of branch 0
    own = dict(method.split.branch.named_parameters())
    extra = dict(method.extra.branches[0].named_parameters())
    assert own.keys() == extra.keys()
    assert all(own[k].shape == extra[k].shape for k in own)
    assert any(not torch.equal(own[k], extra[k]) for k in own if own[k].dim() > 1)
    # and shares no storage with the model
    model_ptrs = {p.data_ptr() for p in model.parameters()}
    assert not model_ptrs & {p.data_ptr() for p in method.extra.parameters()}


def test_split_options_and_models_that_state_no_trunk():
    model = student()
    whole_trunk = split_model(model, shared=len(model.trunk))
    assert len(whole_trunk.branch.tail) == 0  # the MobilePose variant: one decoder per branch
    assert whole_trunk.feature_channels == model.trunk.out_channels
    with pytest.raises(ValueError, match="shared"):
        split_model(model, shared=99)
    with pytest.raises(ValueError, match="branches"):
        OKDHP(branches=1)

    class Opaque(torch.nn.Module):  # an architecture that does not say how it splits into trunk and head
        num_keypoints = 14

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 14, 3, stride=4, padding=1)

        def forward_all(self, x):
            return [self.conv(x)]

    with pytest.raises(ValueError, match=r"Opaque states no trunk of stages \(PoseModel.split_trunk_head\)"):
        OKDHP(branches=2).bind_model(Opaque())  # a clear error, not a silent "nothing shared"
    method = OKDHP(branches=2, shared=0).bind_model(Opaque())  # asked for: whole-model branches
    assert "nothing shared" in method.split.description
    out = method.training_step(fake_batch())
    assert torch.isfinite(out["loss"])


# -- training --------------------------------------------------------------------------------------
def test_two_iterations_write_a_plain_single_branch_model(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path, tiny_data, val=f"coco:{tiny_data}",
                             method_kwargs={"branches": 3, "kd_weight": 2.0, "temperature": 1.0}))
    assert isinstance(trainer.method, OKDHP) and trainer.method.deploy_model() is trainer.model
    extra_before = {k: v.clone() for k, v in trainer.method.extra.state_dict().items()}
    result = trainer.fit()
    assert {"loss_gt", "loss_ens", "loss_kd", "kd_ramp"} <= set(result) and "val" in result
    # ramp-up over the first 40% of the 2 steps (at least one step): exp(-5) at step 0, full weight at step 1
    assert trainer.history[0]["kd_ramp"] == pytest.approx(math.exp(-5)) and result["kd_ramp"] == 1.0
    assert any(not torch.equal(extra_before[k], v) for k, v in trainer.method.extra.state_dict().items())
    plain = build_model("simplebaseline_r18", num_keypoints=14, **STUDENT_KWARGS)
    for name in ("model.pt", "best.pt"):
        predictor = Predictor.from_checkpoint(tmp_path / name)
        assert type(predictor.model) is type(plain)
        assert sum(p.numel() for p in predictor.model.parameters()) == sum(p.numel() for p in plain.parameters())
        assert predictor.model.state_dict().keys() == plain.state_dict().keys()
    keypoints = Predictor.from_checkpoint(tmp_path / "model.pt").predict(
        np.zeros((96, 96, 3), np.uint8), np.array([[0, 0, 96, 96]], np.float32))
    assert keypoints.shape == (1, 14, 3)
    # the extra branches and the FAU live in last.pt only, for resume
    last = load_checkpoint(tmp_path / "last.pt")
    assert any(k.startswith("branches.1.") for k in last["method"]["okdhp"])
    assert any(k.startswith("fau.") for k in last["method"]["okdhp"])


def test_resume_is_exact(tmp_path, tiny_data):
    straight = build_trainer(config(tmp_path / "a", tiny_data, method_kwargs={"branches": 2}))
    straight.fit()
    first = build_trainer(config(tmp_path / "b", tiny_data, method_kwargs={"branches": 2}, epochs=1))
    first.fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data, method_kwargs={"branches": 2}), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.method.extra.state_dict().items(), resumed.method.extra.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]


def test_posekit_train_method_okdhp(tmp_path, tiny_data, capsys):
    cfg = tmp_path / "okdhp.json"
    cfg.write_text(json.dumps({"method_kwargs": {"branches": 2, "kd_weight": 4.0, "temperature": 2.0}}))
    out = tmp_path / "cli"
    code = cli_main(["train", "--config", str(cfg), "--data", f"coco:{tiny_data}", "--out", str(out),
                     "--model", "lite_hourglass_2x32", "--input-size", "64", "--epochs", "1", "--batch-size", "8",
                     "--workers", "0", "--max-iters", "1", "--no-progress", "--method", "okdhp"])
    assert code == 0
    assert "loss_kd" in json.loads(capsys.readouterr().out)
    predictor = Predictor.from_checkpoint(out / "model.pt")
    assert predictor.model.num_stacks == 2
    assert sum(p.numel() for p in predictor.model.parameters()) == \
        sum(p.numel() for p in build_model("lite_hourglass_2x32", num_keypoints=14).parameters())


def test_registered():
    assert METHODS.get("okdhp") is OKDHP
    method = build_method("okdhp", branches=2)
    assert isinstance(method, OKDHP) and method.num_branches == 2
    assert isinstance(method.bind_model(student()), OKDHP) and len(method.extra.branches) == 1
