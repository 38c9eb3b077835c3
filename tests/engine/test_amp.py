"""`amp` on the CPU: bf16 autocast for every registered model, head and method, with the loss, the gradients,
the optimiser state and the checkpoints in float32, and a resumed run bit-exact against an uninterrupted one."""
import dataclasses

import pytest
import torch

from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import METHODS, build_trainer
from posekit.methods.sfda import adapt_config
from posekit.models import build_model, list_models
from posekit.training.precision import autocast, float32_loss

SMALL = {"width": 0.25, "deconv_channels": 32}


def config(out, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(out), model="simplebaseline_r18", model_kwargs=SMALL,
                input_size=(64, 64), epochs=1, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=7,
                progress=False, max_iters_per_epoch=1, amp=True)
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, tiny_data):
    """A one-step supervised model: FPD's teacher and SFDA's source."""
    out = tmp_path_factory.mktemp("amp_source")
    build_trainer(config(out, tiny_data, amp=False)).fit()
    return out / "model.pt"


def method_config(name, out, ann, checkpoint) -> TrainConfig:
    """A one-step amp run of method ``name`` (with the options it needs)."""
    if name == "sfda":
        cfg = adapt_config(checkpoint, f"coco:{ann}", out, batch_size=8, max_iters_per_epoch=1, epochs=1, workers=0,
                           progress=False, seed=7)
        return dataclasses.replace(cfg, amp=True)
    kwargs = {"fpd": {"teacher": str(checkpoint)}, "okdhp": {"branches": 2},
              "advmix": {"generator_width": 8, "teacher": str(checkpoint)}}.get(name, {})
    return config(out, ann, method=name, method_kwargs=kwargs)


def record_conv_dtypes(model) -> list:
    """The output dtypes of ``model``'s convolutions (what a method's forward_all runs), appended as they run."""
    seen = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return seen


def assert_float32_training_state(trainer, checkpoint_path) -> None:
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    for state in trainer.optimizer.state.values():
        assert all(v.dtype == torch.float32 for v in state.values() if torch.is_tensor(v) and v.is_floating_point())
    payload = load_checkpoint(checkpoint_path)
    assert all(v.dtype == torch.float32 for v in payload["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_a_step_in_bf16_with_float32_state(tmp_path, tiny_data, small_checkpoint, name):
    trainer = build_trainer(method_config(name, tmp_path / name, tiny_data, small_checkpoint))
    seen = record_conv_dtypes(trainer.model)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    assert trainer.step == 1 and result["loss"] == result["loss"]  # finite, not NaN
    assert torch.bfloat16 in seen  # the step really ran under autocast
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert_float32_training_state(trainer, tmp_path / name / "last.pt")


@pytest.mark.parametrize("head,loss", [("heatmap", {}), ("dsnt", {}), ("regression", {"coord": "l2"}), ("rle", {}),
                                       ("regression", {"bone_loss": "limbs", "awl": True})])
def test_every_head_trains_a_step_in_bf16(tmp_path, tiny_data, head, loss):
    trainer = build_trainer(config(tmp_path, tiny_data, head=head, loss=loss))
    seen = record_conv_dtypes(trainer.model)
    result = trainer.fit()
    assert torch.bfloat16 in seen and result["loss"] == result["loss"]
    assert_float32_training_state(trainer, tmp_path / "model.pt")


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward_under_bf16_autocast(name):
    torch.manual_seed(0)
    model = build_model(name, num_keypoints=14).train()
    if getattr(model, "channels_last_training", True):
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with autocast("cpu", True):
        stages = model.forward_all(x)
        logs = float32_loss({"loss": sum(s.float().square().mean() for s in stages)})
    assert stages[-1].dtype == torch.bfloat16 and logs["loss"].dtype == torch.float32
    logs["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_autocast_is_off_unless_asked_and_the_float32_loss_is_the_same_tensor():
    x = torch.randn(4, 4)
    with autocast("cpu", False):
        assert (x @ x).dtype == torch.float32
    with autocast("cpu", True):
        assert (x @ x).dtype == torch.bfloat16
    logs = {"loss": x.sum()}
    assert float32_loss(logs)["loss"] is logs["loss"]
    assert float32_loss({"loss": x.sum().bfloat16()})["loss"].dtype == torch.float32


def test_amp_resume_after_a_stop_reaches_the_uninterrupted_weights(tmp_path, tiny_data):
    """Stop after epoch 1 (the trainer's checkpoint is all that survives), resume: bit-exact with amp on."""
    full = dict(epochs=2, max_iters_per_epoch=None)
    straight = build_trainer(config(tmp_path / "a", tiny_data, **full))
    straight.fit()
    build_trainer(config(tmp_path / "b", tiny_data, **(full | {"epochs": 1}))).fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data, **full), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    fp32 = build_trainer(config(tmp_path / "c", tiny_data, **full, amp=False))
    fp32.fit()
    assert any(not torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                      fp32.model.state_dict().values()))  # amp changed the arithmetic
