import json

import numpy as np
import pytest
import torch

from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import Trainer, TrainConfig
from posekit.methods import build_method, build_trainer


def config(tmp_path, ann, **kw):
    base = dict(train=f"coco:{ann}", val=f"coco:{ann}", out=str(tmp_path / "run"), model="simplebaseline_r18",
                model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=2, batch_size=8,
                lr=1e-3, warmup_iters=2, workers=0, seed=7, progress=False)
    return TrainConfig(**(base | kw))


def test_the_trainer_runs_the_method_it_is_handed_and_only_that_one(tmp_path, tiny_data):
    cfg = config(tmp_path, tiny_data, val=None, epochs=1, max_iters_per_epoch=1)
    method = build_method("supervised")
    trainer = Trainer(cfg, method)
    assert trainer.method is method and method.model is trainer.model and method.ctx.config.num_keypoints == 14
    assert method.ctx.total_steps == trainer.total_steps == 1 and method.ctx.options["lr"] == cfg.lr
    with pytest.raises(ValueError, match="names method 'supervised', but the trainer was handed 'okdhp'"):
        Trainer(cfg, build_method("okdhp"))


def test_checkpoint_config_is_the_pose_config_plus_the_training_options(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path, tiny_data, val=None))
    stored = trainer.model_config()
    assert stored["version"] == 2 and stored["padding"] == 1.25 and stored["train"] == trainer.cfg.to_dict()
    assert set(stored) == {"version", "model", "codec", "input_size", "num_keypoints", "skeleton", "flip_index",
                           "padding", "train"}
    assert stored["model"] == {"name": "simplebaseline_r18", "kwargs": {"num_keypoints": 14, "width": 0.25,
                                                                        "deconv_channels": 32}}
    rle = build_trainer(config(tmp_path / "rle", tiny_data, val=None, head="rle")).model_config()
    assert set(rle) == set(stored) | {"head"} and rle["head"] == {"type": "rle", "kwargs": {}}


def test_train_writes_log_and_checkpoints(tmp_path, tiny_data):
    cfg = config(tmp_path, tiny_data)
    result = build_trainer(cfg).fit()
    assert np.isfinite(result["loss"]) and "pck@0.2_torso" in result["val"]
    lines = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    payload = load_checkpoint(tmp_path / "run" / "model.pt")
    assert payload["config"]["model"]["name"] == "simplebaseline_r18"
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temp files


def test_resume_reaches_the_same_weights(tmp_path, tiny_data):
    straight = build_trainer(config(tmp_path / "a", tiny_data, val=None))
    straight.fit()
    first = build_trainer(config(tmp_path / "b", tiny_data, val=None, epochs=1))
    first.fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data, val=None, epochs=2), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_nonfinite_loss_is_reported_or_skipped(tmp_path, tiny_data, monkeypatch):
    trainer = build_trainer(config(tmp_path, tiny_data, val=None, epochs=1))
    real_step = trainer.method.training_step
    monkeypatch.setattr(trainer.method, "training_step",
                        lambda batch, progress: {"loss": real_step(batch, progress)["loss"] * float("nan")})
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        trainer.fit()
    skipping = build_trainer(config(tmp_path / "s", tiny_data, val=None, epochs=1, nan_policy="skip",
                                    max_skipped_share=1.0))  # every step may be skipped (default: 5 %)
    monkeypatch.setattr(skipping.method, "training_step",
                        lambda batch, progress: {"loss": torch.tensor(float("nan"), requires_grad=True)})
    skipping.fit()
    assert skipping.skipped_nonfinite == skipping.steps_per_epoch


def test_unwritable_output_fails_before_training(tmp_path, tiny_data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="not writable"):
        build_trainer(config(tmp_path, tiny_data, out=str(blocker / "run")))


def test_models_that_opt_out_of_channels_last_train_in_the_default_format(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path, tiny_data, val=None, model="repvgg_lite", epochs=1, max_iters_per_epoch=2,
                             model_kwargs={"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}))
    assert trainer.channels_last is False
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_threads_option_sets_torch_threads(tmp_path, tiny_data):
    before = torch.get_num_threads()
    try:
        build_trainer(config(tmp_path, tiny_data, val=None, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_crop_cache_is_built_in_cache_dir_and_can_be_turned_off(tmp_path, tiny_data):
    cached = build_trainer(config(tmp_path / "a", tiny_data, val=None, cache_dir=str(tmp_path / "crops")))
    assert cached.dataset.crop_cache is not None
    assert cached.dataset.crop_cache.directory.parent == tmp_path / "crops"
    plain = build_trainer(config(tmp_path / "b", tiny_data, val=None, crop_cache=False))
    assert plain.dataset.crop_cache is None
    a, b = cached.dataset[3], plain.dataset[3]
    assert torch.equal(a["heatmaps"], b["heatmaps"]) and torch.equal(a["matrix"], b["matrix"])
