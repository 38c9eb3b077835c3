import contextlib
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from posekit.data.sample import Sample
from posekit.metrics import (auc, box_lengths, coco_oks_ap, evaluate_keypoints, format_table, head_lengths, pck,
                             pck_curve, robustness_summary, samples_to_coco, segment_lengths, torso_lengths)
from posekit.skeletons import COCO, LSP

COCO_VAL = Path(__file__).resolve().parents[1] / "../shared/datasets/coco-mini/annotations/person_keypoints_val2017.json"


# -- PCK by hand --------------------------------------------------------------------------------------
def two_people():
    """2 people x 3 joints. Person 0: norm 100 (threshold 20 at alpha 0.2), errors 5, 25, 19.9 -> pass, fail, pass.
    Person 1: norm 50 (threshold 10), errors 12, 3 -> fail, pass; joint 2 unlabelled (v = 0) with a wild prediction."""
    gt = np.array([[[0, 0, 2], [10, 0, 2], [0, 10, 1]],
                   [[50, 50, 2], [60, 50, 2], [0, 0, 0]]], np.float64)
    pred = gt[..., :2].copy()
    pred[0, 0] += [3, 4]      # 5
    pred[0, 1] += [0, 25]     # 25
    pred[0, 2] += [19.9, 0]   # 19.9
    pred[1, 0] += [-12, 0]    # 12
    pred[1, 1] += [0, 3]      # 3
    pred[1, 2] = [999, 999]   # unlabelled: must not count
    return pred, gt, np.array([100.0, 50.0])


def test_pck_hand_computed():
    pred, gt, norm = two_people()
    r = pck(pred, gt, norm, 0.2)
    np.testing.assert_allclose(r["per_joint"], [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(r["counted"], [2, 2, 1])
    assert r["overall"] == pytest.approx(3 / 5)
    assert r["mean"] == pytest.approx(2 / 3)


def test_pck_joint_subset_and_scores_column_ignored():
    pred, gt, norm = two_people()
    with_scores = np.concatenate([pred, np.zeros(pred.shape[:2] + (1,))], axis=-1)
    r = pck(with_scores, gt, norm, 0.2, joints=[0, 1])
    assert math.isnan(r["per_joint"][2]) and r["counted"][2] == 0
    assert r["overall"] == pytest.approx(2 / 4)


def test_pck_skips_undefined_norm_and_counts_nan_prediction_as_miss():
    pred, gt, norm = two_people()
    r = pck(pred, gt, np.array([100.0, np.nan]), 0.2)
    np.testing.assert_array_equal(r["counted"], [1, 1, 1])
    assert r["overall"] == pytest.approx(2 / 3)
    pred[0, 0] = np.nan
    r = pck(pred, gt, norm, 0.2)
    np.testing.assert_array_equal(r["counted"], [2, 2, 1])
    assert r["overall"] == pytest.approx(2 / 5)


def test_pck_counts_the_people_with_a_counted_joint():
    pred, gt, norm = two_people()
    assert pck(pred, gt, norm, 0.2)["n_people"] == 2
    assert pck(pred, gt, np.array([100.0, np.nan]), 0.2)["n_people"] == 1       # person 1 skipped
    assert pck(pred, gt, norm, 0.2, joints=[2])["n_people"] == 1                 # person 1's joint 2 is unlabelled
    assert pck(pred, gt, np.array([0.0, np.nan]), 0.2)["n_people"] == 0


def test_pck_with_nothing_counted_is_nan():
    pred, gt, _ = two_people()
    r = pck(pred, gt, np.array([np.nan, 0.0]), 0.2)
    assert math.isnan(r["overall"]) and math.isnan(r["mean"]) and np.isnan(r["per_joint"]).all()


def test_pck_validates_shapes():
    pred, gt, norm = two_people()
    with pytest.raises(ValueError, match="disagree"):
        pck(pred[:, :2], gt, norm, 0.2)
    with pytest.raises(ValueError, match="norm"):
        pck(pred, gt, norm[:1], 0.2)
    with pytest.raises(ValueError, match="alpha"):
        pck(pred, gt, norm, -0.1)


# -- normalisers ---------------------------------------------------------------------------------------
def lsp_person(shift=(0.0, 0.0)):
    gt = np.zeros((14, 3))
    gt[:, :2] = np.arange(28).reshape(14, 2) * 4.0
    gt[:, 2] = 2
    ls, rh = LSP.torso
    gt[rh, :2] = [100, 100]
    gt[ls, :2] = [130, 60]     # torso 50 (30-40-50)
    neck, top = LSP.head
    gt[neck, :2] = [115, 40]
    gt[top, :2] = [115, 20]    # head segment 20
    gt[:, :2] += shift
    return gt


def test_torso_and_head_lengths_and_undefined():
    a, b = lsp_person(), lsp_person()
    b[LSP.torso[0], 2] = 0     # left shoulder unlabelled
    b[LSP.head[1], 2] = 0      # head top unlabelled
    np.testing.assert_allclose(torso_lengths(np.stack([a, b]), LSP), [50.0, np.nan])
    np.testing.assert_allclose(head_lengths(np.stack([a, b]), LSP), [20.0, np.nan])
    with pytest.raises(ValueError, match="head"):
        head_lengths(a[None], dataclasses.replace(LSP, head=None))
    np.testing.assert_allclose(box_lengths([[0, 0, 30, 40], [5, 5, 20, 10]]), [40, 20])


def test_segment_lengths_by_name_and_index():
    a, b = lsp_person(), lsp_person()
    rs, lh = LSP.index("right_shoulder"), LSP.index("left_hip")
    a[rs, :2], a[lh, :2] = [10, 10], [16, 18]        # 6-8-10
    b[lh, 2] = 0                                     # left hip unlabelled
    gt = np.stack([a, b])
    np.testing.assert_allclose(segment_lengths(gt, LSP, "right_shoulder", "left_hip"), [10.0, np.nan])
    np.testing.assert_allclose(segment_lengths(gt, LSP, rs, lh), [10.0, np.nan])
    np.testing.assert_allclose(segment_lengths(gt, LSP, *LSP.torso), torso_lengths(gt, LSP))  # [50, 50]
    with pytest.raises(ValueError, match="nose"):
        segment_lengths(gt, LSP, "nose", "left_hip")
    with pytest.raises(ValueError, match="keypoints"):
        segment_lengths(gt[:, :13], LSP, "neck", "head_top")


# -- AUC -----------------------------------------------------------------------------------------------
def test_auc_perfect_is_one_and_alpha_zero_counts_exact_hits():
    pred, gt, norm = two_people()
    assert auc(gt[..., :2], gt, norm) == 1.0
    assert pck_curve(gt[..., :2], gt, norm, [0.0])[0] == 1.0


def test_auc_linear_case():
    # 20 joints with relative errors 0.005, 0.015, ..., 0.195: at alpha = 0.01 i exactly i of them pass,
    # so the curve is i / 20 for i = 0..20 and its mean is 0.5.
    k = 20
    gt = np.zeros((1, k, 3))
    gt[..., 2] = 2
    pred = np.zeros((1, k, 2))
    pred[0, :, 0] = (np.arange(k) + 0.5) * 0.01 * 100.0
    norm = np.array([100.0])
    np.testing.assert_allclose(pck_curve(pred, gt, norm, np.linspace(0, 0.2, 21)), np.arange(21) / 20)
    assert auc(pred, gt, norm) == pytest.approx(0.5)
    # every joint 0.105 torso away: PCK = 1 from alpha = 0.11 on, 10 of the 21 steps
    pred[0, :, 0] = 10.5
    assert auc(pred, gt, norm) == pytest.approx(10 / 21)


# -- evaluate_keypoints / format_table -----------------------------------------------------------------
def lsp_batch():
    gt = np.stack([lsp_person(), lsp_person((5, 5)), lsp_person()])
    gt[2, LSP.torso[1], 2] = 0                     # person 2: right hip unlabelled -> torso undefined
    pred = gt[..., :2].copy()
    pred[0, 0] += [20, 0]                          # 0.4 torso: miss at 0.2; box max side 200 -> 0.1: miss at 0.05
    pred[1, 1] += [6, 8]                           # 10 px: 0.2 torso -> hit; 0.05 box -> hit (threshold 10)
    boxes = np.array([[0, 0, 200, 150]] * 3, np.float64)
    return pred, gt, boxes


def test_evaluate_keypoints_values_skips_and_json():
    pred, gt, boxes = lsp_batch()
    m = evaluate_keypoints(pred, gt, boxes, LSP)
    assert m["n_people"] == 3 and m["n_skipped_torso"] == 1 and m["n_skipped_head"] == 0
    assert m["pck@0.2_torso"] == pytest.approx(27 / 28)         # 2 people x 14 joints, one miss
    assert m["pck@0.05_box"] == pytest.approx(40 / 41)          # 3 x 14 - 1 unlabelled, one miss
    assert m["pckh@0.5"] == pytest.approx(40 / 41)              # threshold 10 px: same hits as the box
    assert m["per_joint"]["right_ankle"]["pck@0.2_torso"] == pytest.approx(0.5)
    assert m["per_joint"]["right_hip"]["n"] == 2 and m["per_joint"]["right_hip"]["n_torso"] == 2
    assert 0 < m["auc_torso"] < 1
    assert json.loads(json.dumps(m)) == m                      # plain floats / ints only


def test_evaluate_keypoints_auc_hand_computed():
    # torso 50, 28 counted joints: 26 exact hits at every threshold; person 0's right ankle is 0.4 torso away (a miss
    # at every alpha <= 0.2); person 1's right knee is exactly 0.2 torso away (a hit only at the last of the 21 steps)
    pred, gt, boxes = lsp_batch()
    m = evaluate_keypoints(pred, gt, boxes, LSP)
    assert m["auc_torso"] == pytest.approx((20 * 26 / 28 + 27 / 28) / 21) == pytest.approx(547 / 588)
    assert m["per_joint"]["right_ankle"]["auc_torso"] == pytest.approx(0.5)
    assert m["per_joint"]["right_knee"]["auc_torso"] == pytest.approx((20 * 0.5 + 1.0) / 21)
    assert m["per_joint"]["neck"]["auc_torso"] == 1.0
    assert m["pck@0.2_torso"] == pytest.approx(pck_curve(pred, gt, torso_lengths(gt, LSP), [0.2])[0])


def test_evaluate_keypoints_joint_subset_by_name():
    pred, gt, boxes = lsp_batch()
    shared = [n for n in LSP.keypoints if n not in ("neck", "head_top")]
    m = evaluate_keypoints(pred, gt, boxes, LSP, joints=shared)
    assert sorted(m["per_joint"]) == sorted(shared)
    assert m["pck@0.2_torso"] == pytest.approx(23 / 24)
    with pytest.raises(ValueError, match="nose"):
        evaluate_keypoints(pred, gt, boxes, LSP, joints=["nose"])


def test_format_table_lists_joints_mean_and_overall():
    pred, gt, boxes = lsp_batch()
    m = evaluate_keypoints(pred, gt, boxes, LSP)
    table = format_table(m, LSP)
    lines = table.splitlines()
    assert len(lines) == 2 + 14 + 2
    assert lines[2].startswith("| right_ankle | 0.500 |")
    assert lines[-1].startswith(f"| **overall** | {m['pck@0.2_torso']:.3f} |")


# -- OKS AP through pycocotools ------------------------------------------------------------------------
def direct_pycocotools_ap(ann_file, results):
    """The plain documented pycocotools recipe."""
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(ann_file))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def coco_val_annotations():
    if not COCO_VAL.exists():
        pytest.skip("coco-mini not available")
    return [a for a in json.loads(COCO_VAL.read_text())["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]


@pytest.mark.shared_data
def test_oks_ap_of_ground_truth_is_one():
    anns = coco_val_annotations()
    preds = [{"image_id": a["image_id"], "keypoints": np.reshape(a["keypoints"], (-1, 3)).tolist(), "score": 1.0}
             for a in anns]
    r = coco_oks_ap(str(COCO_VAL), preds)
    assert r["AP"] == pytest.approx(1.0) and r["AR"] == pytest.approx(1.0)
    assert coco_oks_ap(str(COCO_VAL), preds, sigmas=COCO.sigmas)["AP"] == pytest.approx(1.0)


@pytest.mark.shared_data
def test_oks_ap_matches_direct_pycocotools_on_a_shift():
    anns = coco_val_annotations()
    preds, results = [], []
    for i, a in enumerate(anns):
        kp = np.reshape(a["keypoints"], (-1, 3)).astype(np.float64)
        kp[:, :2] += 0.04 * np.sqrt(a["area"]) * np.array([1.0, -0.5])
        score = 1.0 - 0.001 * i  # distinct scores: no tie-order dependence
        preds.append({"image_id": a["image_id"], "keypoints": kp.tolist(), "score": score, "box": a["bbox"]})
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                        "score": score})
    ours = coco_oks_ap(str(COCO_VAL), preds)
    stats = direct_pycocotools_ap(COCO_VAL, results)
    assert 0.0 < ours["AP"] < 1.0
    for name, value in zip(("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"), stats):
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def in_memory_samples():
    people = []
    for ann_id, x0 in ((0, 10.0), (0, 200.0)):  # ann ids 0: samples_to_coco must renumber them
        kp = lsp_person((x0, 0.0)).astype(np.float32)
        people.append(Sample(image_path="/nowhere/im1.jpg", box=np.array([x0, 0, 150, 150], np.float32),
                             keypoints=kp, skeleton="lsp", image_id=7, ann_id=ann_id, file_name="im1.jpg"))
    return people


def test_oks_ap_in_memory_one_image():
    samples = in_memory_samples()
    gt = samples_to_coco(samples, LSP.sigmas)
    assert [a["id"] for a in gt["annotations"]] == [1, 2] and len(gt["images"]) == 1
    assert gt["annotations"][0]["area"] == 150 * 150 and gt["annotations"][0]["num_keypoints"] == 14
    preds = [{"image_id": 7, "keypoints": s.keypoints.tolist(), "score": 0.9} for s in samples]
    assert coco_oks_ap(gt, preds, sigmas=LSP.sigmas)["AP"] == pytest.approx(1.0)
    # one perfect prediction for two people: recall 0.5 with precision 1 -> 51 of COCO's 101 recall points
    r = coco_oks_ap(gt, preds[:1], sigmas=LSP.sigmas)
    assert r["AP"] == pytest.approx(51 / 101) and r["AR"] == pytest.approx(0.5)
    assert math.isnan(r["APm"])  # no medium people: COCOeval's -1 becomes NaN
    assert coco_oks_ap(gt, [], sigmas=LSP.sigmas)["AP"] == 0.0


def test_oks_ap_errors():
    gt = samples_to_coco(in_memory_samples())
    pred = {"image_id": 7, "keypoints": np.zeros((14, 3)).tolist(), "score": 1.0}
    with pytest.raises(ValueError, match="sigmas"):
        coco_oks_ap(gt, [pred])
    with pytest.raises(ValueError, match="image ids"):
        coco_oks_ap(gt, [dict(pred, image_id=8)], sigmas=LSP.sigmas)
    with pytest.raises(ValueError, match="keypoints"):
        coco_oks_ap(gt, [dict(pred, keypoints=[[0, 0, 1]] * 13)], sigmas=LSP.sigmas)


# -- robustness ----------------------------------------------------------------------------------------
def test_robustness_summary():
    table = {"gaussian_noise": {1: 0.8, 2: 0.7, 3: 0.6, 4: 0.5, 5: 0.4},
             "fog": {"1": 0.9, "2": 0.9, "3": 0.9, "4": 0.9, "5": 0.9, "0": 1.0}}  # JSON keys; severity 0 ignored
    r = robustness_summary(1.0 / 1.5, table)
    assert r["per_corruption"] == {"gaussian_noise": pytest.approx(0.6), "fog": pytest.approx(0.9)}
    assert r["mPC"] == pytest.approx(0.75) and r["rPC"] == pytest.approx(1.125) and r["n_corruptions"] == 2
    with pytest.raises(ValueError, match="missing \\[5\\]"):
        robustness_summary(1.0, {"fog": {1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1}})


def test_robustness_summary_partial_severities():
    partial = {"fog": {1: 0.4, 3: 0.2}, "snow": {"1": 0.3, "3": 0.1}}
    r = robustness_summary(0.5, partial, partial=True)
    assert r == {"mPC": pytest.approx(0.25), "rPC": pytest.approx(0.5), "n_corruptions": 2, "complete": False,
                 "per_corruption": {"fog": pytest.approx(0.3), "snow": pytest.approx(0.2)}}
    full = {"fog": {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.2, 5: 0.1}}
    assert robustness_summary(0.6, full, partial=True) == {**robustness_summary(0.6, full), "complete": True}
    assert robustness_summary(0.6, full)["mPC"] == pytest.approx(0.3)
    assert math.isnan(robustness_summary(0.0, partial, partial=True)["rPC"])
    with pytest.raises(ValueError, match="missing"):
        robustness_summary(0.5, partial)  # five severities are required unless partial
