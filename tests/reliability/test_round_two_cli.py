"""Bad input, round two (issue #18), at the command line: every expected user error is one line on stderr and
exit code 2, never a traceback; files posekit writes are strict JSON; a first use that does not mislead
(help on every option, a demo that says what it does and where its report is, a README without this
machine's paths)."""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest
import torch

from posekit.checkpoint import save_checkpoint
from posekit.cli import build_parser, main
from posekit.codecs import HeatmapCodec
from posekit.config import PoseConfig
from posekit.report import write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = {"width": 0.25, "deconv_channels": 32}


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as browsers and jq do."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"posekit {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    return err


def train_args(ann, out, *extra) -> list[str]:
    return ["train", "--data", f"coco:{ann}", "--out", str(out), "--model-kwargs", json.dumps(TINY),
            "--input-size", "64", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--no-progress", *extra]


def test_the_default_nan_stop_is_one_line(tmp_path, tiny_data, capsys, monkeypatch):
    from posekit.methods.supervised import Supervised
    real = Supervised.training_step
    monkeypatch.setattr(Supervised, "training_step",
                        lambda self, batch, progress: {"loss": real(self, batch, progress)["loss"] * float("nan")})
    assert main(train_args(tiny_data, tmp_path / "run")) == 2
    assert "non-finite loss at epoch 1, step 0" in one_error_line(capsys, "train")


def test_a_used_run_folder_is_refused_and_overwrite_replaces_it(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_data, out, "--max-iters", "1")) == 0
    capsys.readouterr()
    assert main(train_args(tiny_data, out, "--max-iters", "1")) == 2
    assert "--resume to continue it or --overwrite to replace it" in one_error_line(capsys, "train")
    assert main(train_args(tiny_data, out, "--max-iters", "1", "--overwrite")) == 0


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_onnx_features_without_the_extra_say_what_to_install(tmp_path, capsys, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import raises ImportError
    config = PoseConfig(model="simplebaseline_r18", model_kwargs=dict(TINY), num_keypoints=3,
                        codec=HeatmapCodec((64, 64)).to_config(), input_size=(64, 64), skeleton="tiny",
                        flip_index=(0, 2, 1))
    save_checkpoint(tmp_path / "m.pt", {"model": config.build_model().state_dict(), "config": config})
    argv = (["export", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")] if module == "onnx"
            else ["eval", "--checkpoint", str(tmp_path / "m.pt"), "--backend", "onnx", "--data", "coco:x.json"])
    if module == "onnxruntime":  # export works (onnx is there), the runtime does not
        assert main(["export", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
        capsys.readouterr()
    assert main(argv) == 2
    err = one_error_line(capsys, argv[0])
    assert f"needs the optional package '{module}'" in err and "pip install 'posekit[onnx]'" in err


@pytest.mark.parametrize("kind", ["bare_tensor", "random_onnx", "pickled_code"])
def test_broken_checkpoints_at_the_command_line(tmp_path, capsys, kind):
    path = tmp_path / ("m.onnx" if kind == "random_onnx" else "m.pt")
    if kind == "bare_tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "random_onnx":
        path.write_bytes(bytes(range(256)) * 3)
    else:
        torch.save({"model": {"w": torch.zeros(1)}, "config": {"x": Path("/")}}, path)  # a pickled class
    assert main(["eval", "--checkpoint", str(path), "--data", "coco:x.json"]) == 2
    assert f"error: {path}: " in one_error_line(capsys, "eval")


def test_eval_writes_strict_json_with_null_for_unavailable_metrics(tmp_path, tiny_data):
    from posekit.models import build_model
    from posekit.skeletons import get_skeleton
    torch.manual_seed(0)
    lsp = get_skeleton("lsp")
    config = PoseConfig(model="simplebaseline_r18", model_kwargs=dict(TINY), num_keypoints=14,
                        codec=HeatmapCodec((64, 64)).to_config(), input_size=(64, 64), skeleton="lsp",
                        flip_index=tuple(lsp.flip_index.tolist()))
    model = build_model("simplebaseline_r18", num_keypoints=14, **TINY)
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "config": config})
    out = tmp_path / "metrics.json"
    assert main(["eval", "--checkpoint", str(tmp_path / "m.pt"), "--data", f"coco:{tiny_data}", "--out", str(out)]) == 0
    metrics = strict_json(out.read_text())
    assert metrics["APl"] is None  # 96 x 96 images hold no large person: COCOeval's -1, written as null
    assert 0.0 <= metrics["AP"] <= 1.0 and metrics["n_evaluated"] == 24


def test_the_report_writer_is_strict_json(tmp_path):
    write_json(tmp_path / "m.json", {"AP": float("nan"), "per_joint": [float("inf"), 0.5]})
    assert strict_json((tmp_path / "m.json").read_text()) == {"AP": None, "per_joint": [None, 0.5]}


# -- first use ----------------------------------------------------------------------------------------------
def subcommands() -> dict:
    action = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("command", ["export", "demo", "info", "zoo", "train", "eval", "synth", "robustness", "adapt"])
def test_every_option_has_help_text(command):
    parser = subcommands()[command]
    bare = [a.option_strings or [a.dest] for a in parser._actions if a.dest != "help" and not (a.help or "").strip()]
    assert bare == [], f"posekit {command}: options without help: {bare}"


def test_demo_refuses_a_used_folder_before_generating_anything(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(b"previous demo")
    assert main(["demo", "--out", str(tmp_path), "--num-train", "8", "--no-progress"]) == 2
    assert "holds a previous demo (run/model.pt): pass --overwrite" in one_error_line(capsys, "demo")
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_demo_says_what_it_does_and_where_the_report_is(tmp_path, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="posekit.demo"):
        assert main(["demo", "--out", str(tmp_path), "--num-train", "32", "--num-val", "8", "--epochs", "1",
                     "--workers", "0", "--no-progress"]) == 0
    said = caplog.text
    assert "generating 32 synthetic training people" in said and "generating 8 synthetic validation people" in said
    assert "training simplebaseline_r18 for 1 epoch(s)" in said and "evaluating on the 8 validation people" in said
    out, err = capsys.readouterr()
    strict_json(out)  # stdout is the report, as JSON
    assert "epoch 1/1" not in err  # --no-progress: no progress bars
    assert err.strip().splitlines()[-1] == (f"posekit demo: wrote the report to {tmp_path / 'summary.md'} (with "
                                            f"metrics.json, training_curve.png, pck_curve.png, predictions.png in "
                                            f"{tmp_path})")
    strict_json((tmp_path / "metrics.json").read_text())


#: paths of the machine a text was written on: absolute home / work / temp folders, a home-relative path, a
#: cache folder, a virtualenv outside the repository
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|root|tmp|mnt|opt)/|~/|\.cache/|\.\./[\w.-]*venv")


def test_the_readme_names_no_path_of_this_machine():
    found = [line for line in (REPO_ROOT / "README.md").read_text().splitlines() if MACHINE_PATH.search(line)]
    assert found == []
