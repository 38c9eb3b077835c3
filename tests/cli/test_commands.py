"""The `posekit` command end to end on a tiny synthetic set: synth -> train -> eval -> predict -> demo."""
import json

import numpy as np
import pytest

from posekit.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert command in text
    assert set(COMMANDS) >= {"synth", "train", "eval", "predict", "demo", "info", "export", "zoo", "robustness",
                             "adapt"}


def test_bad_data_spec_is_a_clean_error(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt"), "--data", f"coco:{tmp_path}/none.json"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["synth", "--out", str(root / "syn"), "--num", "24", "--style", "textured", "--skeleton", "lsp",
                 "--seed", "2", "--size", "96"]) == 0
    ann = root / "syn" / "annotations.json"
    assert main(["train", "--data", f"coco:{ann}", "--out", str(root / "run"), "--model", "simplebaseline_r18",
                 "--model-kwargs", '{"width": 0.25, "deconv_channels": 32}', "--input-size", "64", "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--no-progress"]) == 0
    return root, ann


def test_eval_writes_pck_and_oks_ap(trained, capsys):
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    root, ann = trained
    assert main(["eval", "--checkpoint", str(root / "run" / "model.pt"), "--data", f"coco:{ann}",
                 "--out", str(root / "metrics.json")]) == 0
    metrics = json.loads((root / "metrics.json").read_text())
    # the library's answer on the same checkpoint and data (flip test, DARK decoding), to the last digit
    expected = json.loads(json.dumps(evaluate(Predictor.load(root / "run" / "model.pt"), f"coco:{ann}")))
    for key in ("pck@0.2_torso", "pck@0.05_box", "pckh@0.5", "auc_torso", "AP"):
        assert metrics[key] == expected[key], key
    assert metrics["n_evaluated"] == 24 and metrics["n_failed"] == 0
    printed = json.loads(capsys.readouterr().out.split("\n|")[0])  # the summary, before the per-joint table
    assert printed["pck@0.2_torso"] == expected["pck@0.2_torso"]


def test_predict_follows_the_contract_and_draws(trained):
    root, ann = trained
    out = root / "preds.json"
    assert main(["predict", "--checkpoint", str(root / "run" / "model.pt"), "--data", f"coco:{ann}",
                 "--out", str(out), "--draw", str(root / "drawn")]) == 0
    records = json.loads(out.read_text())
    gt = json.loads(ann.read_text())
    assert len(records) == len(gt["annotations"]) == 24
    first = records[0]
    assert {"file_name", "image_id", "keypoints", "score"} <= set(first)
    assert np.asarray(first["keypoints"]).shape == (14, 3)
    assert len(list((root / "drawn").glob("*.jpg"))) == 24


def test_predict_on_a_folder_with_detection_boxes(trained, tmp_path):
    root, ann = trained
    images = root / "syn" / "images"
    names = sorted(p.name for p in images.iterdir())[:2]
    dets = [{"file_name": name, "category_id": 1, "bbox": [10, 10, 60, 70], "score": s}
            for name, s in zip(names, (0.9, 0.2))]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "preds.json"
    assert main(["predict", str(images), "--checkpoint", str(root / "run" / "model.pt"), "--boxes",
                 str(tmp_path / "dets.json"), "--score-threshold", "0.5", "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["file_name"] for r in records] == names[:1]   # the 0.2 box is under the threshold


def test_demo_writes_its_report(tmp_path):
    from posekit.engine.evaluate import evaluate
    from posekit.inference.predictor import Predictor
    assert main(["demo", "--out", str(tmp_path), "--num-train", "32", "--num-val", "16", "--epochs", "1",
                 "--workers", "0"]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    # the report's numbers are the saved model's on the demo's validation people
    expected = evaluate(Predictor.load(tmp_path / "run" / "model.pt"), f"coco:{tmp_path / 'data' / 'val' / 'annotations.json'}")
    for key in ("pck@0.2_torso", "pck@0.05_box", "auc_torso", "AP"):
        assert report["metrics"][key] == pytest.approx(expected[key], abs=1e-12), key
    assert report["num_val"] == 16 and report["epochs"] == 1 and report["model"] == "simplebaseline_r18"
    for name in ("summary.md", "training_curve.png", "pck_curve.png", "predictions.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def write_clip(path, image, shifts, fps=10.0):
    """An mp4 of ``image`` translated by each (dx, dy) in ``shifts``: one frame per shift."""
    import cv2
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for dx, dy in shifts:
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()


def test_predict_video_smooths_the_raw_track_online(trained, tmp_path):
    """`posekit predict clip.mp4 --detector none`: one record per frame with one person, a drawn mp4, and
    --smooth ema equal to an EMA run over the unsmoothed predictions (the person box follows the raw keypoints, so
    raw tracks are the same)."""
    import cv2

    from posekit.data.io import read_image
    from posekit.inference.smoothing import EMAFilter
    root, ann = trained
    image = read_image(next((root / "syn" / "images").iterdir()))
    clip = tmp_path / "clip.mp4"
    write_clip(clip, image, [(3 * np.sin(t / 2), 0.0) for t in range(12)])
    checkpoint = str(root / "run" / "model.pt")
    raw_out, smooth_out, drawn = tmp_path / "raw.json", tmp_path / "ema.json", tmp_path / "drawn.mp4"
    assert main(["predict", str(clip), "--checkpoint", checkpoint, "--out", str(raw_out), "--detector", "none"]) == 0
    assert main(["predict", str(clip), "--checkpoint", checkpoint, "--out", str(smooth_out), "--draw", str(drawn),
                 "--smooth", "ema", "--smooth-params", '{"alpha": 0.4}', "--detector", "none"]) == 0
    raw, smoothed = json.loads(raw_out.read_text()), json.loads(smooth_out.read_text())
    assert [r["frame"] for r in raw] == [r["frame"] for r in smoothed] == list(range(12))
    assert all([p["track_id"] for p in r["people"]] == [0] for r in raw + smoothed)
    raw_track = np.array([r["people"][0]["keypoints"] for r in raw])
    assert raw_track.shape == (12, 14, 3)
    ema = EMAFilter(0.4)
    expected = np.stack([ema(k.copy()) for k in raw_track])
    np.testing.assert_allclose(np.array([r["people"][0]["keypoints"] for r in smoothed])[..., :2], expected[..., :2], atol=2e-3)
    capture = cv2.VideoCapture(str(drawn))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()


def test_predict_video_that_cannot_be_read_is_a_clean_error(trained, tmp_path, capsys):
    root, _ = trained
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["predict", str(broken), "--checkpoint", str(root / "run" / "model.pt"),
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
