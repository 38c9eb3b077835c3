"""Bad input, round two (issue #18): checkpoints, training options and run folders.

Known answers: each structurally wrong checkpoint is one line naming the file and what is wrong (never torch's
advice to load with ``weights_only=False``); each bad training option is refused naming it before the run
folder is touched; ``--nan-policy skip`` stops once its budget of skipped steps is spent and never writes a
weight that is not finite; a used run folder is refused unless resumed or overwritten; temp files of a killed
checkpoint write are removed by the next run.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

from posekit.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from posekit.cli import main
from posekit.codecs import HeatmapCodec
from posekit.config import PoseConfig
from posekit.data.sample import DataError
from posekit.engine.train_config import TrainConfig, TrainOptionError
from posekit.inference.predictor import Predictor
from posekit.methods import build_trainer

TINY = {"width": 0.25, "deconv_channels": 32}


def tiny_pose_config(**changes) -> PoseConfig:
    return PoseConfig(model="simplebaseline_r18", model_kwargs=dict(TINY), num_keypoints=3,
                      codec=HeatmapCodec((64, 64)).to_config(), input_size=(64, 64), skeleton="tiny",
                      flip_index=(0, 2, 1)).replace(**changes)


def good_payload() -> dict:
    torch.manual_seed(0)
    config = tiny_pose_config()
    return {"model": config.build_model().state_dict(), "config": config.to_dict()}


def without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def broken_payloads() -> dict:
    """name -> (what torch.save writes, the words the one-line error must contain)."""
    good = good_payload()
    weights, config = good["model"], good["config"]
    first = next(iter(weights))
    return {
        "no_codec": ({**good, "config": without(config, "codec")}, "config lacks 'codec'"),
        "missing_weight": ({**good, "model": without(weights, first)}, f"1 missing ({first})"),
        "misshaped_weight": ({**good, "model": {**weights, first: torch.zeros(2)}}, f"{first} (2,) (model"),
        "bare_tensor": (torch.zeros(3), "holds a bare tensor of shape (3,)"),
        "bare_list": ([1, 2, 3], "holds a list, not a posekit checkpoint"),
        "negative_input_size": ({**good, "config": {**config, "input_size": [-64, 64]}}, "input_size must be (W, H)"),
        "unknown_model_option": ({**good, "config": {**config, "model": {"name": "simplebaseline_r18", "kwargs": {
            **config["model"]["kwargs"], "wings": 2}}}}, "cannot build: "),
        "flip_index_out_of_range": ({**good, "config": {**config, "flip_index": [0, 2, 7]}},
                                    "flip_index must be a permutation of 0..2, got [7] (out of range)"),
        "weights_not_tensors": ({**good, "model": {"a": [1.0]}}, "'model' must be a state dict"),
        "unknown_codec": ({**good, "config": {**config, "codec": {"type": "NoSuchCodec"}}}, "cannot build"),
    }


@pytest.mark.parametrize("name", sorted(broken_payloads()))
def test_structurally_wrong_checkpoints_are_one_line_naming_the_file(tmp_path, name):
    payload, words = broken_payloads()[name]
    path = tmp_path / f"{name}.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message


def test_the_good_payload_loads(tmp_path):
    save_checkpoint(tmp_path / "good.pt", good_payload())
    model, config = load_model(tmp_path / "good.pt")
    assert config.num_keypoints == 3 and not model.training


class RunsCode:
    def __reduce__(self):
        return os.getcwd, ()


@pytest.mark.parametrize("content", ["pickled_code", "random_bytes"])
def test_unloadable_files_never_repeat_the_weights_only_advice(tmp_path, content):
    path = tmp_path / "x.pt"
    if content == "pickled_code":
        torch.save({"model": RunsCode()}, path)
    else:
        path.write_bytes(bytes(range(256)) * 2)  # fixed bytes: random ones sometimes fail with another error
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a loadable posekit checkpoint") and "weights_only" not in message
    assert ("getcwd" in message) if content == "pickled_code" else ("UnpicklingError" in message)


def test_random_bytes_named_onnx_are_one_line(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match=rf"^{path}: not an ONNX model"):
        Predictor.load(path)


# -- training options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, words", [
    ({"train": "coco:x.json", "epochs": "three"}, "'epochs' must be an integer, got str 'three'"),
    ({"train": "coco:x.json", "input_size": 0}, "'input_size' must be [W, H]"),
    ({"train": "coco:x.json", "input_size": [64, "64"]}, "'input_size' must be [W, H]"),
    ({"train": "coco:x.json", "batch_size": 0}, "'batch_size' must be at least 1, got 0"),
    ({"train": "coco:x.json", "epochs": -1}, "'epochs' must be at least 1, got -1"),
    ({"train": "coco:x.json", "lr": True}, "'lr' must be a number, got bool"),
    ({"train": "coco:x.json", "augment": {"scael": 0.3}}, "unknown augmentation option 'scael'"),
    ({"train": "coco:x.json", "max_skipped_share": 2}, "between 0 and 1"),
    ({"epochs": 3}, "the training data is not given"),
])
def test_bad_training_options_are_refused_naming_the_option(options, words):
    with pytest.raises(TrainOptionError) as info:
        TrainConfig.from_dict(options)
    assert words in str(info.value)


def test_a_config_file_error_names_the_file_and_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    for content, words in (("[1, 2]", "must be a JSON object, got [1, 2]"),
                           ('{"train": "coco:x.json", "epochs": "three"}', "'epochs' must be an integer"),
                           ('{"train": "coco:x.json", "batch_size": 0}', "'batch_size' must be at least 1")):
        (tmp_path / "cfg.json").write_text(content)
        assert main(["train", "--config", str(tmp_path / "cfg.json"), "--out", str(run)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"posekit train: error: {tmp_path / 'cfg.json'}") and words in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", "--data", "coco:x.json", "--out", str(run), "--epochs", "-1", "--resume"]) == 2
    assert "'epochs' must be at least 1, got -1" in capsys.readouterr().err
    assert len((run / "log.jsonl").read_text().splitlines()) == 3  # the log was not trimmed


# -- NaN budget, finite checkpoints, run folders -----------------------------------------------------------------
def run_config(out, ann, **overrides) -> TrainConfig:
    base = dict(train=f"coco:{ann}", out=str(out), model="simplebaseline_r18", model_kwargs=dict(TINY),
                input_size=(64, 64), epochs=2, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=5,
                progress=False)
    return TrainConfig(**(base | overrides))


def always_nan(trainer) -> None:
    real = trainer.method.training_step
    trainer.method.training_step = lambda batch, progress: {**real(batch, progress),
                                                            "loss": real(batch, progress)["loss"] * float("nan")}


def test_skip_policy_stops_once_more_than_its_share_is_skipped(tmp_path, tiny_data):
    trainer = build_trainer(run_config(tmp_path, tiny_data, nan_policy="skip"))  # 6 steps: 5 % is 0.3 of one
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    always_nan(trainer)
    with pytest.raises(FloatingPointError, match=r"stopped: 1 steps were skipped .* more than 5% of the run's 6 steps"):
        trainer.fit()
    assert trainer.skipped_nonfinite == 1 and not (tmp_path / "model.pt").exists()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_weights_that_are_not_finite_are_never_written(tmp_path, tiny_data):
    trainer = build_trainer(run_config(tmp_path, tiny_data, epochs=1, max_iters_per_epoch=1))
    real_after = trainer.method.after_step

    def explode(progress):  # stands in for a finite step that overflowed the weights
        real_after(progress)
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("inf"))
    trainer.method.after_step = explode
    with pytest.raises(FloatingPointError, match="non-finite weights .* last.pt not written"):
        trainer.fit()
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "model.pt").exists()


def test_a_used_folder_needs_resume_or_overwrite_and_overwrite_leaves_nothing_stale(tmp_path, tiny_data):
    out = tmp_path / "run"
    build_trainer(run_config(out, tiny_data, epochs=1, val=f"coco:{tiny_data}")).fit()
    assert (out / "best.pt").exists()
    with pytest.raises(FileExistsError) as info:
        build_trainer(run_config(out, tiny_data, epochs=1))
    assert str(info.value) == (f"{out} holds a previous run (last.pt, best.pt, model.pt, log.jsonl): pass --resume "
                               f"to continue it or --overwrite to replace it")
    build_trainer(run_config(out, tiny_data, epochs=1), overwrite=True).fit()  # no val: no best.pt of its own
    assert not (out / "best.pt").exists() and (out / "model.pt").exists()


def test_temp_files_of_a_killed_checkpoint_write_are_removed_by_the_next_run(tmp_path, tiny_data):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".last.pt.k3x9_a1z.tmp", out / ".model.pt.00000000.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)
    kept = out / ".notes.tmp"  # not a checkpoint temp file: left alone
    kept.write_text("mine")
    build_trainer(run_config(out, tiny_data, epochs=1, max_iters_per_epoch=1))
    assert not any(p.exists() for p in stale) and kept.exists()


def test_no_usable_training_person_names_the_file(tmp_path):
    (tmp_path / "ann.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match=r"ann.json: no usable person to train on: it holds no annotations"):
        build_trainer(run_config(tmp_path / "run", tmp_path / "ann.json"))
