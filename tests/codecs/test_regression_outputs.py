"""RegressionCodec for the regression/RLE heads: raw (N, K, 4) RLE outputs, pixel-unit targets, configs."""
import numpy as np
import pytest
import torch

from posekit.codecs import IntegralCodec, RegressionCodec, build_codec, rle_sigma


def test_raw_rle_output_decodes_with_the_sigma_floor():
    codec = RegressionCodec(input_size=(10, 20))
    raw = np.zeros((1, 2, 4), np.float32)
    raw[0, 0, :2] = [0.1, -0.25]
    raw[0, 0, 2:] = [0.0, 0.0]            # sigma 1e-4 + (1 - 1e-4) / 2 (the floor) -> score about 0.5
    raw[0, 1, 2:] = [-1e4, np.log(3.0)]   # sigma eps and 0.75 -> score (1 - 1e-4 + 0.25) / 2
    coords, scores = codec.decode(raw)
    np.testing.assert_allclose(coords[0, 0], [(0.1 + 0.5) * 10, (-0.25 + 0.5) * 20], atol=1e-5)
    sigma = rle_sigma(torch.tensor(raw[0, 1, 2:])).numpy()
    np.testing.assert_allclose(scores, [[1 - (1e-4 + (1 - 1e-4) * 0.5), (1 - sigma).mean()]], atol=1e-6)
    assert scores[0, 1] == pytest.approx((1 - 1e-4 + 0.25) / 2, abs=1e-4)
    with pytest.raises(ValueError, match=r"\(N, K, 4\)"):
        codec.decode(np.zeros((1, 2, 3)))


def test_pixel_unit_targets_round_trip():
    codec = RegressionCodec(input_size=(64, 48), normalized=False)
    keypoints = np.array([[10.0, 5.0], [63.0, 47.0], [70.0, 5.0]])
    out = codec.encode(keypoints, np.array([2, 2, 2]))
    np.testing.assert_allclose(out["coords"], [[10.0, 5.0], [63.0, 47.0], [0.0, 0.0]])
    assert out["weights"].tolist() == [1.0, 1.0, 0.0]  # outside the crop
    coords, _ = codec.decode(out["coords"][None])
    np.testing.assert_allclose(coords[0, :2], keypoints[:2])
    np.testing.assert_allclose(codec.normalize(np.array([32.0, 24.0])), [0.0, 0.0])  # always normalised


def test_config_records_normalisation_and_old_configs_still_load():
    codec = RegressionCodec(input_size=(96, 128), normalized=False)
    assert build_codec(codec.to_config()).normalized is False
    old = {"type": "RegressionCodec", "input_size": [96, 128], "ignore_outside": True}
    assert build_codec(old).normalized is True


def test_integral_normalized_maps_sum_to_one_and_check_size():
    codec = IntegralCodec(input_size=(32, 64))
    maps = codec.normalized_maps(torch.randn(2, 3, 16, 8))
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError, match="expects 8x16"):
        codec.normalized_maps(torch.randn(2, 3, 8, 8))
