"""Corruption robustness: mPC/rPC arithmetic, deterministic per-image corruption of the full image, the
`posekit robustness` command on COCO and LSP data (clean row = `posekit eval`), --materialize, resume."""
import json
import math

import cv2
import numpy as np
import pytest
import scipy.io

from posekit.cli import main
from posekit.data.corruptions import corrupt
from posekit.data.formats import load_samples
from posekit.data.io import read_image
from posekit.data.synth import generate_dataset
from posekit.engine import robustness as rb
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer
from posekit.metrics import robustness_summary

CORRUPTIONS = "gaussian_noise,pixelate"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synthetic COCO set, the same people as an LSP folder, and a checkpoint trained on them."""
    root = tmp_path_factory.mktemp("robust")
    ann = generate_dataset(root / "syn", 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))
    cfg = TrainConfig(train=f"coco:{ann}", out=str(root / "run"), model="simplebaseline_r18",
                      model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=1, batch_size=8,
                      lr=1e-3, warmup_iters=2, workers=0, seed=0, progress=False)
    build_trainer(cfg).fit()
    lsp = make_lsp_folder(root / "lsp", ann)
    return root, ann, lsp, root / "run" / "model.pt"


def make_lsp_folder(folder, ann):
    """LSPET layout: images/im00001.jpg ... + joints.mat (14, 3, N), flag 1 = visible."""
    data = json.loads(ann.read_text())
    (folder / "images").mkdir(parents=True)
    joints = np.zeros((14, 3, len(data["images"])))
    for i, image in enumerate(sorted(data["images"], key=lambda e: e["id"])):
        src = ann.parent / "images" / image["file_name"]
        (folder / "images" / f"im{i + 1:05d}.jpg").write_bytes(src.read_bytes())
        kp = np.array(next(a for a in data["annotations"] if a["image_id"] == image["id"])["keypoints"]).reshape(14, 3)
        joints[:, :2, i] = kp[:, :2]
        joints[:, 2, i] = (kp[:, 2] > 0).astype(float)
    scipy.io.savemat(str(folder / "joints.mat"), {"joints": joints})
    return folder


# -- arithmetic ----------------------------------------------------------------------------------
def test_robustness_summary_hand_computed():
    table = {"fog": {1: 0.8, 2: 0.7, 3: 0.6, 4: 0.5, 5: 0.4}, "snow": {"1": 0.5, "2": 0.5, "3": 0.5, "4": 0.5, "5": 0.5}}
    summary = robustness_summary(0.8, table)
    assert summary["per_corruption"] == pytest.approx({"fog": 0.6, "snow": 0.5})
    assert summary["mPC"] == pytest.approx(0.55)
    assert summary["rPC"] == pytest.approx(0.55 / 0.8)
    assert summary["n_corruptions"] == 2
    assert rb.summarise(0.8, table) == {**summary, "complete": True}
    with pytest.raises(ValueError, match="missing"):
        robustness_summary(0.8, {"fog": {1: 0.5}})


def test_partial_severities_get_the_same_means_flagged_incomplete():
    summary = rb.summarise(0.5, {"fog": {1: 0.4, 2: 0.2}, "snow": {1: 0.3, 2: 0.1}})
    assert summary["mPC"] == pytest.approx(0.25) and summary["rPC"] == pytest.approx(0.5)
    assert summary["complete"] is False
    assert math.isnan(rb.summarise(0.0, {"fog": {1: 0.0}})["rPC"])


def test_options_and_seeds():
    assert rb.parse_corruptions("all") == rb.CORRUPTIONS and rb.parse_corruptions("fog, snow") == ("fog", "snow")
    assert rb.parse_severities("3,1") == (1, 3) and rb.parse_severities(None) == (1, 2, 3, 4, 5)
    for bad in ("fog,smoke", ""):
        with pytest.raises(ValueError):
            rb.parse_corruptions(bad)
    for bad in ("0", "6", "1,1", "x"):
        with pytest.raises(ValueError):
            rb.parse_severities(bad)
    seeds = {rb.image_seed(0, i, c, s) for i in range(3) for c in ("fog", "snow") for s in (1, 2)}
    assert len(seeds) == 12 and rb.image_seed(0, 1, "fog", 1) == rb.image_seed(0, 1, "fog", 1)
    assert rb.image_seed(1, 1, "fog", 1) != rb.image_seed(0, 1, "fog", 1)


def test_corruption_applies_to_the_full_image_before_the_crop(setup):
    root, ann, _, ckpt = setup
    from posekit.inference.predictor import Predictor
    predictor = Predictor.from_checkpoint(ckpt)
    samples = load_samples(f"coco:{ann}")[:3]
    wrapped = rb.CorruptedImages(predictor, "gaussian_noise", 5, seed=4, indices=rb.image_indices(samples))
    seen = []
    real_prepare = predictor.prepare
    predictor.prepare = lambda image, box: seen.append(image) or real_prepare(image, box)
    out = list(wrapped.predict_samples(samples))
    assert len(out) == 3
    for i, (sample, image) in enumerate(zip(samples, seen)):
        expected = corrupt(read_image(sample.image_path), "gaussian_noise", 5, rb.image_seed(4, i, "gaussian_noise", 5))
        assert np.array_equal(image, expected)  # the whole image, corrupted with the per-image seed
    predictor.prepare = real_prepare
    clean = dict((s.image_path, k) for s, k in predictor.predict_samples(samples))
    assert any(not np.allclose(k, clean[s.image_path]) for s, k in out)


# -- the command -------------------------------------------------------------------------------
def run_cli(ckpt, spec, out, *extra):
    return main(["robustness", "--checkpoint", str(ckpt), "--data", spec, "--corruptions", CORRUPTIONS,
                 "--severities", "1,3", "--out", str(out), "--no-progress", *extra])


def eval_metrics(ckpt, spec, out):
    assert main(["eval", "--checkpoint", str(ckpt), "--data", spec, "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("kind", ["coco", "lsp"])
def test_robustness_command_table_and_clean_row_matches_eval(setup, kind, capsys):
    root, ann, lsp, ckpt = setup
    spec = f"coco:{ann}" if kind == "coco" else f"lsp:{lsp}"
    out = root / f"rob_{kind}"
    assert run_cli(ckpt, spec, out) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "robustness.json").read_text())
    metric = "AP" if kind == "coco" else "pck@0.2_torso"
    assert result["metric"] == metric
    reference = eval_metrics(ckpt, spec, root / f"eval_{kind}.json")
    assert result["clean"] == reference[metric]
    for key in ("pck@0.2_torso", "pck@0.05_box", "auc_torso"):
        assert result["conditions"]["clean"][key] == reference[key]
    assert list(result["table"]) == ["gaussian_noise", "pixelate"]
    assert all(list(row) == ["1", "3"] for row in result["table"].values())
    values = [v for row in result["table"].values() for v in row.values()]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert result["mPC"] == pytest.approx(np.mean(values))
    if result["clean"] > 0:  # (a few training steps: OKS AP is often exactly 0)
        assert result["rPC"] == pytest.approx(result["mPC"] / result["clean"])
    else:
        assert result["rPC"] is None  # NaN, written as null: robustness.json is strict JSON
    assert result["complete"] is False and result["n_images"] == 24
    markdown = (out / "robustness.md").read_text()
    assert "| gaussian_noise |" in markdown and "| pixelate |" in markdown and "mPC" in markdown
    assert "| gaussian_noise |" in printed
    assert cv2.imread(str(out / "robustness.png")) is not None


def test_rerun_reuses_finished_conditions_and_limit(setup, monkeypatch):
    root, ann, _, ckpt = setup
    out = root / "rob_resume"
    assert run_cli(ckpt, f"coco:{ann}", out, "--limit", "5") == 0
    first = json.loads((out / "robustness.json").read_text())
    assert first["n_images"] == 5
    def refuse(*args, **kwargs):
        raise RuntimeError("finished condition re-evaluated")

    monkeypatch.setattr(rb, "evaluate_condition", refuse)
    assert run_cli(ckpt, f"coco:{ann}", out, "--limit", "5") == 0
    assert json.loads((out / "robustness.json").read_text())["table"] == first["table"]
    # other settings (seed) do not reuse the cache
    with pytest.raises(RuntimeError, match="re-evaluated"):
        run_cli(ckpt, f"coco:{ann}", out, "--limit", "5", "--seed", "9")


def test_full_severity_grid_uses_robustness_summary(setup):
    root, ann, _, ckpt = setup
    from posekit.inference.predictor import Predictor
    result = rb.run_robustness(Predictor.from_checkpoint(ckpt), f"coco:{ann}", corruptions=["brightness"], limit=3,
                               metric="pck@0.2_torso")
    assert result["complete"] is True
    assert result["mPC"] == pytest.approx(robustness_summary(result["clean"], result["table"])["mPC"])


def test_checkpoint_is_required_for_evaluation(setup, capsys):
    root, ann, _, _ = setup
    with pytest.raises(SystemExit, match="checkpoint"):
        main(["robustness", "--data", f"coco:{ann}"])


# -- materialize -------------------------------------------------------------------------------
def test_materialize_lsp_layout(setup):
    root, _, lsp, _ = setup
    out = root / "lsp_c"
    assert main(["robustness", "--data", f"lsp:{lsp}@val", "--corruptions", CORRUPTIONS, "--severities", "2",
                 "--materialize", str(out), "--seed", "3", "--no-progress"]) == 0
    val = load_samples(f"lsp:{lsp}@val")
    assert [s.file_name for s in val] == ["im00010.jpg", "im00020.jpg"]
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["conditions"]) == ["gaussian_noise/2", "pixelate/2"]
    for name in ("gaussian_noise", "pixelate"):
        folder = out / name / "2"
        assert sorted(p.name for p in (folder / "images").iterdir()) == ["im00010.jpg", "im00020.jpg"]
        assert (folder / "joints.mat").read_bytes() == (lsp / "joints.mat").read_bytes()
        copy = load_samples(index["conditions"][f"{name}/2"])
        assert [s.file_name for s in copy] == [s.file_name for s in val]
        for i, (a, b) in enumerate(zip(val, copy)):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            expected = corrupt(read_image(a.image_path), name, 2, rb.image_seed(3, i, name, 2))
            written = read_image(b.image_path)
            assert np.abs(written.astype(int) - expected).mean() < 5  # equal up to JPEG (quality 95, 4:4:4)


def test_materialize_coco_layout_with_limit(setup):
    root, ann, _, _ = setup
    out = root / "coco_c"
    assert main(["robustness", "--data", f"coco:{ann}", "--corruptions", "pixelate", "--severities", "1,5",
                 "--materialize", str(out), "--limit", "4", "--no-progress"]) == 0
    for severity in (1, 5):
        folder = out / "pixelate" / str(severity)
        assert sorted(p.name for p in (folder / "images").iterdir()) == [f"{i:06d}.jpg" for i in range(4)]
        data = json.loads((folder / "annotations.json").read_text())
        assert [e["id"] for e in data["images"]] == [1, 2, 3, 4]
        assert {a["image_id"] for a in data["annotations"]} == {1, 2, 3, 4}
        samples = load_samples(f"coco:{folder / 'annotations.json'}")
        assert len(samples) == 4 and all(str(folder / "images") in s.image_path for s in samples)
