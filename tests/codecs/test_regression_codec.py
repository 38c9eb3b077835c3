import json

import numpy as np
import pytest
import torch

from posekit.codecs import RegressionCodec, build_codec


def test_encode_by_hand():
    codec = RegressionCodec(input_size=(192, 256))
    out = codec.encode(np.array([[96.0, 64.0], [0.0, 0.0], [191.0, 255.0]]), np.array([2, 1, 2]))
    np.testing.assert_allclose(out["coords"], [[0.0, -0.25], [-0.5, -0.5], [191 / 192 - 0.5, 255 / 256 - 0.5]])
    assert out["coords"].dtype == np.float32 and out["weights"].dtype == np.float32
    assert out["weights"].tolist() == [1.0, 1.0, 1.0]


def test_round_trip():
    codec = RegressionCodec(input_size=(192, 256))
    keypoints = np.random.default_rng(0).uniform([0, 0], [191, 255], size=(17, 2))
    target = codec.encode(keypoints, np.full(17, 2))
    coords, scores = codec.decode(target["coords"][None])
    np.testing.assert_allclose(coords[0], keypoints, atol=1e-4)
    np.testing.assert_array_equal(scores, 1.0)


def test_invisible_and_outside_joints_are_ignored():
    codec = RegressionCodec(input_size=(100, 100))
    keypoints = np.array([[10.0, 10.0], [np.nan, np.nan], [-1.0, 50.0], [50.0, 99.5]])
    out = codec.encode(keypoints, np.array([2, 0, 2, 2]))
    assert out["weights"].tolist() == [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(out["coords"][1], [0.0, 0.0])
    kept = RegressionCodec(input_size=(100, 100), ignore_outside=False).encode(keypoints, np.array([2, 0, 2, 2]))
    assert kept["weights"].tolist() == [1.0, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(kept["coords"][2], [-0.51, 0.0])


def test_decode_scores_from_sigma():
    codec = RegressionCodec(input_size=(10, 10))
    coords = torch.zeros(1, 2, 2)
    sigma = torch.tensor([[[0.1, 0.3], [0.5, 0.5]]])
    xy, scores = codec.decode(coords, sigma=sigma)
    np.testing.assert_allclose(xy, 5.0)
    np.testing.assert_allclose(scores, [[0.8, 0.5]], atol=1e-7)
    assert isinstance(xy, np.ndarray) and isinstance(scores, np.ndarray)


def test_normalize_works_on_tensors_and_arrays():
    codec = RegressionCodec(input_size=(200, 100))
    xy = np.array([[50.0, 75.0]])
    np.testing.assert_allclose(codec.normalize(xy), [[-0.25, 0.25]])
    torch.testing.assert_close(codec.denormalize(codec.normalize(torch.tensor(xy))), torch.tensor(xy))


def test_shape_errors():
    codec = RegressionCodec()
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        codec.decode(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="sigma"):
        codec.decode(np.zeros((1, 3, 2)), sigma=np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        codec.encode(np.zeros((3,)), np.zeros(3))


def test_config_round_trip():
    codec = RegressionCodec(input_size=(96, 128), ignore_outside=False)
    cfg = json.loads(json.dumps(codec.to_config()))
    rebuilt = build_codec(cfg)
    assert isinstance(rebuilt, RegressionCodec) and rebuilt.to_config() == codec.to_config()
