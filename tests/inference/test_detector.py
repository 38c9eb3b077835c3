"""The person detector: letterbox geometry (known answers) and, with ../shared, boxes equal to the released
MultiPose graph's on real COCO photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posekit.inference.detector import PersonDetector, letterbox
from posekit.models.registry import build_model

ROOT = Path(__file__).parents[2]
MODELS = ROOT / ".." / "shared" / "models"
COCO_VAL = ROOT / ".." / "shared" / "datasets" / "coco-mini" / "val2017"


def test_letterbox_scales_the_long_side_and_pads_bottom_right_with_black():
    image = np.full((100, 50, 3), 200, np.uint8)
    padded, scale = letterbox(image, 256)
    assert scale == 2.56 and padded.shape == (256, 128, 3)
    assert (padded[:, :128] == 200).all()
    wide = np.full((30, 100, 3), 9, np.uint8)
    padded, scale = letterbox(wide, 256)
    assert padded.shape == (96, 256, 3) and (padded[77:] == 0).all() and (padded[:77] == 9).all()


def test_detector_refuses_a_single_pose_model_and_bad_options():
    with pytest.raises(ValueError, match="MultiPose model with its box heads"):
        PersonDetector(build_model("movenet_lightning", heads="all"))
    multipose = build_model("movenet_multipose", heads="all")
    with pytest.raises(ValueError, match="max_people must be 1..6"):
        PersonDetector(multipose, max_people=7)


@pytest.mark.skipif(not (MODELS / "movenet-multipose.onnx").is_file() or not COCO_VAL.is_dir(),
                    reason="needs ../shared/models and ../shared/datasets/coco-mini")
def test_detected_boxes_equal_the_released_graph_within_a_pixel():
    import onnxruntime as ort
    from posekit.checkpoint import load_model
    from posekit.data.io import read_image
    from posekit.models.movenet_import import movenet_checkpoint

    model, _ = load_model(movenet_checkpoint(MODELS / "movenet-multipose.onnx"))
    detector = PersonDetector(model, score_threshold=0.0)
    session = ort.InferenceSession(str(MODELS / "movenet-multipose.onnx"), providers=["CPUExecutionProvider"])
    for path in sorted(COCO_VAL.glob("*.jpg"))[:4]:
        image = read_image(path)
        boxes, scores, _ = detector.raw(image)
        padded, scale = letterbox(image)
        ref = session.run(None, {session.get_inputs()[0].name: padded[None].astype(np.int32)})[0][0]  # (6, 56)
        hp, wp = padded.shape[:2]
        ref_boxes = ref[:, [52, 51, 54, 53]] * [wp, hp, wp, hp] / scale  # x1, y1, x2, y2 image px
        h, w = image.shape[:2]
        ref_boxes = np.clip(ref_boxes, 0, [w, h, w, h])
        order, ref_order = np.argsort(-scores, kind="stable"), np.argsort(-ref[:, 55], kind="stable")
        confident = ref[ref_order, 55] > 0.05
        np.testing.assert_allclose(boxes[order][confident], ref_boxes[ref_order][confident], atol=1.0)
        np.testing.assert_allclose(scores[order], ref[ref_order, 55], atol=1e-4)


@pytest.mark.skipif(not (MODELS / "movenet-multipose.onnx").is_file() or not COCO_VAL.is_dir(),
                    reason="needs ../shared/models and ../shared/datasets/coco-mini")
def test_predictor_without_boxes_detects_people_and_finds_nobody_in_an_empty_photo():
    from posekit.data.io import read_image
    from posekit.inference.predictor import Predictor

    zoo = ROOT / "zoo"
    predictor = Predictor.load(zoo / "lspet_compact_pretrained.pt", detector=zoo / "movenet_multipose.pt")
    empty = np.zeros((240, 320, 3), np.uint8)
    boxes, scores, keypoints = predictor.predict_people(empty)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and keypoints.shape == (0, 14, 3)
    image = read_image(COCO_VAL / "000000165518.jpg")  # one annotated person
    boxes, scores, keypoints = predictor.predict_people(image)
    assert len(boxes) >= 1 and scores[0] > 0.3 and keypoints.shape == (len(boxes), 14, 3)
    np.testing.assert_array_equal(predictor.predict(image), keypoints)
    with pytest.raises(ValueError, match="no detector loaded"):
        Predictor.load(zoo / "lspet_compact_pretrained.pt").predict(image)
