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
    return {"model": {"name": "dot_finder", "kwargs": {"num_keypoints": 14}},
            "input_size": [64, 64], "num_keypoints": 14, "skeleton": "lsp", "flip_index": LSP.flip_index.tolist(),
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


def test_blur_kernel_override_reaches_the_codec_and_is_validated():
    predictor = Predictor(DotFinder(), config("dark"), decode="dark", blur_kernel=5)
    assert (predictor.codec.decode_method, predictor.codec.blur_kernel) == ("dark", 5)
    assert Predictor(DotFinder(), config("dark")).codec.blur_kernel == 11   # the checkpoint's own otherwise
    with pytest.raises(ValueError, match="blur_kernel must be a positive odd integer"):
        Predictor(DotFinder(), config("dark"), blur_kernel=4)


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


def test_flip_fusion_mirrors_back_swaps_joints_and_shifts_by_three_quarters():
    from posekit.codecs import HeatmapCodec
    from posekit.inference.predictor import fuse_flipped_heatmaps
    codec = HeatmapCodec(input_size=(128, 128))            # x / 4 heatmaps: mirror shift 1 - 32/128 = 0.75
    maps = np.zeros((2, 2, 32, 32), np.float32)
    maps[0, 0, 5, 10] = 1.0                                # original view, joint 0 at column 10
    maps[1, 1, 5, 21] = 1.0                                # mirrored view sees it as joint 1 at column 31 - 10
    matrices = np.stack([np.eye(2, 3), 2 * np.eye(2, 3)])
    fused, mats, flipped = fuse_flipped_heatmaps(maps, matrices, np.array([False, True]), [1, 0], codec)
    assert fused[0, 0, 5, 10] == pytest.approx(0.5 * (1 + 0.25)) and fused[0, 0, 5, 11] == pytest.approx(0.5 * 0.75)
    assert fused[0, 1].sum() == 0 and np.array_equal(fused[0], fused[1])
    assert not flipped.any() and np.array_equal(mats[1], matrices[0])


def test_flip_fusion_is_an_exact_mirror_for_unbiased_heatmaps():
    from posekit.codecs import HeatmapCodec
    from posekit.inference.predictor import fuse_flipped_heatmaps
    rng = np.random.default_rng(0)
    original = rng.random((1, 3, 8, 8)).astype(np.float32)
    mirrored = original[:, [0, 2, 1]][..., ::-1]
    fused, _, _ = fuse_flipped_heatmaps(np.concatenate([original, mirrored]), np.zeros((2, 2, 3)),
                                        np.array([False, True]), [0, 2, 1],
                                        HeatmapCodec(input_size=(32, 32), unbiased=True))
    np.testing.assert_allclose(fused[0], original[0], rtol=1e-6)
