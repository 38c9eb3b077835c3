import numpy as np
import pytest
import torch

from posekit.inference.predictor import Predictor, merge_views, prediction_record
from posekit.codecs import HeatmapCodec
from posekit.data.sample import Sample
from posekit.skeletons import LSP


class DotFinder(torch.nn.Module):
    """Every joint's heatmap is the image's red channel pooled to stride 4: all joints land on the brightest dot."""

    num_keypoints, output_stride = 14, 4

    def forward(self, x):
        red = torch.nn.functional.avg_pool2d(x[:, :1], 4)
        return red.repeat(1, 14, 1, 1) - red.amin()

    def forward_all(self, x):
        return [self.forward(x)]


def config(decode="argmax"):
    return {"input_size": [64, 64], "num_keypoints": 14, "skeleton": "lsp", "flip_index": LSP.flip_index.tolist(),
            "codec": HeatmapCodec(input_size=(64, 64), decode=decode).to_config()}


@pytest.mark.parametrize("flip_test", [False, True])
def test_prediction_lands_on_the_dot_in_image_pixels(flip_test):
    image = np.zeros((120, 90, 3), np.uint8)
    image[70:74, 30:34, 0] = 255  # a 4x4 dot centred at (31.5, 71.5)
    predictor = Predictor(DotFinder(), config(), flip_test=flip_test)
    keypoints = predictor.predict(image, [[10, 40, 50, 60]])
    assert keypoints.shape == (1, 14, 3)
    # one heatmap pixel is 60*1.25/64 = 1.17 image px; argmax + quarter offset is within a heatmap pixel
    assert np.abs(keypoints[0, :, :2] - [31.5, 71.5]).max() < 1.2 * 4 / 2


def test_merge_views_averages_pairs():
    out = np.arange(2 * 2 * 1 * 3, dtype=np.float32).reshape(4, 1, 3)
    assert merge_views(out, 2).tolist() == [[[1.5, 2.5, 3.5]], [[7.5, 8.5, 9.5]]]


def test_prediction_record_follows_the_contract():
    sample = Sample("/x/im00001.jpg", np.array([1, 2, 3, 4], np.float32), np.zeros((14, 3), np.float32), "lsp",
                    image_id=1, file_name="im00001.jpg")
    kp = np.tile(np.array([[10.0, 20.0, 0.5]], np.float32), (14, 1))
    rec = prediction_record(sample, kp)
    assert rec["file_name"] == "im00001.jpg" and rec["image_id"] == 1 and rec["score"] == pytest.approx(0.5)
    assert rec["keypoints"][0] == [10.0, 20.0, 0.5] and len(rec["keypoints"]) == 14


def test_unreadable_images_are_reported_and_skipped(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    good = tmp_path / "good.png"
    from PIL import Image
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    samples = [Sample(str(p), np.array([0, 0, 40, 40], np.float32), np.zeros((14, 3), np.float32), "lsp")
               for p in (bad, good)]
    errors = []
    out = list(Predictor(DotFinder(), config(), flip_test=False).predict_samples(samples, on_error=lambda s, e: errors.append(s)))
    assert [s.image_path for s, _ in out] == [str(good)] and [s.image_path for s in errors] == [str(bad)]
