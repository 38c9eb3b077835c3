"""The second view's geometry: warps move a dot where the matrix says, heatmaps come back to the first view."""
import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec
from posekit.data.transforms import affine_points
from posekit.skeletons import get_skeleton
from posekit.training.warp import map_to_reference, sample_view_transforms, warp


def test_warp_moves_a_dot_where_the_matrix_says():
    rng = np.random.default_rng(3)
    matrices, flipped = sample_view_transforms(rng, 3, (32, 32), rotation=30, scale=0.2, shift=0.05, flip_prob=0.5)
    images = torch.zeros(3, 1, 32, 32)
    dot = np.array([13.0, 19.0])
    images[:, 0, 19, 13] = 1.0
    inverse = torch.from_numpy(np.stack([np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2] for m in matrices]))
    view, valid = warp(images, inverse, (32, 32))
    for i in range(3):
        expected = affine_points(dot, matrices[i])
        y, x = np.unravel_index(int(view[i, 0].argmax()), (32, 32))
        assert np.hypot(x - expected[0], y - expected[1]) <= 1.0
    assert valid.dtype == torch.bool and valid.shape == (3, 1, 32, 32)


@pytest.mark.parametrize("unbiased", [False, True])
def test_map_to_reference_undoes_the_second_view(unbiased):
    codec = HeatmapCodec(input_size=(64, 64), sigma=1.5, unbiased=unbiased)
    flip_index = get_skeleton("lsp").flip_index
    rng = np.random.default_rng(0)
    matrices, flipped = sample_view_transforms(rng, 6, (64, 64), rotation=30, scale=0.25, shift=0.05, flip_prob=0.5)
    assert flipped.any() and not flipped.all()
    keypoints = rng.uniform(20, 44, size=(6, 14, 2))
    second = []
    for i in range(6):
        moved = affine_points(keypoints[i], matrices[i])
        second.append(codec.encode(moved[flip_index] if flipped[i] else moved, np.ones(14))["heatmaps"])
    scale = (15 / 63, 15 / 63) if unbiased else (16 / 64, 16 / 64)
    back, valid = map_to_reference(torch.from_numpy(np.stack(second)), matrices, flipped, flip_index, scale)
    coords, _ = codec.decode(back.numpy())
    # input pixels (heatmap stride 4); the biased codec rounds its Gaussians' centres to whole heatmap pixels
    assert np.abs(coords - keypoints).max() < (1.0 if unbiased else 4.0)
    assert valid[:, :, 8, 8].all()  # the centre is seen by every view
    with pytest.raises(ValueError, match="permutation"):
        map_to_reference(back, matrices, flipped, [0] * 14, scale)
