"""Cross-skeleton scoring: a model of one skeleton evaluated on data of another (known answers)."""
import numpy as np
import pytest

from posekit.data.sample import Sample
from posekit.engine.evaluate import evaluate_samples
from posekit.metrics import samples_to_coco
from posekit.skeletons import COCO, LSP


class FixedPredictor:
    """Returns given keypoints for each sample, in the order of the samples."""

    def __init__(self, outputs, skeleton):
        self.outputs = outputs
        self.config = {"skeleton": skeleton} if skeleton else {}

    @property
    def num_keypoints(self):
        return self.outputs[0].shape[0]

    def predict_samples(self, samples, on_error=None):
        for sample, out in zip(samples, self.outputs):
            yield sample, out


def coco_people(n=3):
    rng = np.random.default_rng(0)
    people = []
    for i in range(n):
        kp = np.zeros((17, 3), np.float32)
        kp[:, :2] = rng.uniform(20, 180, (17, 2))
        kp[:, 2] = 2
        people.append(Sample(image_path=f"/nowhere/{i}.jpg", box=np.array([10, 10, 180, 180], np.float32),
                             keypoints=kp, skeleton="coco", image_id=i + 1, ann_id=i + 1))
    return people


def as_lsp(coco_kp, filler):
    """COCO (17, 3) -> LSP (14, 3) with the 12 shared joints copied and neck / head top = ``filler``."""
    out = np.full((14, 3), filler, np.float32)
    for j, name in enumerate(LSP.keypoints):
        if name in COCO.keypoints:
            out[j, :2] = coco_kp[COCO.index(name), :2]
        out[j, 2] = 0.9
    return out


def test_lsp_model_perfect_on_the_shared_joints_scores_ap_one_on_coco_data():
    people = coco_people()
    gt = samples_to_coco(people, COCO.sigmas)
    # neck and head top are far away: they must not count
    predictor = FixedPredictor([as_lsp(p.keypoints, 1e4) for p in people], "lsp")
    metrics = evaluate_samples(predictor, people, coco_gt=gt)
    assert metrics["shared_joints"] == list(COCO.keypoints[5:])
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["pck@0.2_torso"] == pytest.approx(1.0)
    assert set(metrics["per_joint"]) == set(COCO.keypoints[5:])


def test_shared_joints_only_errors_on_them_count():
    people = coco_people()
    outputs = [as_lsp(p.keypoints, 0.0) for p in people]
    # move every left wrist of the model (LSP joint 11) 1,000 px away: 1 of 12 shared joints wrong
    for out in outputs:
        out[LSP.index("left_wrist"), :2] += 1000
    metrics = evaluate_samples(FixedPredictor(outputs, "lsp"), people)
    assert metrics["pck@0.2_torso"] == pytest.approx(11 / 12)
    assert metrics["per_joint"]["left_wrist"]["pck@0.2_torso"] == 0.0


def test_wrong_keypoint_count_without_a_skeleton_is_a_clear_error():
    people = coco_people(1)
    predictor = FixedPredictor([np.zeros((14, 3), np.float32)], None)
    with pytest.raises(ValueError, match=r"predicts 14 keypoints but /nowhere/0.jpg has 17"):
        evaluate_samples(predictor, people)
