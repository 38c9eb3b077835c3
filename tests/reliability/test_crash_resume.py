"""Crash-safe training: SIGKILL + --resume reaches the uninterrupted run's weights and losses exactly, a write
killed half-way leaves the previous checkpoint loadable, an unusable output folder fails before training."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from posekit.data.synth import generate_dataset
from posekit import checkpoint as checkpoint_module
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = {"width": 0.25, "deconv_channels": 32}
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """24 synthetic LSP people at 64x64: 3 steps of 8 per epoch."""
    return generate_dataset(tmp_path_factory.mktemp("synth24"), 24, style="flat", skeleton="lsp", seed=1, size=(64, 64))


def config(out, ann, **overrides) -> TrainConfig:
    base = dict(train=f"coco:{ann}", out=str(out), model="simplebaseline_r18", model_kwargs=dict(TINY_MODEL),
                input_size=(64, 64), epochs=3, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=5,
                progress=False)
    return TrainConfig(**(base | overrides))


def log_records(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- SIGKILL in the middle of `posekit train`, then --resume ---------------------------------------------
def train_command(ann, out, *extra) -> list[str]:
    return [sys.executable, "-m", "posekit.cli", "train", "--data", f"coco:{ann}", "--val", f"coco:{ann}",
            "--out", str(out), "--model", "simplebaseline_r18", "--model-kwargs", json.dumps(TINY_MODEL),
            "--input-size", "64", "--epochs", "8", "--batch-size", "8", "--lr", "1e-3", "--workers", "0",
            "--seed", "3", "--no-progress", *extra]


@pytest.fixture(scope="module")
def kill_data(tmp_path_factory):
    """48 images: 6 steps per epoch, long enough that the kill lands well inside the run."""
    return generate_dataset(tmp_path_factory.mktemp("synth48"), 48, style="flat", skeleton="lsp", seed=2, size=(64, 64))


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, kill_data):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    victim = subprocess.Popen(train_command(kill_data, crashed), cwd=REPO_ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (crashed / "last.pt").exists():
            assert victim.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (crashed / "model.pt").exists(), "the run finished before the kill: the test proves nothing"
    interrupted_at = load_checkpoint(crashed / "last.pt")["epoch"]
    assert 1 <= interrupted_at < 8

    # the uninterrupted reference runs while nothing else competes for the CPU
    subprocess.run(train_command(kill_data, straight), cwd=REPO_ROOT, env=ENV, check=True, capture_output=True,
                   timeout=300)
    resumed = subprocess.run(train_command(kill_data, crashed, "--resume"), cwd=REPO_ROOT, env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {crashed / 'last.pt'} at epoch {interrupted_at}" in resumed.stderr

    assert_same_weights(load_checkpoint(straight / "model.pt")["model"], load_checkpoint(crashed / "model.pt")["model"])
    assert_same_weights(load_checkpoint(straight / "best.pt")["model"], load_checkpoint(crashed / "best.pt")["model"])
    reference, recovered = log_records(straight), log_records(crashed)
    assert [r["epoch"] for r in recovered] == list(range(1, 9))
    for ref, rec in zip(reference, recovered):
        assert (rec["loss"], rec["lr"], rec["val"]) == (ref["loss"], ref["lr"], ref["val"]), rec["epoch"]


# -- a checkpoint write killed half-way -------------------------------------------------------------------
class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing on the way may swallow it."""


def die_during_nth_save(monkeypatch, n: int) -> list[int]:
    """Make the n-th torch.save (1-based) write half of its bytes, then 'die'. Returns the call counter."""
    real_save = torch.save
    calls = [0]

    def dying_save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] != n:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise Killed()

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    return calls


def test_killed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, tiny_data, monkeypatch):
    reference = build_trainer(config(tmp_path / "straight", tiny_data))
    reference.fit()

    out = tmp_path / "crashed"
    die_during_nth_save(monkeypatch, 2)  # save 1 = last.pt after epoch 1, save 2 = last.pt after epoch 2
    with pytest.raises(Killed):
        build_trainer(config(out, tiny_data)).fit()
    monkeypatch.undo()
    payload = load_checkpoint(out / "last.pt")  # intact, from epoch 1
    assert payload["epoch"] == 1 and payload["step"] == 3
    assert not list(out.glob(".last.pt.*")), "the half-written temp file was left behind"

    resumed = build_trainer(config(out, tiny_data), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    assert_same_weights(reference.model.state_dict(), resumed.model.state_dict())
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in reference.history]


def test_log_has_each_epoch_once_after_a_crash_between_log_and_checkpoint(tmp_path, tiny_data, monkeypatch):
    """The epoch-2 log line is written before the epoch-2 checkpoint; a crash in between must not leave
    epoch 2 twice in log.jsonl once the resumed run has redone it."""
    out = tmp_path / "crashed"
    die_during_nth_save(monkeypatch, 2)
    with pytest.raises(Killed):
        build_trainer(config(out, tiny_data)).fit()
    monkeypatch.undo()
    build_trainer(config(out, tiny_data), resume=True).fit()
    assert [r["epoch"] for r in log_records(out)] == [1, 2, 3]


def test_fresh_run_in_a_used_folder_is_refused_unless_overwrite(tmp_path, tiny_data):
    build_trainer(config(tmp_path / "run", tiny_data, epochs=1)).fit()
    before = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="holds a previous run .*--resume.*--overwrite"):
        build_trainer(config(tmp_path / "run", tiny_data, epochs=2))  # no resume, no overwrite: refused
    assert (tmp_path / "run" / "model.pt").read_bytes() == before  # nothing of the previous run touched
    build_trainer(config(tmp_path / "run", tiny_data, epochs=2), overwrite=True).fit()  # a new run, from scratch
    assert [r["epoch"] for r in log_records(tmp_path / "run")] == [1, 2]


def test_resume_of_a_finished_run_changes_nothing(tmp_path, tiny_data):
    first = build_trainer(config(tmp_path / "run", tiny_data, epochs=2))
    first.fit()
    before = log_records(tmp_path / "run")
    again = build_trainer(config(tmp_path / "run", tiny_data, epochs=2), resume=True)
    assert again.epoch == 2
    again.fit()
    assert log_records(tmp_path / "run") == before
    assert_same_weights(first.model.state_dict(), load_checkpoint(tmp_path / "run" / "model.pt")["model"])


def test_resume_from_a_corrupt_checkpoint_fails_loudly(tmp_path, tiny_data):
    out = tmp_path / "run"
    build_trainer(config(out, tiny_data, epochs=1)).fit()
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="not a loadable posekit checkpoint") as info:
        build_trainer(config(out, tiny_data, epochs=2), resume=True)
    assert str(out / "last.pt") in str(info.value)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path, tiny_data):
    trainer = build_trainer(config(tmp_path / "new", tiny_data, epochs=1), resume=True)
    assert trainer.epoch == 0 and trainer.step == 0


# -- an output folder that cannot take checkpoints ----------------------------------------------------------
def test_output_under_a_regular_file_fails_before_loading_data(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # the data spec does not even exist: the writability check must come first
    with pytest.raises(PermissionError, match="not writable") as info:
        build_trainer(config(blocker / "run", tmp_path / "missing.json"))
    assert str(blocker / "run") in str(info.value)


def test_cli_reports_an_unwritable_output_folder(tmp_path, tiny_data):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run = subprocess.run(train_command(tiny_data, blocker / "run"), cwd=REPO_ROOT, env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert "not writable" in run.stderr and str(blocker / "run") in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="chmod does not stop root")
def test_read_only_output_folder_fails_before_training(tmp_path, tiny_data):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            build_trainer(config(locked / "run", tiny_data))
    finally:
        locked.chmod(0o700)


def test_nearly_full_disk_fails_before_training(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "shutil_free_mb", lambda path: 10)
    with pytest.raises(OSError, match="only 10 MB free"):
        build_trainer(config(tmp_path / "run", tiny_data))
    assert not (tmp_path / "run" / "log.jsonl").exists()
