import cv2
import numpy as np
import pytest

from posekit.data.corruption_kernels import motion_kernel as _motion_kernel, plasma_fractal as _plasma_fractal
from posekit.data.corruptions import CORRUPTIONS, corrupt

# corruptions whose output depends on the seed (the rest are deterministic filters)
RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost",
          "fog", "elastic_transform")


def natural_image(h=48, w=64):
    """A smooth colour gradient with a disc, a box and a bright line: (h, w, 3) uint8."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 120 * xs / w, 80 + 100 * ys / h, 160 - 80 * xs / w], -1).astype(np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 5, (220, 60, 40), -1)
    cv2.rectangle(img, (w // 2, h // 5), (w // 2 + w // 4, h // 2), (30, 160, 70), -1)
    cv2.line(img, (2, h - 5), (w - 3, h // 3), (250, 250, 250), 2)
    return img


IMAGE = natural_image()


def mad(a, b):
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_order_is_imagenet_c():
    assert len(CORRUPTIONS) == 15 and len(set(CORRUPTIONS)) == 15
    assert CORRUPTIONS[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert CORRUPTIONS[-1] == "jpeg_compression"


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_determinism_and_effect(name, severity):
    before = IMAGE.copy()
    out = corrupt(IMAGE, name, severity, seed=3)
    assert out.shape == IMAGE.shape and out.dtype == np.uint8
    assert np.array_equal(IMAGE, before), "input must not be modified"
    assert np.array_equal(out, corrupt(IMAGE, name, severity, seed=3))
    assert mad(out, IMAGE) > 0.5


@pytest.mark.parametrize("name", RANDOM)
def test_seed_changes_random_corruptions(name):
    assert not np.array_equal(corrupt(IMAGE, name, 3, seed=0), corrupt(IMAGE, name, 3, seed=1))


@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (3, 4), (130, 41)])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_any_size(name, shape):
    img = natural_image(*shape) if min(shape) > 10 else np.full((*shape, 3), 90, np.uint8)
    for severity in (1, 5):
        out = corrupt(img, name, severity, seed=1)
        assert out.shape == img.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur",
                                  "zoom_blur", "brightness", "contrast", "elastic_transform", "jpeg_compression"])
def test_severity_increases_damage(name):
    img = natural_image(72, 96)
    damage = [mad(corrupt(img, name, s, seed=2), img) for s in range(1, 6)]
    assert all(np.diff(damage) > 0), damage


@pytest.mark.parametrize("name", ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "elastic_transform"])
def test_blurs_and_warps_keep_a_flat_image(name):
    flat = np.full((40, 50, 3), (30, 120, 200), np.uint8)
    out = corrupt(flat, name, 5, seed=0)
    assert np.abs(out.astype(int) - flat).max() <= 1


def test_brightness_hand_computed():
    # HSV value + c with hue and saturation fixed = scale RGB by V'/V; black becomes gray c.
    img = np.array([[[100, 30, 10], [250, 10, 0], [0, 0, 0], [128, 128, 128]]], np.uint8)
    out = corrupt(img, "brightness", 2, seed=0)  # c = 0.2 = 51 / 255
    expected = [[[151, 45, 15], [255, 10, 0], [51, 51, 51], [179, 179, 179]]]
    assert out.tolist() == expected
    out4 = corrupt(img, "brightness", 4, seed=0)  # c = 0.4 = 102 / 255
    assert out4[0, 3].tolist() == [230, 230, 230] and out4[0, 2].tolist() == [102, 102, 102]


def test_contrast_hand_computed():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = (0, 100, 200)
    img[:, 2:] = (100, 100, 0)  # per-channel means (50, 100, 100)
    out = corrupt(img, "contrast", 1, seed=0)  # factor 0.4 on the deviation from the mean
    assert out[0, 0].tolist() == [30, 100, 140]
    assert out[0, 3].tolist() == [70, 100, 60]


def test_gaussian_noise_std():
    gray = np.full((128, 128, 3), 128, np.uint8)
    diff = corrupt(gray, "gaussian_noise", 1, seed=0).astype(float) - gray
    assert abs(diff.std() - 0.08 * 255) < 0.05 * 0.08 * 255
    assert abs(diff.mean()) < 0.5


def test_shot_noise_poisson_std():
    gray = np.full((128, 128, 3), 128, np.uint8)
    diff = corrupt(gray, "shot_noise", 1, seed=0).astype(float) - gray
    # Poisson(x c) / c with x = 128/255, c = 60: std sqrt(x / c), in 0..255 units
    expected = np.sqrt(128 / 255 / 60) * 255
    assert abs(diff.std() - expected) < 0.05 * expected


def test_impulse_noise_fraction():
    gray = np.full((128, 128, 3), 128, np.uint8)
    out = corrupt(gray, "impulse_noise", 4, seed=0)
    changed = out != 128
    assert set(np.unique(out[changed]).tolist()) == {0, 255}
    assert abs(changed.mean() - 0.17) < 0.01
    assert abs((out == 255).mean() - (out == 0).mean()) < 0.01


def test_pixelate_is_blockwise_mean():
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    out = corrupt(img, "pixelate", 5, seed=0)  # factor 0.25: 4x4 blocks
    blocks = out.reshape(5, 4, 6, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()
    means = img.reshape(5, 4, 6, 4, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(blocks[:, 0, :, 0].astype(float) - means).max() <= 1


def test_jpeg_quality_ordering_of_file_size_effect():
    img = natural_image(64, 64)
    q25 = corrupt(img, "jpeg_compression", 1, seed=0)
    q7 = corrupt(img, "jpeg_compression", 5, seed=0)
    assert mad(q7, img) > mad(q25, img) > 0


def test_motion_kernel_along_the_motion_direction():
    k = _motion_kernel(radius=3, sigma=2.0, angle_deg=0.0)
    assert k.shape == (13, 13) and np.isclose(k.sum(), 1.0)
    centre = 6
    row = k[centre]
    assert np.count_nonzero(k) == 7 and np.count_nonzero(row[centre:]) == 7
    expected = np.exp(-np.arange(7) ** 2 / 8.0)
    assert np.allclose(row[centre:], expected / expected.sum(), atol=1e-6)
    vertical = _motion_kernel(radius=3, sigma=2.0, angle_deg=90.0)
    assert np.allclose(vertical[centre:, centre], row[centre:], atol=1e-6)


def test_plasma_fractal_range_and_determinism():
    a = _plasma_fractal(64, 2.0, np.random.default_rng(5))
    b = _plasma_fractal(64, 2.0, np.random.default_rng(5))
    assert a.shape == (64, 64) and np.array_equal(a, b)
    assert a.min() == 0.0 and np.isclose(a.max(), 1.0)
    # smaller decay keeps more fine-scale energy: rougher neighbour differences
    rough = _plasma_fractal(64, 1.2, np.random.default_rng(5))
    assert np.abs(np.diff(rough, axis=1)).mean() > np.abs(np.diff(a, axis=1)).mean()
    with pytest.raises(ValueError):
        _plasma_fractal(48, 2.0, np.random.default_rng(0))


def test_validation_messages():
    with pytest.raises(ValueError, match="gaussian_noise"):
        corrupt(IMAGE, "rain", 1)
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="severity"):
            corrupt(IMAGE, "fog", bad)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        corrupt(IMAGE[..., 0], "fog", 1)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        corrupt(IMAGE.astype(np.float32), "fog", 1)
