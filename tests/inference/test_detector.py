"""The person detector: letterbox geometry (known answers) and, with ../shared, boxes equal to the released
MultiPose graph's on real COCO photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.inference.detector import (PersonDetector, _cut_by_tile, box_iou, letterbox, nms, pass_agreement,
                                        tile_grids, tile_regions)
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
    with pytest.raises(ValueError, match="max_people must be 1..6 "):
        PersonDetector(multipose, tiles=0, max_people=7)
    with pytest.raises(ValueError, match="max_people must be 1..30 "):
        PersonDetector(multipose, tiles=2, max_people=31)
    PersonDetector(multipose, tiles=2, max_people=30)
    with pytest.raises(ValueError, match="long_side must be a positive multiple of 32, got 300"):
        PersonDetector(multipose, long_side=300)
    with pytest.raises(ValueError, match="tiles must be 0 .* or >= 2, got 1"):
        PersonDetector(multipose, tiles=1)
    with pytest.raises(ValueError, match=r"tiles must be 0 .* or >= 2, got \(2, 1\)"):
        PersonDetector(multipose, tiles=(2, 1))
    with pytest.raises(ValueError, match="max_people must be 1..84 .*14 passes"):  # 6 people x (1 + 4 + 9) passes
        PersonDetector(multipose, tiles=(2, 3), max_people=85)
    with pytest.raises(ValueError, match="rescore must be one of agreement, none, got 'vote'"):
        PersonDetector(multipose, rescore="vote")
    with pytest.raises(ValueError, match=r"tile_overlap must be in \[0, 1\), got 1.0"):
        PersonDetector(multipose, tiles=2, tile_overlap=1.0)
    with pytest.raises(ValueError, match=r"nms_iou must be in \(0, 1\], got 0.0"):
        PersonDetector(multipose, nms_iou=0.0)
    detector = PersonDetector(multipose)
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\) uint8 RGB, got \(4, 4\) uint8"):
        detector.detect(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"region \(0, 0, 50, 50\) is not inside the 40x30 image"):
        detector.run_pass(np.zeros((30, 40, 3), np.uint8), (0, 0, 50, 50))


def test_tile_regions_cover_the_image_with_the_asked_overlap():
    # 2 x 2 on 700 x 350 with overlap 0.25: a tile is 700 / 1.75 = 400 wide, 200 high; steps 300 and 150
    np.testing.assert_array_equal(tile_regions(700, 350, 2, 0.25),
                                  [[0, 0, 400, 200], [300, 0, 700, 200], [0, 150, 400, 350], [300, 150, 700, 350]])
    # 3 x 3 without overlap: thirds; the last tile ends at the image's side
    tiles = tile_regions(100, 90, 3, 0.0)
    np.testing.assert_array_equal(tiles[:3], [[0, 0, 33, 30], [33, 0, 67, 30], [67, 0, 100, 30]])
    assert tiles[-1].tolist() == [67, 60, 100, 90] and len(tiles) == 9
    with pytest.raises(ValueError, match="tiles must be >= 1"):
        tile_regions(10, 10, 0)


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 4]], np.float32)
    scores = np.array([0.5, 0.9, 0.3, 0.8], np.float32)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)
    assert box_iou(boxes[:1], boxes[3:])[0, 0] == pytest.approx(0.4)
    # 1 (0.9) suppresses 0 (IoU 0.82); 3 overlaps 1 by 36 / 104 < 0.5 and stays; 2 is alone
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 3, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.3), [1, 2])
    assert nms(np.zeros((0, 4)), np.zeros(0)).shape == (0,)


def test_tile_grids_and_the_passes_regions():
    assert tile_grids(0) == () and tile_grids(None) == () and tile_grids(2) == (2,) and tile_grids([2, 3]) == (2, 3)
    detector = PersonDetector(build_model("movenet_multipose", heads="all"), tiles=(2, 3), tile_overlap=0.0)
    regions = detector.regions(120, 60)
    # the full frame, then 2 x 2 halves, then 3 x 3 thirds
    assert regions.shape == (14, 4) and regions[0].tolist() == [0, 0, 120, 60]
    assert regions[1:5].tolist() == [[0, 0, 60, 30], [60, 0, 120, 30], [0, 30, 60, 60], [60, 30, 120, 60]]
    assert regions[5].tolist() == [0, 0, 40, 20] and regions[-1].tolist() == [80, 40, 120, 60]
    assert detector.describe() == "256 px, 2x2 + 3x3 tiles (overlap 0), agreement rescoring, score >= 0.15"
    detector.tiles, detector.rescore = 0, "none"
    assert detector.regions(120, 60).tolist() == [[0, 0, 120, 60]] and detector.describe() == "256 px, score >= 0.15"


#: a 200 x 100 image: the full frame (pass 0) and two overlapping tiles, left (pass 1) and right (pass 2)
REGIONS = np.array([[0, 0, 200, 100], [0, 0, 120, 100], [80, 0, 200, 100]])
#: candidates: A found by the full frame and again by the left tile; B only by the right tile; C (held whole by all
#: three regions) only by the full frame; A' the left tile's copy of A, a cross-tile duplicate (IoU 0.9 with A)
CANDIDATES = np.array([[10, 10, 50, 90],     # A, full frame
                       [12, 10, 50, 90],     # A', left tile
                       [130, 10, 170, 90],   # B, right tile
                       [90, 10, 110, 90]],   # C, full frame
                      np.float32)
PASSES = np.array([0, 1, 2, 0])


def test_pass_agreement_is_the_share_of_the_passes_holding_a_box_that_found_it():
    kept = CANDIDATES[[0, 2, 3]]
    # A: held by the full frame and the left tile, found by both; B: held by the full frame and the right tile,
    # found by the right one only; C: held by all three, found by the full frame only
    np.testing.assert_allclose(pass_agreement(kept, CANDIDATES, PASSES, REGIONS), [1.0, 0.5, 1 / 3])
    # a box that no region holds whole (it sticks out of the image) keeps its score
    assert pass_agreement(np.array([[150, 50, 220, 120]]), CANDIDATES, PASSES, REGIONS).tolist() == [1.0]


def test_merge_suppresses_cross_tile_duplicates_and_rescores_by_agreement():
    detector = PersonDetector(build_model("movenet_multipose", heads="all"), score_threshold=0.15)
    scores = np.array([0.3, 0.6, 0.4, 0.3], np.float32)
    # A' (0.6) suppresses A (IoU 38 * 80 / (40 * 80) = 0.95); A' agrees 2 / 2, B 1 / 2 -> 0.2, C 1 / 3 -> 0.1 < 0.15
    xywh, kept = detector.merge(CANDIDATES, scores, PASSES, REGIONS)
    np.testing.assert_array_equal(xywh, [[12, 10, 38, 80], [130, 10, 40, 80]])
    np.testing.assert_allclose(kept, [0.6, 0.2], rtol=1e-6)
    # a lower threshold keeps C, now last: the order follows the rescored scores
    np.testing.assert_allclose(detector.merge(CANDIDATES, scores, PASSES, REGIONS, min_score=0.05)[1], [0.6, 0.2, 0.1],
                               rtol=1e-6)
    # rescore="none" (or no passes given): NMS and the threshold on MultiPose's scores as they are
    detector.rescore = "none"
    np.testing.assert_allclose(detector.merge(CANDIDATES, scores, PASSES, REGIONS)[1], [0.6, 0.4, 0.3], rtol=1e-6)


def test_boxes_touching_a_tile_inner_edge_are_cut_people():
    boxes = np.array([[10, 10, 50, 80], [0, 5, 30, 40], [60, 20, 99, 90], [40, 40, 60, 60]], np.float32)
    # the top-left tile of a 200 x 200 image: its right (x = 100) and bottom (y = 100) edges are inside the image
    assert _cut_by_tile(boxes, (0, 0, 100, 100), 200, 200, 2.0).tolist() == [False, False, True, False]
    # the bottom-right tile (100..200): left and top edges inside
    shifted = boxes + 100
    assert _cut_by_tile(shifted, (100, 100, 200, 200), 200, 200, 2.0).tolist() == [False, True, False, False]


def test_a_pass_on_a_region_maps_its_boxes_back_to_the_image():
    torch.manual_seed(0)
    detector = PersonDetector(build_model("movenet_multipose", heads="all"))
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (192, 256, 3), dtype=np.uint8)
    canvas = np.zeros((400, 520, 3), np.uint8)
    canvas[50:242, 100:356] = photo
    boxes, scores, people = detector.run_pass(photo)
    in_boxes, in_scores, in_people = detector.run_pass(canvas, (100, 50, 356, 242))
    np.testing.assert_allclose(in_boxes, boxes + [100, 50, 100, 50], atol=1e-4)
    np.testing.assert_allclose(in_scores, scores, atol=1e-6)
    np.testing.assert_allclose(in_people[..., :2], people[..., :2] + [100, 50], atol=1e-4)
    assert (in_boxes[:, [0, 2]] >= 100).all() and (in_boxes[:, [1, 3]] >= 50).all()
    assert (in_boxes[:, 2] <= 356).all() and (in_boxes[:, 3] <= 242).all()


def test_merge_thresholds_suppresses_and_caps():
    detector = PersonDetector(build_model("movenet_multipose", heads="all"), score_threshold=0.2, max_people=2)
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 50, 60, 70], [80, 0, 90, 20], [5, 5, 5, 9]], np.float32)
    scores = np.array([0.9, 0.95, 0.1, 0.5, 0.99], np.float32)
    xywh, kept = detector.merge(boxes, scores)
    np.testing.assert_array_equal(xywh, [[1, 0, 10, 20], [80, 0, 10, 20]])  # the empty box 4 never counts
    np.testing.assert_array_equal(kept, np.float32([0.95, 0.5]))
    xywh, kept = detector.merge(boxes, scores, min_score=0.05)
    assert len(kept) == 2
    detector.max_people = 6
    assert detector.merge(boxes, scores, min_score=0.05)[1].tolist() == pytest.approx([0.95, 0.5, 0.1])


@pytest.mark.skipif(not (MODELS / "movenet-multipose.onnx").is_file() or not COCO_VAL.is_dir(),
                    reason="needs ../shared/models and ../shared/datasets/coco-mini")
def test_detected_boxes_equal_the_released_graph_within_a_pixel():
    import onnxruntime as ort
    from posekit.checkpoint import load_model
    from posekit.data.io import read_image
    from posekit.models.movenet_import import movenet_checkpoint

    model, _ = load_model(movenet_checkpoint(MODELS / "movenet-multipose.onnx"))
    detector = PersonDetector(model, score_threshold=0.0, long_side=256)
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


def test_predict_names_the_detector_flag_that_is_wrong(tmp_path, capsys):
    from posekit.cli import main
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.jpg"), np.full((60, 80, 3), 90, np.uint8))
    pose = ROOT / "zoo" / "lspet_compact_pretrained.pt"
    for flags, message in ((["--detector-size", "300"], "--detector-size must be a positive multiple of 32, got 300"),
                           (["--detector-tiles", "1"], "--detector-tiles must be 0 (no tiled pass) or >= 2, got 1"),
                           (["--detector-tiles", "2,1"], "--detector-tiles must be 0 (no tiled pass) or >= 2, got (2, 1)"),
                           (["--detector-rescore", "vote"], "--detector-rescore must be one of agreement, none, got 'vote'"),
                           (["--detector-tiles", "2", "--max-people", "40"], "--max-people must be 1..30")):
        assert main(["predict", str(folder), "--checkpoint", str(pose), "--out", str(tmp_path / "p.json"), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_predict_passes_the_detector_flags_on():
    import argparse
    from posekit.cli.predict import load_detector, tile_grids_arg
    assert tile_grids_arg("0") == 0 and tile_grids_arg("2") == 2 and tile_grids_arg("2,3") == (2, 3)
    with pytest.raises(argparse.ArgumentTypeError, match="expected N or N,M"):
        tile_grids_arg("2x2")
    args = argparse.Namespace(detector=str(ROOT / "zoo" / "movenet_multipose.pt"), detector_size=320,
                              detector_tiles=(2, 3), detector_rescore="none", max_people=None, score_threshold=0.3)
    detector = load_detector(args)
    assert (detector.long_side, detector.tiles, detector.rescore, detector.score_threshold) == (320, (2, 3), "none", 0.3)
