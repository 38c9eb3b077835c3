"""TopDownDataset with coordinate codecs: items carry the codec's coords + weights, flip included."""
import numpy as np
import pytest
import torch
from PIL import Image

from posekit.codecs import IntegralCodec, RegressionCodec
from posekit.data.dataset import TopDownDataset
from posekit.data.sample import Sample
from posekit.data.transforms import AugmentConfig
from posekit.skeletons import LSP


def make_sample(tmp_path):
    path = tmp_path / "person.png"
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(path)
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[LSP.index("right_ankle")] = [30, 80, 2]
    keypoints[LSP.index("left_ankle")] = [70, 80, 2]
    return Sample(str(path), np.array([20, 5, 60, 90], np.float32), keypoints, "lsp", file_name="person.png")


@pytest.mark.parametrize("codec", [RegressionCodec((64, 64)), IntegralCodec((64, 64))])
def test_coordinate_targets_follow_the_keypoints_and_the_flip(tmp_path, codec):
    sample = make_sample(tmp_path)
    aug = dict(scale=0.0, rotation=0.0, shift=0.0, color=0.0)
    plain = TopDownDataset([sample], codec, (64, 64), flip_index=LSP.flip_index, train=True,
                           augment=AugmentConfig(flip_prob=0.0, **aug))[0]
    flipped = TopDownDataset([sample], codec, (64, 64), flip_index=LSP.flip_index, train=True,
                             augment=AugmentConfig(flip_prob=1.0, **aug))[0]
    assert "heatmaps" not in plain and plain["coords"].shape == (14, 2) and plain["coords"].dtype == torch.float32
    ra, la = LSP.index("right_ankle"), LSP.index("left_ankle")
    assert plain["weights"][ra] == 1 and plain["weights"][la] == 1 and plain["weights"][LSP.index("neck")] == 0
    np.testing.assert_allclose(plain["coords"][ra].numpy(), plain["keypoints"][ra, :2].numpy() / 64 - 0.5, atol=1e-6)
    # after mirroring, the right-ankle slot holds the old left ankle at x -> 63 - x
    u_left = plain["coords"][la, 0].item()
    assert flipped["coords"][ra, 0].item() == pytest.approx((63 - (u_left + 0.5) * 64) / 64 - 0.5, abs=1e-5)
    assert flipped["coords"][ra, 1].item() == pytest.approx(plain["coords"][la, 1].item(), abs=1e-5)
