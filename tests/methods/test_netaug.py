"""NetAug with known answers: the base weights ARE the leading slices of every augmented model's tensors (and the
added weights are exactly the rest), zero added weights make an augmented model compute the base model, the
augmented loss's gradient reaches the base weights as the gradient of those slices, the base's BatchNorm statistics
move only with the base pass, and a training run (alone or with an FPD teacher) writes a plain base-architecture
checkpoint that predicts like the trained base and resumes exactly."""
import json

import numpy as np
import pytest
import torch
from torch.func import functional_call

from posekit.checkpoint import load_checkpoint
from posekit.cli import main as cli_main
from posekit.config import PoseConfig
from posekit.engine.trainer import TrainConfig
from posekit.inference.predictor import Predictor
from posekit.methods import METHODS, build_method, build_trainer
from posekit.methods.netaug import DEFAULT_WIDTHS, NetAug, parse_widths, widened_kwargs
from posekit.models import build_model
from posekit.models.heads import build_pose_model

STUDENT_KWARGS = {"width": 0.25, "deconv_channels": 32}


def pose_config(model="simplebaseline_r18", kwargs=STUDENT_KWARGS, head="heatmap"):
    return PoseConfig(model=model, model_kwargs=dict(kwargs), num_keypoints=14, codec={}, input_size=(64, 64),
                      skeleton="lsp", flip_index=tuple(range(14)), head=head)


def student(model="simplebaseline_r18", kwargs=STUDENT_KWARGS, head="heatmap"):
    torch.manual_seed(0)
    return build_pose_model(model, 14, kwargs, head)


def bound(widths=(1.5, 2.0), model="simplebaseline_r18", kwargs=STUDENT_KWARGS, head="heatmap", **options):
    net = student(model, kwargs, head)
    return net, NetAug(widths=widths, **options).bind_model(net, config=pose_config(model, kwargs, head))


def fake_batch(n=4, seed=0, side=64):
    g = torch.Generator().manual_seed(seed)
    heatmaps = torch.zeros(n, 14, side // 4, side // 4)
    heatmaps[:, :, 6:9, 6:9] = 1.0
    return {"image": torch.randn(n, 3, side, side, generator=g), "heatmaps": heatmaps, "weights": torch.ones(n, 14),
            "index": torch.arange(n)}


def config(out, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(out), model="simplebaseline_r18", model_kwargs=STUDENT_KWARGS,
                input_size=(64, 64), epochs=2, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=3,
                progress=False, max_iters_per_epoch=1, method="netaug", method_kwargs={"widths": [1.5, 2.0]})
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, tiny_data):
    """A (wider) supervised teacher, trained for one iteration: a real posekit checkpoint."""
    out = tmp_path_factory.mktemp("teacher")
    build_trainer(config(out, tiny_data, epochs=1, method="supervised", method_kwargs={},
                         model_kwargs={"width": 0.5, "deconv_channels": 32})).fit()
    return out / "model.pt"


# -- widths ----------------------------------------------------------------------------------------
def test_widths_and_the_widening_rule():
    assert DEFAULT_WIDTHS == (1.8, 2.6)  # the official MobileNetV2-Tiny multipliers [1.0, 1.8, 2.6] without 1.0
    assert parse_widths("2.6,1.8") == (1.8, 2.6) and parse_widths(2) == (2.0,) and parse_widths([3, 2, 2]) == (2.0, 3.0)
    for bad in ("", "1.0,2", [0.5]):
        with pytest.raises(ValueError, match="each > 1"):
            parse_widths(bad)
    # the compact student's largest augmented model is about the full-size SimpleBaseline-R18
    assert widened_kwargs({"width": 0.4, "deconv_channels": 96}, 2.6) == {"width": 1.04, "deconv_channels": 250}
    assert widened_kwargs({}, 1.5) == {"width": 1.5}
    assert widened_kwargs({"width": 0.5, "act": "relu", "deploy": True}, 2.0) == {"width": 1.0, "act": "relu",
                                                                                    "deploy": True}


# -- weight sharing --------------------------------------------------------------------------------
def test_added_weights_are_exactly_what_the_widest_model_adds():
    net, method = bound()
    widest = build_model("simplebaseline_r18", num_keypoints=14, **widened_kwargs(STUDENT_KWARGS, 2.0))
    def numel(module):
        return sum(p.numel() for p in module.parameters())
    assert numel(method.extra) == numel(widest) - numel(net)
    blocks = {k: tuple(v.shape) for k, v in method.extra.blocks.items()}
    assert blocks["trunk:0:0:weight@0"] == (16, 3, 7, 7)  # stem 16 -> 32 output channels; 3 colours stay
    assert blocks["trunk:2:body:0:0:weight@1"] == (16, 16, 3, 3)  # 16 -> 32 inputs of the base's 16 outputs
    assert blocks["trunk:2:body:0:0:weight@0"] == (16, 32, 3, 3)  # 16 -> 32 outputs of all 32 inputs
    assert blocks["head:weight@1"] == (14, 32, 1, 1)  # the 14 joints stay, the upsampler's 32 channels double
    assert "head:bias@0" not in blocks


@pytest.mark.parametrize("factor", [1.5, 2.0])
def test_base_weights_are_the_leading_slices_of_every_augmented_model(factor):
    net, method = bound()
    wide = build_model("simplebaseline_r18", num_keypoints=14, **widened_kwargs(STUDENT_KWARGS, factor))
    wide_shapes = {name: p.shape for name, p in wide.named_parameters()}
    assembled = method.augmented_weights(factor)
    assert len(assembled) == len(wide_shapes)
    for name, base in net.named_parameters():
        tensor = assembled[f"model.{name}"]
        assert tensor.shape == wide_shapes[name], name
        assert torch.equal(tensor[tuple(slice(0, s) for s in base.shape)], base), name
    # the smaller augmented model is the leading slice of the largest one
    largest = method.augmented_weights(2.0)
    for name, tensor in assembled.items():
        assert torch.equal(largest[name][tuple(slice(0, s) for s in tensor.shape)], tensor), name


@pytest.mark.parametrize("model, kwargs, head", [("simplebaseline_r18", STUDENT_KWARGS, "heatmap"),
                                                 ("simplebaseline_r18", STUDENT_KWARGS, "regression"),
                                                 ("movenet_lightning", {}, "heatmap")])
def test_zero_added_weights_make_the_augmented_model_compute_the_base_model(model, kwargs, head):
    net, method = bound(model=model, kwargs=kwargs, head=head)
    with torch.no_grad():
        for block in method.extra.blocks.values():
            block.zero_()
        images = fake_batch()["image"]
        base = net.train().forward_all(images)
        for factor in method.widths:
            augmented = method.forward_augmented(images, factor)
            assert len(augmented) == len(base)
            for a, b in zip(augmented, base):
                assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (factor, (a - b).abs().max())


def test_the_augmented_loss_reaches_the_base_weights_through_its_slices():
    net, method = bound()
    batch = fake_batch()
    structure, _ = method.augmented[2.0]
    weights = method.augmented_weights(2.0)
    for tensor in weights.values():
        tensor.retain_grad()
    method.supervised_loss(functional_call(structure, weights, (batch["image"],)), batch).backward()
    for name, base in net.named_parameters():
        assert base.grad is not None and base.grad.abs().sum() > 0, name
        assert torch.equal(base.grad, weights[f"model.{name}"].grad[tuple(slice(0, s) for s in base.shape)]), name
    assert all(block.grad is not None for block in method.extra.blocks.values())


def test_base_batchnorm_statistics_move_only_with_the_base_pass():
    net, method = bound()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    method.forward_augmented(fake_batch()["image"], 2.0)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    structure, _ = method.augmented[2.0]
    assert not any(True for _ in structure.buffers())  # the augmented models keep no running statistics
    method.training_step(fake_batch())
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_one_width_per_step_uniform_and_a_function_of_seed_and_step():
    _, method = bound(widths=(1.5, 2.0, 3.0))
    from posekit.methods.base import StepProgress
    drawn = [method.sample_width(StepProgress(step=s)) for s in range(300)]
    assert drawn == [method.sample_width(StepProgress(step=s)) for s in range(300)]
    counts = [drawn.count(w) for w in (1.5, 2.0, 3.0)]
    assert sum(counts) == 300 and min(counts) > 70  # uniform: 100 each expected
    out = method.training_step(fake_batch(), StepProgress(step=5))
    assert out["aug_width"] == drawn[5]
    assert torch.equal(out["loss"], out["loss_base"] + out["loss_aug"])  # alpha = 1


def test_models_netaug_cannot_widen_are_refused():
    with pytest.raises(ValueError, match="state its `width`"):  # its preset width 0.5 is not in model_kwargs
        bound(model="simplebaseline_r18_half", kwargs={})
    with pytest.raises(ValueError, match="takes `width`"):
        bound(model="lite_hourglass_2x32", kwargs={})
    with pytest.raises(ValueError, match="config"):
        NetAug().bind_model(student())
    with pytest.raises(ValueError, match="distributed"):
        NetAug().bind_model(student(), config=pose_config(), world_size=2)


# -- training --------------------------------------------------------------------------------------
def test_two_iterations_write_a_plain_base_model_that_predicts_like_the_trained_one(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path, tiny_data, val=f"coco:{tiny_data}"))
    assert isinstance(trainer.method, NetAug) and trainer.method.deploy_model() is trainer.model
    blocks_before = {k: v.clone() for k, v in trainer.method.extra.state_dict().items()}
    result = trainer.fit()
    assert {"loss_base", "loss_aug", "aug_width"} <= set(result) and "val" in result
    assert any(not torch.equal(blocks_before[k], v) for k, v in trainer.method.extra.state_dict().items())
    plain = build_model("simplebaseline_r18", num_keypoints=14, **STUDENT_KWARGS)
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt")
    assert type(predictor.model) is type(plain)
    assert predictor.model.state_dict().keys() == plain.state_dict().keys()
    assert sum(p.numel() for p in predictor.model.parameters()) == sum(p.numel() for p in plain.parameters())
    for (name, saved), trained in zip(predictor.model.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.equal(saved, trained), name
    x = fake_batch()["image"]
    trained = trainer.model.to(memory_format=torch.contiguous_format).eval()  # the trainer's is channels_last
    with torch.no_grad():
        assert torch.equal(predictor.model.eval()(x), trained(x))
    keypoints = predictor.predict(np.zeros((96, 96, 3), np.uint8), np.array([[0, 0, 96, 96]], np.float32))
    assert keypoints.shape == (1, 14, 3)
    last = load_checkpoint(tmp_path / "last.pt")  # the added weights live in last.pt only, for resume
    assert set(last["method"]["netaug"]) == {f"blocks.{k}" for k in trainer.method.extra.blocks}


def test_resume_is_exact(tmp_path, tiny_data):
    straight = build_trainer(config(tmp_path / "a", tiny_data))
    straight.fit()
    build_trainer(config(tmp_path / "b", tiny_data, epochs=1)).fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.method.extra.state_dict().items(), resumed.method.extra.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]
    assert straight.history[-1]["aug_width"] == resumed.history[-1]["aug_width"]


def test_with_a_teacher_both_models_learn_fpds_loss(teacher_ckpt):
    student_cfg = PoseConfig.from_dict(load_checkpoint(teacher_ckpt)["config"]).replace(model_kwargs=STUDENT_KWARGS)
    batch = fake_batch()
    with_teacher = NetAug(widths=2.0, teacher=str(teacher_ckpt), alpha=0.5).bind_model(student(), config=student_cfg)
    assert not with_teacher.uses_head_loss  # FPD distils heatmaps: the trainer refuses other heads
    out = with_teacher.training_step(batch)
    assert out["loss_pd_base"] > 0 and out["loss_pd_aug"] > 0
    assert torch.allclose(out["loss_base"], 0.5 * out["loss_pd_base"] + 0.5 * out["loss_gt_base"])
    # alpha = 0: the teacher counts for nothing, the loss is NetAug's alone, bit for bit
    silent = NetAug(widths=2.0, teacher=str(teacher_ckpt), alpha=0.0).bind_model(student(), config=student_cfg)
    alone = NetAug(widths=2.0).bind_model(student(), config=student_cfg)
    with torch.no_grad():
        assert torch.equal(silent.training_step(batch)["loss"], alone.training_step(batch)["loss"])


def test_posekit_train_method_netaug_with_a_teacher(tmp_path, tiny_data, teacher_ckpt, capsys):
    out = tmp_path / "cli"
    code = cli_main(["train", "--data", f"coco:{tiny_data}", "--out", str(out), "--model", "simplebaseline_r18",
                     "--model-kwargs", json.dumps(STUDENT_KWARGS), "--input-size", "64", "--epochs", "1",
                     "--batch-size", "8", "--workers", "0", "--max-iters", "1", "--no-progress",
                     "--method", "netaug", "--netaug-widths", "1.5,2", "--teacher", str(teacher_ckpt),
                     "--alpha", "0.5"])
    assert code == 0
    logs = json.loads(capsys.readouterr().out)
    assert logs["loss_pd_aug"] > 0 and logs["aug_width"] in (1.5, 2.0)
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "netaug" and saved["method_kwargs"]["widths"] == [1.5, 2.0]
    assert Predictor.from_checkpoint(out / "model.pt").model.state_dict().keys() == student().state_dict().keys()


def test_registered():
    assert METHODS.get("netaug") is NetAug
    method = build_method("netaug", widths="2.6,1.8", aug_weight=0.5)
    assert method.widths == (1.8, 2.6) and method.aug_weight == 0.5 and method.uses_head_loss
    with pytest.raises(ValueError, match="alpha"):
        build_method("netaug", alpha=2.0)
