import json
import math

import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec, argmax_decode, build_codec, render_gaussians


def test_default_heatmap_size_is_a_quarter_of_the_input():
    assert HeatmapCodec(input_size=(192, 256)).heatmap_size == (48, 64)


def test_hand_computed_5x5_target():
    # stride 4: input (8, 8) -> heatmap (2, 2); sigma 1 -> exp(-d^2 / 2).
    codec = HeatmapCodec(input_size=(20, 20), heatmap_size=(5, 5), sigma=1.0)
    out = codec.encode(np.array([[8.0, 8.0]]), np.array([2]))
    hm = out["heatmaps"][0]
    assert hm.shape == (5, 5) and hm.dtype == np.float32
    assert hm[2, 2] == 1.0
    assert hm[2, 3] == pytest.approx(math.exp(-0.5), abs=1e-7)  # row y=2, column x=3
    assert hm[3, 3] == pytest.approx(math.exp(-1.0), abs=1e-7)
    assert hm[0, 0] == pytest.approx(math.exp(-4.0), abs=1e-7)
    assert hm[4, 0] == pytest.approx(math.exp(-4.0), abs=1e-7)
    assert hm[1, 4] == pytest.approx(math.exp(-2.5), abs=1e-7)
    assert out["weights"].tolist() == [1.0]


def test_biased_target_rounds_the_centre_to_the_nearest_pixel():
    codec = HeatmapCodec(input_size=(20, 20), heatmap_size=(5, 5), sigma=1.0)
    exact = codec.encode(np.array([[8.0, 8.0]]), np.array([1]))["heatmaps"]
    # (9.9, 6.1) / 4 = (2.475, 1.525) -> rounds to (2, 2): the same target.
    rounded = codec.encode(np.array([[9.9, 6.1]]), np.array([1]))["heatmaps"]
    np.testing.assert_array_equal(exact, rounded)


def test_unbiased_target_uses_udp_mapping_and_sub_pixel_centre():
    # UDP: x_hm = x_in * (5 - 1) / (17 - 1) = x_in / 4 exactly, so input (9, 8) -> (2.25, 2.0).
    codec = HeatmapCodec(input_size=(17, 17), heatmap_size=(5, 5), sigma=1.0, unbiased=True)
    hm = codec.encode(np.array([[9.0, 8.0]]), np.array([1]))["heatmaps"][0]
    assert hm[2, 2] == pytest.approx(math.exp(-0.25 ** 2 / 2), abs=1e-7)
    assert hm[2, 3] == pytest.approx(math.exp(-0.75 ** 2 / 2), abs=1e-7)
    assert hm[3, 1] == pytest.approx(math.exp(-(1.25 ** 2 + 1) / 2), abs=1e-7)


def test_udp_mapping_aligns_first_and_last_pixel_centres():
    codec = HeatmapCodec(input_size=(192, 256), unbiased=True)
    corners = np.array([[0.0, 0.0], [191.0, 255.0]])
    np.testing.assert_allclose(codec.input_to_heatmap(corners), [[0, 0], [47, 63]])
    xy = np.array([[12.3, 200.7]])
    np.testing.assert_allclose(codec.heatmap_to_input(codec.input_to_heatmap(xy)), xy)


def test_biased_gaussian_is_cut_at_three_sigma():
    codec = HeatmapCodec(input_size=(80, 80), heatmap_size=(20, 20), sigma=1.0)
    hm = codec.encode(np.array([[40.0, 40.0]]), np.array([1]))["heatmaps"][0]  # centre (10, 10)
    assert hm[10, 13] == pytest.approx(math.exp(-4.5), abs=1e-7)
    assert hm[10, 14] == 0.0 and hm[14, 10] == 0.0
    assert np.count_nonzero(hm) == 7 * 7


def test_invisible_and_far_away_joints_get_zero_weight_and_empty_maps():
    codec = HeatmapCodec(input_size=(192, 256), sigma=2.0)
    keypoints = np.array([[50.0, 60.0], [np.nan, np.nan], [-400.0, 60.0], [-20.0, 60.0], [100.0, 1000.0]])
    out = codec.encode(keypoints, np.array([2, 0, 2, 1, 2]))
    assert out["weights"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert out["heatmaps"][[1, 2, 4]].max() == 0.0
    # x_hm = -5 lies 2.5 sigma outside: its tail still touches column 0 and it is trained.
    assert out["heatmaps"][3, 15, 0] == pytest.approx(math.exp(-25 / 8), abs=1e-7)


def test_visible_joint_with_nan_coordinates_is_an_error():
    with pytest.raises(ValueError, match="finite"):
        HeatmapCodec().encode(np.array([[np.nan, 1.0]]), np.array([2]))


def test_encode_validates_shapes():
    codec = HeatmapCodec()
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        codec.encode(np.zeros((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="visible"):
        codec.encode(np.zeros((3, 2)), np.ones(4))


def _random_keypoints(rng, n, size, margin):
    width, height = size
    return rng.uniform([margin, margin], [width - 1 - margin, height - 1 - margin], size=(n, 2))


def _encode_batch(codec, keypoints):
    return np.stack([codec.encode(kp[None], np.array([2]))["heatmaps"] for kp in keypoints], axis=1)


def test_biased_argmax_round_trip_recovers_the_rounded_pixel_exactly():
    # Symmetric targets have equal neighbours, so argmax decoding returns the rounded pixel: the
    # error is the quantisation error, at most half a heatmap pixel (2 input px at stride 4).
    codec = HeatmapCodec(input_size=(192, 256), decode="argmax")
    keypoints = _random_keypoints(np.random.default_rng(0), 40, codec.input_size, margin=1)
    coords, scores = codec.decode(_encode_batch(codec, keypoints))
    np.testing.assert_array_equal(coords[0], np.floor(keypoints / 4 + 0.5) * 4)
    assert np.abs(coords[0] - keypoints).max() <= 2.0
    np.testing.assert_array_equal(scores, 1.0)


def test_unbiased_argmax_round_trip_is_within_a_quarter_heatmap_pixel():
    codec = HeatmapCodec(input_size=(192, 256), unbiased=True, decode="argmax")
    keypoints = _random_keypoints(np.random.default_rng(1), 40, codec.input_size, margin=8)
    coords, _ = codec.decode(_encode_batch(codec, keypoints))
    error_hm = np.abs(codec.input_to_heatmap(coords[0]) - codec.input_to_heatmap(keypoints))
    assert error_hm.max() <= 0.25 + 1e-5
    # ... and the quarter shift helps: the mean error is below the plain argmax's 0.25 px.
    assert error_hm.mean() < 0.2


def test_unbiased_dark_round_trip_recovers_sub_pixel_locations():
    # Interior joints (6 heatmap px from the border, beyond the blur's reach); nearer the border the
    # zero-padded blur pulls the estimate inwards by up to ~0.06 px.
    codec = HeatmapCodec(input_size=(192, 256), unbiased=True, decode="dark")
    keypoints = _random_keypoints(np.random.default_rng(2), 60, codec.input_size, margin=24)
    coords, _ = codec.decode(_encode_batch(codec, keypoints))
    error_hm = np.abs(codec.input_to_heatmap(coords[0]) - codec.input_to_heatmap(keypoints))
    assert error_hm.max() < 0.05


def test_decode_accepts_tensors_and_returns_numpy():
    codec = HeatmapCodec(input_size=(64, 64), unbiased=True)
    maps = _encode_batch(codec, np.array([[20.3, 31.7], [40.0, 12.2]]))
    from_numpy = codec.decode(maps)
    from_torch = codec.decode(torch.from_numpy(maps))
    for a, b in zip(from_numpy, from_torch):
        assert isinstance(b, np.ndarray) and b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_decode_rejects_wrong_shapes():
    codec = HeatmapCodec(input_size=(64, 64))
    with pytest.raises(ValueError, match="expects 16x16"):
        codec.decode(np.zeros((1, 2, 16, 15), np.float32))
    with pytest.raises(ValueError, match="batch"):
        codec.decode(np.zeros((2, 16, 16), np.float32))


def test_argmax_decode_quarter_pixel_shift_by_hand():
    hm = np.zeros((1, 2, 5, 5), np.float32)
    hm[0, 0, 2, 2] = 1.0
    hm[0, 0, 2, 3] = 0.5  # right neighbour higher -> x + 0.25
    hm[0, 0, 1, 2] = 0.3  # upper neighbour higher -> y - 0.25
    hm[0, 1, 3, 0] = 1.0  # on the left border: no x shift
    hm[0, 1, 3, 1] = 0.9
    hm[0, 1, 4, 0] = 0.2  # lower neighbour higher -> y + 0.25
    coords, scores = argmax_decode(hm)
    np.testing.assert_array_equal(coords[0], [[2.25, 1.75], [0.0, 3.25]])
    np.testing.assert_array_equal(scores[0], [1.0, 1.0])


def test_config_round_trip_is_json_able():
    codec = HeatmapCodec(input_size=(96, 128), heatmap_size=(24, 32), sigma=1.5, unbiased=True,
                         decode="argmax", blur_kernel=7)
    cfg = json.loads(json.dumps(codec.to_config()))
    for rebuilt in (HeatmapCodec.from_config(cfg), build_codec(cfg)):
        assert isinstance(rebuilt, HeatmapCodec)
        assert rebuilt.to_config() == codec.to_config()
    with pytest.raises(ValueError, match="RegressionCodec"):
        HeatmapCodec.from_config({**cfg, "type": "RegressionCodec"})


@pytest.mark.parametrize("kwargs", [{"sigma": 0}, {"decode": "soft"}, {"blur_kernel": 4},
                                    {"input_size": (0, 10)}, {"input_size": (2, 2)}])
def test_invalid_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        HeatmapCodec(**kwargs)


def test_render_gaussians_is_the_2d_gaussian():
    maps = render_gaussians(np.array([[1.5, 2.0]]), (4, 5), sigma=0.8)
    ys, xs = np.mgrid[0:5, 0:4]
    expected = np.exp(-((xs - 1.5) ** 2 + (ys - 2.0) ** 2) / (2 * 0.8 ** 2))
    np.testing.assert_allclose(maps[0], expected, atol=1e-7)


@pytest.mark.parametrize("sigma", [2.0, 1.5, 3.0, 0.3, 1.0 / 3.0])
@pytest.mark.parametrize("heatmap_size", [(32, 32), (12, 16), (1, 5)])
def test_pasted_biased_targets_are_the_windowed_render_bit_for_bit(sigma, heatmap_size):
    """Every integer centre that keeps a weight, corners and edges included, gets exactly what rendering
    the cut Gaussian over the whole map gives (the way biased targets were drawn before they were pasted)."""
    w, h = heatmap_size
    codec = HeatmapCodec(input_size=(4 * w, 4 * h), heatmap_size=heatmap_size, sigma=sigma)
    reach = 3 * sigma
    xs, ys = np.meshgrid(np.arange(-int(reach) - 2, w + int(reach) + 2), np.arange(-int(reach) - 2, h + int(reach) + 2))
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    for start in range(0, len(centres), 14):
        chunk = centres[start:start + 14]
        out = codec.encode(chunk * 4, np.full(len(chunk), 2))
        keep = out["weights"] > 0
        expected = np.zeros((len(chunk), h, w), np.float32)
        if keep.any():
            expected[keep] = render_gaussians(chunk[keep], heatmap_size, sigma, window=reach)
        np.testing.assert_array_equal(out["heatmaps"], expected)
        assert not np.signbit(out["heatmaps"]).any()  # zeros are +0.0, as the render's products


def test_biased_target_of_sigma_two_by_hand_and_joints_off_the_map_stay_empty():
    codec = HeatmapCodec(input_size=(64, 64), sigma=2.0)  # 16 x 16 heatmap, window |d| <= 6
    out = codec.encode(np.array([[4.0, 60.0], [400.0, 8.0], [np.nan, np.nan]]), np.array([2, 2, 0]))
    hm = out["heatmaps"]
    assert out["weights"].tolist() == [1.0, 0.0, 0.0] and not hm[1:].any()
    cx, cy = 1, 15  # (4, 60) / 4
    assert hm[0, cy, cx] == 1.0
    assert hm[0, cy - 6, cx + 6] == pytest.approx(math.exp(-72 / 8), rel=1e-6)
    assert hm[0, cy - 7, cx].item() == 0.0 and hm[0, cy, cx + 7].item() == 0.0  # cut at 3 sigma
    assert np.count_nonzero(hm[0]) == (cx + 7) * 7  # columns 0..7, rows 9..15
