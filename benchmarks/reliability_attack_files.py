"""The round-two attack set of ``benchmarks/reliability.py --round-two``: malformed files of the kinds issue #18
found (new files, not the test cases), each with the command that meets it and what a right answer is.

Not a script: ``reliability_attacks.py`` builds a :class:`Workspace` (small clean COCO / LSPET / MPII data and
tiny random-weight checkpoints) and runs every :class:`Attack` of :func:`all_attacks` against it.
"""
from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.io
import torch
from PIL import Image

from posekit.checkpoint import save_checkpoint
from posekit.codecs import HeatmapCodec
from posekit.config import PoseConfig
from posekit.data.synth import generate_dataset
from posekit.skeletons import get_skeleton

TINY = {"width": 0.25, "deconv_channels": 32}
SIZE = 64


@dataclass
class Attack:
    """One malformed input. ``expect``: ``"refuse"`` (nonzero exit, one line naming every one of ``names``) or
    ``"accept"`` (exit 0 and ``check(outcome)`` true: e.g. a warning that counts what was set aside)."""
    kind: str
    name: str
    argv: list[str]
    names: tuple[str, ...] = ()
    expect: str = "refuse"
    check: Callable | None = None
    patch: Callable | None = None  # a context manager factory the attack runs inside (e.g. a NaN loss)
    probe: str | None = None       # python code run in a fresh process instead of argv (memory attacks)


@dataclass
class Workspace:
    root: Path
    coco_doc: dict
    mpii_doc: list
    lsp_joints: np.ndarray
    checkpoints: dict = field(default_factory=dict)


# -- the clean data and models ------------------------------------------------------------------------------
def tiny_checkpoint(path: Path, skeleton: str) -> Path:
    sk = get_skeleton(skeleton)
    torch.manual_seed(0)
    config = PoseConfig(model="simplebaseline_r18", model_kwargs=dict(TINY), num_keypoints=sk.num_keypoints,
                        codec=HeatmapCodec((SIZE, SIZE)).to_config(), input_size=(SIZE, SIZE), skeleton=skeleton,
                        flip_index=tuple(sk.flip_index.tolist()))
    save_checkpoint(path, {"model": config.build_model().state_dict(), "config": config})
    return path


def write_lsp_folder(folder: Path, joints: np.ndarray, images: Path) -> Path:
    """``folder/joints.mat`` (LSPET layout, 14 x 3 x N) and copies of the clean ``images/im*.jpg``."""
    shutil.copytree(images, folder / "images", dirs_exist_ok=True)
    scipy.io.savemat(folder / "joints.mat", {"joints": np.asarray(joints, float).transpose(1, 2, 0)})
    return folder


def build_workspace(root: Path) -> Workspace:
    coco_ann = generate_dataset(root / "coco", 8, skeleton="coco", seed=11, size=(96, 96))
    lsp_images = root / "lsp_images"
    lsp_images.mkdir()
    rng = np.random.default_rng(3)
    joints = np.concatenate([rng.uniform(10, 80, (6, 14, 2)), np.ones((6, 14, 1))], axis=2)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (90, 90, 3), dtype=np.uint8)).save(lsp_images / f"im{i + 1:05d}.jpg")
    (root / "mpii").mkdir()
    Image.new("RGB", (160, 120), (70, 80, 90)).save(root / "mpii" / "p.png")
    mpii = [{"image": "p.png", "joints": [[30 + 5 * j, 20 + 5 * j] for j in range(16)], "joints_vis": [1] * 16,
             "center": [70, 60], "scale": 0.45} for _ in range(4)]
    ws = Workspace(root, json.loads(coco_ann.read_text()), mpii, joints)
    for skeleton in ("coco", "lsp", "mpii"):
        ws.checkpoints[skeleton] = tiny_checkpoint(root / f"{skeleton}.pt", skeleton)
    return ws


def eval_argv(ws: Workspace, skeleton: str, spec: str, *extra) -> list[str]:
    return ["eval", "--checkpoint", str(ws.checkpoints[skeleton]), "--data", spec, "--no-flip", *extra]


# -- COCO annotations -----------------------------------------------------------------------------------------
def coco_file(ws: Workspace, name: str, edit: Callable[[dict], None]) -> Path:
    doc = copy.deepcopy(ws.coco_doc)
    edit(doc)
    path = ws.root / "coco" / f"{name}.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    return path


def set_ann(index: int, **fields) -> Callable[[dict], None]:
    return lambda doc: doc["annotations"][index].update(fields)


def set_all(**fields) -> Callable[[dict], None]:
    return lambda doc: [a.update(fields) for a in doc["annotations"]]


def set_joint(index: int, joint: int, x=None, y=None) -> Callable[[dict], None]:
    def edit(doc):
        kp = doc["annotations"][index]["keypoints"]
        kp[3 * joint] = kp[3 * joint] if x is None else x
        kp[3 * joint + 1] = kp[3 * joint + 1] if y is None else y
        kp[3 * joint + 2] = 2
    return edit


def set_image(**fields) -> Callable[[dict], None]:
    return lambda doc: doc["images"][2].update(fields)


def stringify(index: int, key: str) -> Callable[[dict], None]:
    def edit(doc):
        value = doc["annotations"][index][key]
        doc["annotations"][index][key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return edit


def coco_attacks(ws: Workspace) -> list[Attack]:
    """Annotation 4 (image 4) is the usual victim: its record must be named."""
    record = "annotation 4"
    cases = {
        "area NaN on every person": (set_all(area=float("nan")), "annotation 1"),
        "area NaN on one person": (set_ann(3, area=float("nan")), record),
        "area 0": (set_ann(3, area=0), record), "area -3": (set_ann(3, area=-3.0), record),
        "area 1e30": (set_ann(3, area=1e30), record), "area 0.25 (below a pixel)": (set_ann(3, area=0.25), record),
        "area as a string": (stringify(3, "area"), record), "area true": (set_ann(3, area=True), record),
        "bbox of strings": (stringify(3, "bbox"), record), "keypoints of strings": (stringify(3, "keypoints"), record),
        "image_id as a string": (stringify(3, "image_id"), record),
        "num_keypoints as a string": (stringify(3, "num_keypoints"), record),
        "iscrowd as a string": (set_ann(3, iscrowd="0"), record),
        "category_id 1.5": (set_ann(3, category_id=1.5), record),
        "hip at x = 1e30": (set_joint(3, 11, x=1e30), record),
        "visible joint at x = -1e6": (set_joint(3, 9, x=-1e6), record),
        "visible joint at y = 5e4": (set_joint(3, 0, y=5e4), record),
        "bbox 5000 x 5000 on 96 x 96": (set_ann(3, bbox=[0, 0, 5000, 5000]), record),
        "bbox 1e-3 wide": (set_ann(3, bbox=[10, 10, 1e-3, 40]), record),
        "declared width 1e9": (set_image(width=1e9), "image 3"),
        "declared height 3 (file is 96)": (set_image(height=3), "image 3"),
        "every person crowd": (set_all(iscrowd=1), "all 8 annotations were skipped (8 crowd"),
        "no annotations at all": (lambda doc: doc.update(annotations=[]), "it holds no annotations"),
        "every joint invisible": (lambda doc: [a.update(keypoints=[0] * 51, num_keypoints=0)
                                               for a in doc["annotations"]], "8 with no labelled keypoint"),
    }
    attacks = []
    for name, (edit, what) in cases.items():
        path = coco_file(ws, name.replace(" ", "_").replace("/", "_"), edit)
        attacks.append(Attack("COCO annotations", name, eval_argv(ws, "coco", f"coco:{path}"), (str(path), what)))
    zero = coco_file(ws, "num_keypoints_zero", set_all(num_keypoints=0))
    attacks.append(Attack("COCO annotations", "num_keypoints 0 everywhere", eval_argv(
        ws, "coco", f"coco:{zero}", "--out", str(ws.root / "zero_metrics.json")), expect="accept",
        check=lambda o: "OKS AP unavailable" in o.logs and strict_metrics(ws.root / "zero_metrics.json")["AP"] is None))
    clean_out = ws.root / "clean_metrics.json"
    attacks.append(Attack("COCO annotations", "metrics.json of a clean file is strict JSON", eval_argv(
        ws, "coco", f"coco:{ws.root / 'coco' / 'annotations.json'}", "--out", str(clean_out)), expect="accept",
        check=lambda o: strict_metrics(clean_out)["AP"] is not None))
    return attacks


def strict_metrics(path: Path) -> dict:
    """A metrics file parsed as strict JSON (NaN / Infinity refused): a ValueError here is a wrong file."""
    def refuse(constant):
        raise ValueError(f"{path}: not JSON ({constant})")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


# -- MPII and LSP ----------------------------------------------------------------------------------------------
def mpii_attacks(ws: Workspace) -> list[Attack]:
    def entry(**fields):
        return lambda doc: doc[2].update(fields)
    joints = [[30 + 5 * j, 20 + 5 * j] for j in range(16)]
    cases = {
        "centre at 1e30": entry(center=[1e30, 60]), "scale 1e-30": entry(scale=1e-30),
        "scale 1e30": entry(scale=1e30), "scale as a string": entry(scale="0.45"),
        "centre of strings": entry(center=["70", "60"]), "joints_vis of booleans": entry(joints_vis=[True] * 16),
        "joint at x = 1e30": entry(joints=[[1e30, 20]] + joints[1:]),
        "joint at y = -1e6": entry(joints=joints[:5] + [[55, -1e6]] + joints[6:]),
    }
    attacks = []
    for name, edit in cases.items():
        doc = copy.deepcopy(ws.mpii_doc)
        edit(doc)
        path = ws.root / "mpii" / f"{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(doc))
        attacks.append(Attack("MPII annotations", name, eval_argv(ws, "mpii", f"mpii:{path}"), (str(path), "#2")))
    return attacks


def lsp_attacks(ws: Workspace) -> list[Attack]:
    def joint(person: int, index: int, x=None, y=None):
        def edit(joints):
            joints[person, index, 0] = joints[person, index, 0] if x is None else x
            joints[person, index, 1] = joints[person, index, 1] if y is None else y
        return edit
    hidden = {"visible right hip at x = 1e30": joint(1, 2, x=1e30), "visible wrist at y = -1e6": joint(4, 6, y=-1e6),
              "visible head top at x = 5e3": joint(2, 13, x=5e3)}
    attacks = []
    for name, edit in hidden.items():
        joints = ws.lsp_joints.copy()
        edit(joints)
        folder = write_lsp_folder(ws.root / f"lsp_{len(attacks)}", joints, ws.root / "lsp_images")
        attacks.append(Attack("LSP / LSPET joints.mat", name, eval_argv(ws, "lsp", f"lsp:{folder}"), expect="accept",
                              check=lambda o: "marked 1 visible joint(s) invisible" in o.logs))
    invisible = ws.lsp_joints.copy()
    invisible[:, :, 2] = 0
    folder = write_lsp_folder(ws.root / "lsp_invisible", invisible, ws.root / "lsp_images")
    attacks.append(Attack("LSP / LSPET joints.mat", "every joint invisible", eval_argv(ws, "lsp", f"lsp:{folder}"),
                          (str(folder / "joints.mat"), "6 without visible joints")))
    return attacks
