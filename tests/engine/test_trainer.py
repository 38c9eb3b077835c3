import json

import numpy as np
import pytest
import torch

from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import Trainer, TrainConfig, epoch_indices, lr_factor


def config(tmp_path, ann, **kw):
    base = dict(train=f"coco:{ann}", val=f"coco:{ann}", out=str(tmp_path / "run"), model="simplebaseline_r18",
                model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=2, batch_size=8,
                lr=1e-3, warmup_iters=2, workers=0, seed=7, progress=False)
    return TrainConfig(**(base | kw))


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_ranks_split_one_permutation():
    a, b = epoch_indices(10, 1, 0, 0, 2), epoch_indices(10, 1, 0, 1, 2)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    assert epoch_indices(10, 1, 0, 0, 1) != epoch_indices(10, 1, 1, 0, 1)


def test_train_writes_log_and_checkpoints(tmp_path, tiny_data):
    cfg = config(tmp_path, tiny_data)
    result = Trainer(cfg).fit()
    assert np.isfinite(result["loss"]) and "pck@0.2_torso" in result["val"]
    lines = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    payload = load_checkpoint(tmp_path / "run" / "model.pt")
    assert payload["config"]["model"]["name"] == "simplebaseline_r18"
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temp files


def test_resume_reaches_the_same_weights(tmp_path, tiny_data):
    straight = Trainer(config(tmp_path / "a", tiny_data, val=None))
    straight.fit()
    first = Trainer(config(tmp_path / "b", tiny_data, val=None, epochs=1))
    first.fit()
    resumed = Trainer(config(tmp_path / "b", tiny_data, val=None, epochs=2), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_nonfinite_loss_is_reported_or_skipped(tmp_path, tiny_data, monkeypatch):
    trainer = Trainer(config(tmp_path, tiny_data, val=None, epochs=1))
    real_step = trainer.method.training_step
    monkeypatch.setattr(trainer.method, "training_step", lambda batch: {"loss": real_step(batch)["loss"] * float("nan")})
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        trainer.fit()
    skipping = Trainer(config(tmp_path / "s", tiny_data, val=None, epochs=1, nan_policy="skip"))
    monkeypatch.setattr(skipping.method, "training_step", lambda batch: {"loss": torch.tensor(float("nan"), requires_grad=True)})
    skipping.fit()
    assert skipping.skipped_nonfinite == skipping.steps_per_epoch


def test_unwritable_output_fails_before_training(tmp_path, tiny_data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="not writable"):
        Trainer(config(tmp_path, tiny_data, out=str(blocker / "run")))


def test_models_that_opt_out_of_channels_last_train_in_the_default_format(tmp_path, tiny_data):
    trainer = Trainer(config(tmp_path, tiny_data, val=None, model="repvgg_lite", epochs=1, max_iters_per_epoch=2,
                             model_kwargs={"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}))
    assert trainer.channels_last is False
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_threads_option_sets_torch_threads(tmp_path, tiny_data):
    before = torch.get_num_threads()
    try:
        Trainer(config(tmp_path, tiny_data, val=None, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
