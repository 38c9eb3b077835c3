import json
import math

import numpy as np
import pytest
import torch

from posekit.codecs import (HeatmapCodec, IntegralCodec, RegressionCodec, build_codec, dsnt, flat_softmax,
                            js_regulariser, normalize_heatmaps, normalized_gaussians, normalized_grid,
                            soft_argmax)


def test_soft_argmax_of_one_hot_is_the_pixel_coordinate():
    logits = torch.zeros(1, 2, 4, 6)
    logits[0, 0, 1, 4] = 1e4  # softmax -> exactly one-hot in float32
    logits[0, 1, 3, 0] = 1e4
    uv = soft_argmax(logits)
    xs, ys = normalized_grid(6), normalized_grid(4)
    assert torch.equal(uv, torch.stack([torch.stack([xs[4], ys[1]]), torch.stack([xs[0], ys[3]])])[None])
    expected = torch.tensor([[[4 / 6 - 0.5, 1 / 4 - 0.5], [0 / 6 - 0.5, 3 / 4 - 0.5]]])
    torch.testing.assert_close(uv, expected, atol=1e-7, rtol=0)
    assert torch.equal(soft_argmax(logits, normalized=False), torch.tensor([[[4.0, 1.0], [0.0, 3.0]]]))


def test_dsnt_on_hand_made_3x3_map():
    probs = torch.zeros(1, 1, 3, 3)
    probs[0, 0, 0, 0] = 0.5  # (x=0, y=0)
    probs[0, 0, 1, 2] = 0.5  # (x=2, y=1)
    # normalised grid for 3 pixels: -1/2, -1/6, 1/6
    torch.testing.assert_close(dsnt(probs), torch.tensor([[[-1 / 6, -1 / 3]]]))
    torch.testing.assert_close(dsnt(probs, normalized=False), torch.tensor([[[1.0, 0.5]]]))
    uniform = torch.full((1, 1, 3, 3), 1 / 9)
    torch.testing.assert_close(dsnt(uniform), torch.tensor([[[-1 / 6, -1 / 6]]]))


def test_normalized_grid_matches_regression_codec():
    # heatmap pixel i at stride 4 is input pixel 4 i, whose regression coordinate is 4 i / W - 0.5.
    grid = normalized_grid(48, dtype=torch.float64)
    regression = RegressionCodec(input_size=(192, 256)).normalize(np.stack([np.arange(48) * 4.0, np.zeros(48)], 1))
    np.testing.assert_allclose(grid.numpy(), regression[:, 0], atol=1e-12)


def test_integral_decode_of_one_hot_agrees_with_heatmap_frame():
    codec = IntegralCodec(input_size=(64, 96))
    logits = torch.full((1, 1, 24, 16), -1e4)
    logits[0, 0, 7, 11] = 1e4
    coords, scores = codec.decode(logits)
    np.testing.assert_allclose(coords, [[[44.0, 28.0]]], atol=1e-4)  # stride 4
    np.testing.assert_allclose(HeatmapCodec(input_size=(64, 96)).heatmap_to_input(np.array([11, 7])), [44, 28])
    assert coords.dtype == np.float32 and scores.dtype == np.float32
    np.testing.assert_allclose(scores, [[1.0]])  # sigmoid(1e4)


def test_integral_encode_is_the_regression_target():
    codec = IntegralCodec(input_size=(64, 96))
    keypoints = np.array([[10.0, 20.0], [5.0, 90.0]])
    out = codec.encode(keypoints, np.array([2, 0]))
    ref = RegressionCodec(input_size=(64, 96)).encode(keypoints, np.array([2, 0]))
    np.testing.assert_array_equal(out["coords"], ref["coords"])
    np.testing.assert_array_equal(out["weights"], ref["weights"])


def test_soft_argmax_round_trip_of_a_peaked_map():
    codec = IntegralCodec(input_size=(64, 64))
    uv = torch.tensor([[[0.1, -0.2]]])
    maps = normalized_gaussians(uv, (16, 16), sigma_t=1.0)
    torch.testing.assert_close(dsnt(maps), uv, atol=1e-4, rtol=0)
    coords = codec.normalized_coords(torch.log(maps))
    torch.testing.assert_close(coords, uv, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["softmax", "sigmoid", "relu", "abs"])
def test_normalized_maps_sum_to_one(method):
    logits = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    probs = normalize_heatmaps(logits, method)
    torch.testing.assert_close(probs.sum(dim=(2, 3)), torch.ones(2, 3))
    assert (probs >= 0).all()


def test_all_zero_relu_map_becomes_uniform():
    probs = normalize_heatmaps(-torch.ones(1, 1, 2, 2), "relu")
    torch.testing.assert_close(probs, torch.full((1, 1, 2, 2), 0.25))


def test_js_regulariser_known_values():
    mu = torch.tensor([[[0.1, -0.2], [-0.4, -0.4]]])
    target = normalized_gaussians(mu, (16, 16), sigma_t=1.0)
    same = js_regulariser(target, mu, sigma_t=1.0)
    assert same.shape == (1, 2)
    assert same.abs().max() < 1e-6
    # A one-hot map far from a narrow Gaussian: disjoint supports -> ln 2.
    far = torch.zeros(1, 1, 16, 16)
    far[0, 0, 15, 15] = 1.0
    js = js_regulariser(far, torch.tensor([[[-0.5, -0.5]]]), sigma_t=0.5)
    assert js.item() == pytest.approx(math.log(2), abs=1e-5)


def test_js_regulariser_has_finite_gradients():
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    mu = torch.zeros(2, 3, 2)
    loss = js_regulariser(flat_softmax(logits), mu).mean() + soft_argmax(logits).abs().sum()
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_validation():
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        soft_argmax(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="mu"):
        js_regulariser(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match="method"):
        normalize_heatmaps(torch.zeros(1, 1, 2, 2), "tanh")
    with pytest.raises(ValueError, match="expects"):
        IntegralCodec(input_size=(64, 64)).decode(np.zeros((1, 1, 8, 8), np.float32))


def test_config_round_trip():
    codec = IntegralCodec(input_size=(96, 128), normalization="sigmoid", beta=2.0)
    cfg = json.loads(json.dumps(codec.to_config()))
    rebuilt = build_codec(cfg)
    assert isinstance(rebuilt, IntegralCodec) and rebuilt.to_config() == codec.to_config()
