"""Data-parallel training under torchrun (gloo on the CPU): two ranks split the data and rank 0 logs and saves."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from posekit.data.synth import generate_dataset
from posekit.checkpoint import load_checkpoint


@pytest.mark.slow
def test_torchrun_two_ranks_train_one_model(tmp_path):
    if shutil.which("torchrun") is None and not (os.path.dirname(sys.executable) and
                                                os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun"))):
        pytest.skip("torchrun is not installed")
    ann = generate_dataset(tmp_path / "data", 32, style="flat", skeleton="lsp", seed=3, size=(96, 96))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "posekit.cli", "train", "--data", f"coco:{ann}", "--out", str(out),
           "--model", "simplebaseline_r18", "--model-kwargs", '{"width": 0.25, "deconv_channels": 32}',
           "--input-size", "64", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]          # only rank 0 logs
    # 32 images, 2 ranks x batch 8: two steps per epoch, each step consuming 16 images.
    payload = load_checkpoint(out / "last.pt")
    assert payload["step"] == 2
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
