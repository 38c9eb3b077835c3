import cv2
import numpy as np
import pytest
import torch

from posekit.codecs import blur_heatmaps, dark_decode, gaussian_kernel_1d


def reference_dark(heatmaps: np.ndarray, blur_kernel: int = 11):
    """DarkPose's decoding joint by joint, in float64 (plus the zero-max and non-finite-step guards)."""
    n, k, h, w = heatmaps.shape
    r = blur_kernel // 2
    coords = np.zeros((n, k, 2))
    scores = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            py, px = np.unravel_index(np.argmax(hm), hm.shape)
            peak = hm[py, px]
            coords[i, j] = px, py
            scores[i, j] = peak
            padded = np.zeros((h + 2 * r, w + 2 * r))
            padded[r:r + h, r:r + w] = hm
            blurred = cv2.GaussianBlur(padded, (blur_kernel, blur_kernel), 0)[r:r + h, r:r + w]
            scale = peak / blurred.max() if blurred.max() != 0 else 1.0
            lg = np.log(np.maximum(blurred * scale, 1e-10))
            if 1 < px < w - 2 and 1 < py < h - 2:
                dx = 0.5 * (lg[py, px + 1] - lg[py, px - 1])
                dy = 0.5 * (lg[py + 1, px] - lg[py - 1, px])
                dxx = 0.25 * (lg[py, px + 2] - 2 * lg[py, px] + lg[py, px - 2])
                dyy = 0.25 * (lg[py + 2, px] - 2 * lg[py, px] + lg[py - 2, px])
                dxy = 0.25 * (lg[py + 1, px + 1] - lg[py - 1, px + 1] - lg[py + 1, px - 1] + lg[py - 1, px - 1])
                if dxx * dyy - dxy ** 2 != 0:
                    step = -np.linalg.solve(np.array([[dxx, dxy], [dxy, dyy]]), np.array([dx, dy]))
                    if np.isfinite(step).all():
                        coords[i, j] += step
    return coords, scores


def gaussian_maps(rng, n, k, h, w, sigma=2.0, noise=0.0, margin=3):
    centers = rng.uniform([margin, margin], [w - 1 - margin, h - 1 - margin], size=(n, k, 2))
    gx = np.exp(-(np.arange(w) - centers[..., :1]) ** 2 / (2 * sigma ** 2))
    gy = np.exp(-(np.arange(h) - centers[..., 1:]) ** 2 / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :] + rng.normal(0, noise, size=(n, k, h, w))
    return maps.astype(np.float32), centers


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "noisy gaussian", "normal"])
def test_matches_per_joint_reference(kind):
    rng = np.random.default_rng(7)
    shape = (3, 5, 64, 48)
    if kind == "uniform":
        maps = rng.random(shape, dtype=np.float32)
    elif kind == "normal":  # negative values near peaks: exercises the full-blur fallback
        maps = rng.normal(size=shape).astype(np.float32)
    else:
        maps, _ = gaussian_maps(rng, *shape, noise=0.05 if kind == "noisy gaussian" else 0.0)
    expected_coords, expected_scores = reference_dark(maps)
    coords, scores = dark_decode(maps)
    assert coords.shape == (3, 5, 2) and coords.dtype == np.float32
    assert np.abs(coords - expected_coords).max() < 1e-4
    np.testing.assert_array_equal(scores, expected_scores.astype(np.float32))
    # The step really moved the points (the comparison is not between two argmaxes).
    assert np.abs(coords - np.round(coords)).max() > 0.05


def test_clean_gaussian_sub_pixel_centre_is_recovered():
    # Away from the border (where the zero padding pulls the blurred peak inwards) DARK is unbiased.
    maps, centers = gaussian_maps(np.random.default_rng(3), 4, 6, 64, 48, margin=7)
    coords, _ = dark_decode(maps)
    assert np.abs(coords - centers).max() < 0.01


def test_without_blur_a_gaussian_is_recovered_almost_exactly():
    # log of a Gaussian is a quadratic; the finite differences are exact on a quadratic.
    maps, centers = gaussian_maps(np.random.default_rng(4), 1, 4, 32, 32, sigma=1.5)
    coords, _ = dark_decode(maps.astype(np.float64), blur_kernel=1)
    assert np.abs(coords - centers).max() < 1e-4


def test_border_peak_is_not_moved():
    maps, _ = gaussian_maps(np.random.default_rng(5), 1, 4, 64, 48, noise=0.01)
    maps[0, 0, 10, 1] = 5.0    # x == 1: too close to the left border
    maps[0, 1, 62, 20] = 5.0   # y == H - 2
    maps[0, 2, 0, 0] = 5.0
    maps[0, 3, 30, 46] = 5.0   # x == W - 2
    coords, scores = dark_decode(maps)
    np.testing.assert_array_equal(coords[0], [[1, 10], [20, 62], [0, 0], [46, 30]])
    np.testing.assert_array_equal(scores[0], 5.0)


@pytest.mark.parametrize("value", [0.0, 1.0, -2.0])
def test_flat_map_gives_finite_output(value):
    maps = np.full((2, 3, 16, 12), value, np.float32)
    coords, scores = dark_decode(maps)
    assert np.isfinite(coords).all() and np.isfinite(scores).all()
    np.testing.assert_array_equal(coords, 0.0)  # first pixel wins ties; it is on the border


def test_interior_plateau_gives_finite_output():
    maps = np.zeros((1, 1, 16, 16), np.float32)
    maps[0, 0, 6:10, 6:10] = 1.0  # flat top: argmax at (6, 6), singular-ish Hessian
    coords, _ = dark_decode(maps)
    assert np.isfinite(coords).all()
    np.testing.assert_allclose(coords, reference_dark(maps)[0], atol=1e-4)


def test_torch_in_torch_out():
    maps, _ = gaussian_maps(np.random.default_rng(6), 2, 3, 32, 24)
    coords_np, scores_np = dark_decode(maps)
    coords_t, scores_t = dark_decode(torch.from_numpy(maps))
    assert isinstance(coords_t, torch.Tensor) and isinstance(scores_t, torch.Tensor)
    np.testing.assert_array_equal(coords_t.numpy(), coords_np)
    np.testing.assert_array_equal(scores_t.numpy(), scores_np)


def test_nan_heatmaps_are_rejected():
    maps = np.zeros((1, 2, 8, 8), np.float32)
    maps[0, 1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dark_decode(maps)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        dark_decode(np.zeros((1, 1, 8, 8), np.float32), blur_kernel=4)
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        dark_decode(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(TypeError):
        dark_decode([[[[0.0]]]])


def test_kernel_is_opencvs_gaussian_with_sigma_from_size():
    # cv2 derives sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8 = 2.0 for k = 11.
    x = np.arange(-5, 6)
    expected = np.exp(-x ** 2 / (2 * 2.0 ** 2))
    np.testing.assert_allclose(gaussian_kernel_1d(11), expected / expected.sum(), atol=1e-12)


def test_blur_heatmaps_is_zero_padded_gaussian_blur():
    maps = np.random.default_rng(8).random((3, 10, 7))
    blurred = blur_heatmaps(maps, 5)
    for m, b in zip(maps, blurred):
        padded = np.pad(m, 2)
        np.testing.assert_allclose(b, cv2.GaussianBlur(padded, (5, 5), 0)[2:-2, 2:-2], atol=1e-12)
