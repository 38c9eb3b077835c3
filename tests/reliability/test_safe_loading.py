"""Safe loading: checkpoints never run pickled code, annotation file names never leave the dataset root."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from posekit.data.formats import load_samples, read_coco, read_image_folder, read_lsp, read_mpii
from posekit.data.io import resolve_inside
from posekit.data.sample import DataError
from posekit.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]


class RunsCode:
    """Unpickling this object runs a shell command: the classic malicious-checkpoint payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_payload_really_runs_code_when_unpickled(tmp_path):
    marker = tmp_path / "MARKER_control"
    pickle.loads(pickle.dumps(RunsCode(marker)))  # the unsafe path, to show the test payload is live
    assert marker.exists()


@pytest.mark.parametrize("layout", ["torch_zip_top_level", "torch_zip_nested", "raw_pickle", "legacy_torch"])
def test_checkpoint_with_code_is_refused_and_the_code_never_runs(tmp_path, layout):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    evil = RunsCode(marker)
    if layout == "torch_zip_top_level":
        torch.save(evil, path)
    elif layout == "torch_zip_nested":
        torch.save({"model": {"w": torch.zeros(2)}, "config": {"model": evil}}, path)
    elif layout == "raw_pickle":
        path.write_bytes(pickle.dumps({"model": evil}))
    else:
        torch.save({"model": evil}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="not a loadable posekit checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError):
        build_from_checkpoint(path)
    assert not marker.exists()


def test_cli_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    torch.save({"model": RunsCode(marker), "config": {}}, evil)
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "posekit.cli", "predict", str(tmp_path / "images"), "--checkpoint",
                          str(evil), "--out", str(tmp_path / "out.json")],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "not a loadable posekit checkpoint" in run.stderr
    assert not marker.exists()


def test_plain_checkpoint_round_trips_exactly(tmp_path):
    payload = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"a": [1, 2], "b": None}, "epoch": 3}
    save_checkpoint(tmp_path / "ok.pt", payload)
    loaded = load_checkpoint(tmp_path / "ok.pt")
    assert torch.equal(loaded["model"]["w"], payload["model"]["w"]) and loaded["config"] == payload["config"]
    assert loaded["epoch"] == 3


def test_broken_checkpoint_files_are_value_errors_naming_the_file(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"model": {"w": torch.zeros(100)}, "config": {}})
    data = (tmp_path / "ok.pt").read_bytes()
    # empty.pt: torch raises an EOFError with an empty message, which must not break the error path
    for name, content in {"empty.pt": b"", "cut.pt": data[: len(data) // 2], "text.pt": b"hello"}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


def test_config_must_stay_json_able(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "bad.pt", {"model": {}, "config": {"x": object()}})
    assert not (tmp_path / "bad.pt").exists() and not list(tmp_path.glob(".bad.pt.*"))


# -- hostile file names in annotation files ------------------------------------------------------------
HOSTILE_NAMES = ["../../etc/passwd", "../outside.png", "/etc/passwd", "images/../../outside.png",
                 "C:\\Windows\\win.ini", "\\\\server\\share\\x.png", "a.png\x00.txt"]


@pytest.fixture
def dataset_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    Image.new("RGB", (40, 40)).save(root / "a.png")
    Image.new("RGB", (40, 40)).save(tmp_path / "outside.png")  # a real file just outside the root
    (root / "escape.png").symlink_to(tmp_path / "outside.png")
    return root


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["escape.png"])
def test_resolve_inside_refuses(dataset_root, name):
    with pytest.raises(DataError) as info:
        resolve_inside(dataset_root, name)
    assert info.value.path == os.path.realpath(dataset_root)


def test_resolve_inside_accepts_names_inside(dataset_root):
    (dataset_root / "sub").mkdir()
    assert resolve_inside(dataset_root, "sub/../a.png") == (dataset_root / "a.png").resolve()


def coco_with_name(name):
    return {"images": [{"id": 1, "file_name": name, "width": 40, "height": 40}],
            "annotations": [{"id": 5, "image_id": 1, "keypoints": [10, 10, 2] * 17, "bbox": [1, 1, 30, 30]}]}


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["escape.png"])
def test_coco_refuses_names_outside_the_root(dataset_root, name):
    path = dataset_root / "ann.json"
    path.write_text(json.dumps(coco_with_name(name)))
    with pytest.raises(DataError) as info:
        read_coco(path)
    assert info.value.path == str(path) and info.value.record == f"image 1 ({name})"
    report: list = []
    assert read_coco(path, skip_invalid=True, report=report) == [] and len(report) == 1
    with pytest.raises(DataError):
        load_samples(f"coco:{path}")


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["escape.png"])
def test_mpii_refuses_names_outside_the_root(dataset_root, name):
    path = dataset_root / "mpii.json"
    path.write_text(json.dumps([{"image": name, "joints": [[5, 5]] * 16, "joints_vis": [1] * 16,
                                 "center": [20, 20], "scale": 0.2}]))
    with pytest.raises(DataError) as info:
        read_mpii(path)
    assert info.value.path == str(path) and name in info.value.record


def test_lsp_refuses_an_image_symlinked_out_of_the_root(tmp_path):
    root = tmp_path / "lsp"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(root / "images" / "im0001.jpg", format="JPEG")
    Image.new("RGB", (40, 40)).save(tmp_path / "secret.jpg", format="JPEG")
    (root / "images" / "im0002.jpg").symlink_to(tmp_path / "secret.jpg")
    joints = np.zeros((14, 3, 2))
    joints[:, 0], joints[:, 1], joints[:, 2] = np.arange(14)[:, None] + 5, np.arange(14)[:, None] * 2 + 3, 1
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    with pytest.raises(DataError, match="outside the dataset root") as info:
        read_lsp(root)
    assert "im0002.jpg" in info.value.record
    report: list = []
    assert [s.image_id for s in read_lsp(root, skip_invalid=True, report=report)] == [1] and len(report) == 1


def test_folder_reader_never_follows_a_symlink_out_of_the_folder(dataset_root, caplog):
    caplog.set_level("WARNING", logger="posekit")
    samples = list(read_image_folder(dataset_root))
    assert [s.file_name for s in samples] == ["a.png"]
    assert "escape.png" in caplog.text and "outside the dataset root" in caplog.text
