"""The round-two attacks on checkpoints, training options, run folders, optional packages and memory (the
annotation attacks are in ``reliability_attack_files.py``). Not a script: ``reliability_attacks.py`` runs them."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch

from reliability_attack_files import Attack, Workspace, eval_argv, strict_metrics

#: peak-RSS growth (MB) above which a "refused" image counts as decoded anyway (the bombs decode to >= 400 MB)
MEMORY_BOUND_MB = 64


class RunsCode:
    """Unpickling this runs ``touch MARKER``: the file must be refused and the marker never appear."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# -- checkpoints -------------------------------------------------------------------------------------------------
def checkpoint_variants(ws: Workspace) -> dict:
    """name -> (what the file holds, written with torch.save) for structurally wrong checkpoints."""
    good = torch.load(ws.checkpoints["coco"], weights_only=True)
    weights, config = good["model"], good["config"]
    names = list(weights)

    def with_config(**changes):
        return {**good, "config": {**config, **changes}}
    return {
        "config without a codec": {**good, "config": {k: v for k, v in config.items() if k != "codec"}},
        "codec of an unknown type": with_config(codec={"type": "Gaussian3D"}),
        "codec with an unknown option": with_config(codec={**config["codec"], "sharpness": 3}),
        "two weights missing": {**good, "model": {k: v for k, v in weights.items() if k not in names[:2]}},
        "a weight of the wrong shape": {**good, "model": {**weights, names[-1]: torch.zeros(5, 5)}},
        "a weight that is a list": {**good, "model": {**weights, names[0]: [0.0, 1.0]}},
        "a bare tensor": torch.ones(2, 2), "a list of tensors": [torch.zeros(1)], "a string": "checkpoint",
        "no 'model' key": {"config": config}, "config is a list": {**good, "config": [1, 2]},
        "input size -64": with_config(input_size=[-64, 64]), "input size of one number": with_config(input_size=[64]),
        "input size 100000": with_config(input_size=[100000, 64]),
        "unknown model option": with_config(model={"name": "simplebaseline_r18",
                                                   "kwargs": {**config["model"]["kwargs"], "depth_multiplier": 2}}),
        "unknown model name": with_config(model={"name": "resnet9000", "kwargs": config["model"]["kwargs"]}),
        "flip index out of range": with_config(flip_index=[0] * 16 + [99]),
        "flip index of the wrong length": with_config(flip_index=[0, 1]),
        "num_keypoints -1": with_config(num_keypoints=-1, model={"name": "simplebaseline_r18", "kwargs": {
            **config["model"]["kwargs"], "num_keypoints": -1}}),
        "padding NaN": with_config(padding=float("nan")),
        "config version 99": with_config(version=99),
    }


def checkpoint_attacks(ws: Workspace) -> list[Attack]:
    folder = ws.root / "checkpoints"
    folder.mkdir()
    spec = f"coco:{ws.root / 'coco' / 'annotations.json'}"
    attacks = []
    for index, (name, payload) in enumerate(checkpoint_variants(ws).items()):
        path = folder / f"broken_{index}.pt"
        torch.save(payload, path)
        attacks.append(Attack("checkpoints", name, ["eval", "--checkpoint", str(path), "--data", spec], (str(path),)))
    raw = {"random bytes named .pt": (folder / "random.pt", os.urandom(2000)),
           "random bytes named .onnx": (folder / "random.onnx", os.urandom(2000)),
           "text named .onnx": (folder / "text.onnx", b"not a model\n" * 20),
           "a checkpoint cut in half": (folder / "cut.pt", ws.checkpoints["coco"].read_bytes()[:30000])}
    for name, (path, content) in raw.items():
        path.write_bytes(content)
        attacks.append(Attack("checkpoints", name, ["eval", "--checkpoint", str(path), "--data", spec], (str(path),)))
    marker = ws.root / "MARKER_code_ran"
    evil = folder / "evil.pt"
    torch.save({"model": RunsCode(marker), "config": {}}, evil)
    attacks.append(Attack("checkpoints", "pickle that runs code", ["eval", "--checkpoint", str(evil), "--data", spec],
                          (str(evil), "not a loadable posekit checkpoint"), check=lambda o: not marker.exists()))
    return attacks


# -- training options and run folders ------------------------------------------------------------------------------
def train_argv(ws: Workspace, out: Path, *extra) -> list[str]:
    return ["train", "--data", f"coco:{ws.root / 'coco' / 'annotations.json'}", "--out", str(out), "--model-kwargs",
            json.dumps({"width": 0.25, "deconv_channels": 32}), "--input-size", "64", "--epochs", "1",
            "--batch-size", "4", "--workers", "0", "--max-iters", "1", "--no-progress", *extra]


def option_attacks(ws: Workspace) -> list[Attack]:
    cases = {"top-level string": '"hello"', "top-level null": "null", "top-level list": "[1, 2]",
             "epochs 'ten'": {"epochs": "ten"}, "epochs 2.5": {"epochs": 2.5}, "batch_size -4": {"batch_size": -4},
             "input_size [0, 64]": {"input_size": [0, 64]}, "input_size '64'": {"input_size": "64"},
             "lr 'fast'": {"lr": "fast"}, "lr 0": {"lr": 0}, "workers -1": {"workers": -1},
             "augment with an unknown key": {"augment": {"rotate": 10}}, "augment 'none'": {"augment": "none"},
             "nan_policy 'ignore'": {"nan_policy": "ignore"}, "max_iters_per_epoch 0": {"max_iters_per_epoch": 0},
             "val_every 0": {"val_every": 0}, "threads 0": {"threads": 0}, "model_kwargs [1]": {"model_kwargs": [1]},
             "method 5": {"method": 5}, "skip_invalid 'yes'": {"skip_invalid": "yes"}, "sigma -2": {"sigma": -2.0},
             "not JSON": "{epochs: 3"}
    # the rest of each file is a small run that works (so the bad option is the only thing wrong with it)
    valid = {"epochs": 1, "batch_size": 4, "workers": 0, "max_iters_per_epoch": 1, "input_size": [64, 64],
             "model_kwargs": {"width": 0.25, "deconv_channels": 32}, "progress": False}
    attacks = []
    for index, (name, content) in enumerate(cases.items()):
        path = ws.root / f"options_{index}.json"
        path.write_text(content if isinstance(content, str) else json.dumps({**valid, **content}))
        argv = ["train", "--config", str(path), "--out", str(ws.root / f"opt_run_{index}")]
        if not isinstance(content, str):
            argv[1:1] = ["--data", f"coco:{ws.root / 'coco' / 'annotations.json'}"]
        attacks.append(Attack("training options", name, argv, (str(path),)))
    return attacks + [epochs_minus_one(ws)]


def epochs_minus_one(ws: Workspace) -> Attack:
    run = ws.root / "run_with_log"
    run.mkdir()
    log = "".join(json.dumps({"epoch": e, "loss": 0.1}) + "\n" for e in (1, 2, 3))
    (run / "log.jsonl").write_text(log)
    return Attack("training options", "--epochs -1 over an existing log", train_argv(ws, run, "--epochs", "-1",
                  "--resume"), ("'epochs' must be at least 1",), check=lambda o: (run / "log.jsonl").read_text() == log)


@contextlib.contextmanager
def nan_loss():
    """Every training step's loss is NaN (the graph kept), as a diverging run gives."""
    from posekit.methods.supervised import Supervised
    real = Supervised.training_step
    Supervised.training_step = lambda self, batch, progress: {**real(self, batch, progress),
                                                              "loss": real(self, batch, progress)["loss"] * float("nan")}
    try:
        yield
    finally:
        Supervised.training_step = real


@contextlib.contextmanager
def without(module: str):
    """``import module`` fails, as on an install without the optional extra."""
    saved = sys.modules.get(module)
    sys.modules[module] = None
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop(module, None)
        else:
            sys.modules[module] = saved


def run_attacks(ws: Workspace) -> list[Attack]:
    used = ws.root / "used_run"
    used.mkdir()
    for name in ("last.pt", "best.pt", "log.jsonl"):
        (used / name).write_bytes(b"the previous run's " + name.encode())
    stale = ws.root / "stale_run"
    stale.mkdir()
    (stale / ".last.pt.ab12cd34.tmp").write_bytes(b"\0" * 100_000)
    unchanged = lambda o: (used / "best.pt").read_bytes() == b"the previous run's best.pt"  # noqa: E731
    return [
        Attack("run folders", "fresh run in a used folder", train_argv(ws, used), (str(used), "--overwrite"),
               check=unchanged),
        Attack("run folders", "checkpoint temp file left by a kill", train_argv(ws, stale), expect="accept",
               check=lambda o: not list(stale.glob(".*.tmp"))),
        Attack("non-finite training", "NaN loss, default policy", train_argv(ws, ws.root / "nan_raise"),
               ("non-finite loss at epoch 1, step 0",), patch=nan_loss),
        Attack("non-finite training", "NaN loss on every step, --nan-policy skip", train_argv(
            ws, ws.root / "nan_skip", "--nan-policy", "skip", "--max-iters", "4"), ("stopped: 1 steps were skipped",),
            patch=nan_loss, check=lambda o: not (ws.root / "nan_skip" / "model.pt").exists()),
        Attack("optional packages", "export without onnx", ["export", "--checkpoint", str(ws.checkpoints["coco"]),
               "--out", str(ws.root / "m.onnx")], ("pip install 'posekit[onnx]'",), patch=lambda: without("onnx")),
        Attack("optional packages", "ONNX backend without onnxruntime", eval_argv(
            ws, "coco", f"coco:{ws.root / 'coco' / 'annotations.json'}", "--backend", "onnx"),
            ("pip install 'posekit[onnx]'",), patch=lambda: without("onnxruntime")),
    ]


# -- memory ----------------------------------------------------------------------------------------------------------
def zero_png(path: Path, side: int, rows: int) -> Path:
    """A PNG declaring ``side`` x ``side`` grey pixels; ``rows`` rows of real (zero) pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(b"\0" * (side + 1)) for _ in range(rows)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


#: this process's peak RSS in KB. VmHWM, not ``ru_maxrss``: a child started from a large process inherits the
#: parent's ``ru_maxrss`` (Linux keeps the high-water mark across fork + exec), which would hide a 400 MB decode
PEAK_KB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"


def memory_probe(call: str) -> str:
    return ("from posekit.data.formats import load_samples\nfrom posekit.data.io import read_image\n"
            f"before = {PEAK_KB}\n"
            f"try:\n    {call}\nexcept ValueError as err:\n    print('refused:', err)\n"
            f"print('growth_mb', ({PEAK_KB} - before) / 1024)")


def memory_attacks(ws: Workspace) -> list[Attack]:
    folder = ws.root / "bombs"
    (folder / "images").mkdir(parents=True)
    # PNG bytes behind .jpg names: a real, complete 400 MP image of zeros (decoding it touches 400 MB; a header
    # whose pixel data is missing would not show in the RSS), and a header beyond the decode limit
    zero_png(folder / "images" / "im00001.jpg", 20000, 20000)
    zero_png(folder / "images" / "im00002.jpg", 21000, 2)
    (folder / "joints.mat").write_bytes((ws.root / "lsp_0" / "joints.mat").read_bytes())
    person = {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [50, 60, 2] * 17, "bbox": [10, 10, 90, 90]}
    coco = {"images": [{"id": 1, "file_name": "images/im00001.jpg"}], "annotations": [person], "categories": []}
    (folder / "bomb.json").write_text(json.dumps(coco))
    ok = lambda o: o.growth_mb is not None and o.growth_mb < MEMORY_BOUND_MB  # noqa: E731
    return [
        Attack("memory", "complete 400 MP PNG: LSP size check", [], expect="accept", check=ok,
               probe=memory_probe(f"load_samples('lsp:{folder}')")),
        Attack("memory", "complete 400 MP PNG: COCO size check", [], expect="accept", check=ok,
               probe=memory_probe(f"load_samples('coco:{folder / 'bomb.json'}')")),
        Attack("memory", "441 MP header: decode refused", [], expect="accept", check=ok,
               probe=memory_probe(f"read_image('{folder / 'images' / 'im00002.jpg'}')")),
    ]


def all_attacks(ws: Workspace) -> list[Attack]:
    from reliability_attack_files import coco_attacks, lsp_attacks, mpii_attacks
    return (coco_attacks(ws) + mpii_attacks(ws) + lsp_attacks(ws) + checkpoint_attacks(ws) + option_attacks(ws)
            + run_attacks(ws) + memory_attacks(ws))


__all__ = ["all_attacks", "strict_metrics", "MEMORY_BOUND_MB"]
