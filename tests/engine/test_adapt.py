"""`posekit adapt`: a tiny source model (flat synthetic people) adapted with SFDA to textured synthetic
people. The run folder holds the adapted inference model f_in as a plain checkpoint, resumes exactly, and
never sees the target labels; `--method scai` is dispatched to posekit.methods.scai.adapt."""
import json
import sys
import types

import numpy as np
import pytest
import torch

from posekit.cli import main
from posekit.data.synth import generate_dataset
from posekit.engine.adapt import source_settings
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer
from posekit.methods.sfda import adapt_config
from posekit.inference.predictor import Predictor

MODEL_KWARGS = {"width": 0.25, "deconv_channels": 32}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    source = generate_dataset(root / "flat", 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))
    target = generate_dataset(root / "textured", 24, style="textured", skeleton="lsp", seed=1, size=(96, 96))
    cfg = TrainConfig(train=f"coco:{source}", out=str(root / "source"), model="simplebaseline_r18",
                      model_kwargs=MODEL_KWARGS, input_size=(64, 64), epochs=1, batch_size=8, lr=1e-3, warmup_iters=1,
                      workers=0, seed=1, progress=False, max_iters_per_epoch=1)
    build_trainer(cfg).fit()
    return {"root": root, "source_ckpt": root / "source" / "model.pt", "target": f"coco:{target}"}


def adapt_args(data, out, *extra):
    return ["adapt", "--method", "sfda", "--source", str(data["source_ckpt"]), "--target", data["target"],
            "--out", str(out), "--batch-size", "8", "--max-iters", "1", "--workers", "0", "--lr", "1e-3",
            "--seed", "5", "--no-progress", *extra]


def test_source_settings_rebuild_the_source_network(data):
    settings = source_settings(data["source_ckpt"])
    assert settings["model"] == "simplebaseline_r18" and settings["model_kwargs"] == MODEL_KWARGS
    assert settings["input_size"] == (64, 64)
    cfg = adapt_config(data["source_ckpt"], data["target"], data["root"] / "x", alpha=0.3, beta=None)
    assert cfg.method == "sfda" and cfg.init == str(data["source_ckpt"])
    assert cfg.method_kwargs["alpha"] == 0.3 and cfg.method_kwargs["beta"] == 0.5
    with pytest.raises(ValueError, match="unknown sfda options"):
        adapt_config(data["source_ckpt"], data["target"], data["root"] / "x", lambda_c=1.0)


def test_adapt_writes_a_plain_inference_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "sfda"
    assert main(adapt_args(data, out, "--epochs", "2", "--val", data["target"])) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epoch"] == 2 and np.isfinite(result["loss"])
    assert {"loss_ft", "loss_res", "loss_con", "loss_cst", "loss_im"} <= set(result)
    assert "pck@0.2_torso" in result["val"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]

    payload = load_checkpoint(out / "model.pt")
    assert set(payload) == {"model", "config"}
    assert payload["config"]["train"]["method"] == "sfda"
    predictor = Predictor.from_checkpoint(out / "model.pt")
    keypoints = predictor.predict(np.zeros((96, 96, 3), np.uint8), [[10, 10, 60, 80]])
    assert keypoints.shape == (1, 14, 3) and np.isfinite(keypoints).all()
    Predictor.from_checkpoint(out / "best.pt")

    # model.pt is f_in: the adapted intermediate model, not the source and not the target model
    last = load_checkpoint(out / "last.pt")
    source = load_checkpoint(data["source_ckpt"])["model"]
    assert all(torch.equal(payload["model"][k], last["model"][k]) for k in payload["model"])
    assert any(not torch.equal(payload["model"][k], source[k]) for k in source if source[k].is_floating_point())
    target = last["method"]["target_model"]
    assert any(not torch.equal(payload["model"][k], target[k]) for k in target if target[k].is_floating_point())
    assert last["method"]["iteration"] == 2
    assert {"source_model", "source_optimizer", "intermediate_optimizer"} <= set(last["method"])


def test_adapt_resumes_exactly(data, tmp_path):
    assert main(adapt_args(data, tmp_path / "straight", "--epochs", "2")) == 0
    assert main(adapt_args(data, tmp_path / "resumed", "--epochs", "1")) == 0
    assert main(adapt_args(data, tmp_path / "resumed", "--epochs", "2", "--resume")) == 0
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert b["epoch"] == 2 and b["method"]["iteration"] == 2
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for part in ("source_model", "target_model"):
        for name in a["method"][part]:
            assert torch.equal(a["method"][part][name], b["method"][part][name]), (part, name)


def test_target_labels_are_withheld(data, tmp_path):
    cfg = adapt_config(data["source_ckpt"], data["target"], tmp_path / "run", epochs=1, batch_size=8, workers=0,
                       max_iters_per_epoch=1, progress=False)
    trainer = build_trainer(cfg)
    assert all(not s.keypoints.any() for s in trainer.train_samples)
    item = trainer.dataset[0]
    assert not item["weights"].any() and not item["heatmaps"].any()


def test_incompatible_source_is_refused(data, tmp_path):
    cfg = adapt_config(data["source_ckpt"], data["target"], tmp_path / "run", epochs=1, batch_size=8, workers=0,
                       progress=False)
    cfg.model_kwargs = {"width": 0.5, "deconv_channels": 32}
    with pytest.raises(ValueError, match="source .* model"):
        build_trainer(cfg)


def test_scai_is_dispatched_to_its_module(data, tmp_path, monkeypatch, capsys):
    seen = {}
    fake = types.ModuleType("posekit.methods.scai")
    fake.adapt = lambda source, target, out, **options: seen.update(source=source, target=target, out=out,
                                                                     options=options) or {}
    monkeypatch.setitem(sys.modules, "posekit.methods.scai", fake)
    argv = ["adapt", "--method", "scai", "--source", "s.pt", "--target", data["target"], "--out", str(tmp_path),
            "--scai-kwargs", '{"chains": 6, "workers": 1}', "--epochs", "3"]
    assert main(argv) == 0
    assert seen["source"] == "s.pt" and seen["target"] == data["target"] and seen["out"] == str(tmp_path)
    # --scai-kwargs as given (its workers over the flag's default 2), the shared run flags as given (None: unset)
    assert seen["options"] == {"chains": 6, "workers": 1, "val": None, "epochs": 3, "batch_size": None, "lr": None,
                               "seed": None}
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'scai_eval.json'}"
    monkeypatch.setitem(sys.modules, "posekit.methods.scai", None)  # the import now fails
    with pytest.raises(SystemExit, match="SCAI method .* not available"):
        main(argv)
