"""Predictor with coordinate and DSNT heads: decoding to the right pixel, and flip test (mirror x, swap
left/right joints through flip_index)."""
import numpy as np
import pytest
import torch

from posekit.codecs import IntegralCodec, RegressionCodec, dsnt
from posekit.data.transforms import affine_points, invert_affine
from posekit.inference.predictor import Predictor
from posekit.skeletons import LSP

W = H = 64


def config(codec, head):
    return {"model": {"name": "test_module", "kwargs": {"num_keypoints": 14}},
            "input_size": [W, H], "num_keypoints": 14, "skeleton": "lsp", "flip_index": LSP.flip_index.tolist(),
            "codec": codec.to_config(), "head": {"type": head, "kwargs": {}}}


class FixedCoords(torch.nn.Module):
    """A regression 'network' that always answers the same normalised coordinates, a different point per joint."""

    def __init__(self):
        super().__init__()
        u = torch.linspace(-0.4, 0.4, 14)
        self.register_buffer("coords", torch.stack([u, 0.3 * u.flip(0)], dim=1))

    def forward(self, x):
        return self.coords.expand(x.shape[0], 14, 2).clone()


class DotRegressor(torch.nn.Module):
    """Soft-argmax of the red channel at input resolution: every joint regresses the red dot, in the regression
    codec's normalised frame (``x / W - 0.5``, exactly the DSNT grid). Mirror-equivariant by construction."""

    def forward(self, x):
        red = x[:, :1] * 200.0
        probs = torch.softmax(red.flatten(2), dim=2).reshape(red.shape)
        return dsnt(probs).repeat(1, 14, 1)


class OneHotLogits(torch.nn.Module):
    """DSNT-head logits that are one-hot at heatmap pixel (x=11, y=7) for every joint."""

    def forward(self, x):
        logits = torch.full((x.shape[0], 14, H // 4, W // 4), -1e4)
        logits[:, :, 7, 11] = 1e4
        return logits


def test_flip_test_mirrors_x_and_swaps_left_and_right():
    model = FixedCoords()
    predictor = Predictor(model, config(RegressionCodec((W, H)), "regression"), flip_test=True)
    image = np.zeros((120, 90, 3), np.uint8)
    views = predictor.prepare(image, np.array([10, 20, 50, 80], np.float32))
    (crop, matrix, plain), (crop_f, matrix_f, flipped) = views
    assert not plain and flipped
    out = predictor.predict_crops(np.stack([crop, crop_f]), np.stack([matrix, matrix_f]), np.array([False, True]))
    crop_px = (model.coords.numpy().astype(np.float64) + 0.5) * [W, H]  # what the codec decodes, crop pixels
    back = invert_affine(matrix)
    np.testing.assert_allclose(out[0, :, :2], affine_points(crop_px, back), atol=1e-3)
    right, left = LSP.index("right_ankle"), LSP.index("left_ankle")
    # the mirrored view's answer for the RIGHT ankle is its LEFT-ankle slot, mirrored: x -> W - 1 - x
    mirrored_left = np.array([W - 1 - crop_px[left, 0], crop_px[left, 1]])
    np.testing.assert_allclose(out[1, right, :2], affine_points(mirrored_left[None], back)[0], atol=1e-3)
    mirrored_right = np.array([W - 1 - crop_px[right, 0], crop_px[right, 1]])
    np.testing.assert_allclose(out[1, left, :2], affine_points(mirrored_right[None], back)[0], atol=1e-3)
    # the head top has no partner: it is only mirrored
    head = LSP.index("head_top")
    mirrored_head = np.array([W - 1 - crop_px[head, 0], crop_px[head, 1]])
    np.testing.assert_allclose(out[1, head, :2], affine_points(mirrored_head[None], back)[0], atol=1e-3)


@pytest.mark.parametrize("flip_test", [False, True])
def test_mirror_equivariant_regressor_finds_the_dot_with_and_without_flip(flip_test):
    image = np.zeros((120, 90, 3), np.uint8)
    image[70:72, 30:32, 0] = 255  # a 2x2 dot centred at (30.5, 70.5)
    predictor = Predictor(DotRegressor(), config(RegressionCodec((W, H)), "regression"), flip_test=flip_test)
    keypoints = predictor.predict(image, [[10, 40, 50, 60]])
    assert keypoints.shape == (1, 14, 3)
    np.testing.assert_allclose(keypoints[0, :, :2], np.tile([30.5, 70.5], (14, 1)), atol=0.6)
    np.testing.assert_allclose(keypoints[0, :, 2], 1.0)  # plain regression: no confidence, score 1


def test_dsnt_head_on_a_one_hot_map_decodes_to_the_pixel():
    predictor = Predictor(OneHotLogits(), config(IntegralCodec((W, H)), "dsnt"), flip_test=False)
    crops = np.zeros((2, 3, H, W), np.float32)
    coords, scores = predictor.codec.decode(predictor.run_network(crops))
    np.testing.assert_allclose(coords, np.tile([44.0, 28.0], (2, 14, 1)), atol=1e-4)  # stride 4
    np.testing.assert_allclose(scores, 1.0)
    matrix = np.array([[0.5, 0.0, -3.0], [0.0, 0.5, -7.0]])  # image -> crop
    out = predictor.predict_crops(crops[:1], matrix[None], np.array([False]))
    np.testing.assert_allclose(out[0, :, :2], np.tile([(44 + 3) / 0.5, (28 + 7) / 0.5], (14, 1)), atol=1e-3)


def test_rle_output_scores_come_from_sigma():
    class RLEConstant(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 14, 4)
            out[..., 2:] = torch.logit(torch.tensor(0.2))  # sigma 0.2 -> score 0.8
            return out

    predictor = Predictor(RLEConstant(), config(RegressionCodec((W, H)), "rle"), flip_test=True)
    keypoints = predictor.predict(np.zeros((64, 64, 3), np.uint8), [[0, 0, 64, 64]])
    np.testing.assert_allclose(keypoints[0, :, 2], 0.8, atol=1e-3)


def test_decode_override_is_for_heatmap_codecs_only():
    with pytest.raises(ValueError, match="switches heatmap decoding"):
        Predictor(FixedCoords(), config(RegressionCodec((W, H)), "regression"), decode="dark")
    with pytest.raises(ValueError, match="blur_kernel=5 switches heatmap decoding"):
        Predictor(FixedCoords(), config(RegressionCodec((W, H)), "regression"), blur_kernel=5)
