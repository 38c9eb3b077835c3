import math

import numpy as np
import pytest

from posekit.data.augment import (
    ADVMIX_OPS,
    PHOTOMETRIC_OPS,
    grid_drop_mask,
    grid_mask,
    information_dropping,
    photometric_policy,
)


def random_image(h=64, w=48, seed=0):
    return np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8)


# ---- GridMask ------------------------------------------------------------------------------------

def test_grid_drop_mask_unrotated_is_exact():
    mask = grid_drop_mask(6, 8, period=4, keep_width=1, offset=(1, 2))
    # pixel (x, y) dropped iff (x - 1) % 4 >= 1 and (y - 2) % 4 >= 1
    expected = np.array([[((x - 1) % 4 >= 1) and ((y - 2) % 4 >= 1) for x in range(8)] for y in range(6)])
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize("ratio, keep_width", [(0.5, 15), (0.3, 9), (0.8, 24)])
def test_grid_mask_dropped_fraction_whole_periods(ratio, keep_width):
    # 120 px, d = 0.25 * 120 = 30: whole periods, so the fraction is exactly ((d - l) / d)^2
    img = random_image(120, 120)
    out = grid_mask(img, np.random.default_rng(1), d_range=(0.25, 0.25), ratio=ratio, rotate=False, fill=0)
    dropped = (out == 0).all(axis=2)
    assert dropped.mean() == pytest.approx(((30 - keep_width) / 30) ** 2)
    assert np.array_equal(out[~dropped], img[~dropped])


def test_grid_mask_rotated_fraction_close():
    img = random_image(200, 200)
    out = grid_mask(img, np.random.default_rng(4), d_range=(0.1, 0.1), ratio=0.5, rotate=True, fill=0)
    assert (out == 0).all(axis=2).mean() == pytest.approx(0.25, abs=0.03)


def test_grid_mask_deterministic_fill_and_no_mutation():
    img = random_image()
    before = img.copy()
    a = grid_mask(img, np.random.default_rng(7), fill=(10, 20, 30))
    b = grid_mask(img, np.random.default_rng(7), fill=(10, 20, 30))
    assert np.array_equal(a, b) and np.array_equal(img, before)
    assert a.shape == img.shape and a.dtype == np.uint8
    changed = (a != img).any(axis=2)
    assert changed.any() and (a[changed] == (10, 20, 30)).all()


def test_grid_mask_validation():
    with pytest.raises(ValueError, match="ratio"):
        grid_mask(random_image(), np.random.default_rng(0), ratio=1.0)
    with pytest.raises(ValueError, match="d_range"):
        grid_mask(random_image(), np.random.default_rng(0), d_range=(0.5, 0.2))


# ---- AID -----------------------------------------------------------------------------------------

KEYPOINTS = np.array([[10.0, 12.0, 2.0], [40.0, 50.0, 1.0], [30.0, 30.0, 0.0]])


@pytest.mark.parametrize("seed", range(8))
def test_information_dropping_only_near_chosen_labelled_joints(seed):
    img = random_image(80, 60, seed)
    scale, r_max, offset_frac = 60.0, 0.2, 0.05
    out = information_dropping(img, KEYPOINTS, np.random.default_rng(seed), prob=1.0, num_joints=(1, 2),
                               patch_frac=(0.1, r_max), offset_frac=offset_frac, scale=scale, fill=0)
    changed = (out != img).any(axis=2)
    assert changed.any()
    reach = r_max * scale + 2 * math.sqrt(2) * offset_frac * scale + 1
    ys, xs = np.nonzero(changed)
    labelled = KEYPOINTS[KEYPOINTS[:, 2] > 0, :2]
    dist = np.hypot(xs[:, None] - labelled[:, 0], ys[:, None] - labelled[:, 1]).min(axis=1)
    assert dist.max() <= reach
    assert (out[changed] == 0).all()


def test_information_dropping_patch_is_a_disc_of_expected_area():
    img = np.full((200, 200, 3), 100, np.uint8)
    kps = np.array([[100.0, 100.0, 2.0]])
    out = information_dropping(img, kps, np.random.default_rng(0), prob=1.0, num_joints=(1, 1),
                               patch_frac=(0.2, 0.2), offset_frac=0.0, scale=100.0, fill=0)
    dropped = (out == 0).all(axis=2)
    assert dropped.sum() == pytest.approx(math.pi * 20 ** 2, rel=0.03)
    ys, xs = np.nonzero(dropped)
    assert xs.mean() == pytest.approx(100, abs=0.5) and ys.mean() == pytest.approx(100, abs=0.5)


def test_information_dropping_leaves_unlabelled_images_alone():
    img = random_image()
    unlabelled = KEYPOINTS.copy()
    unlabelled[:, 2] = 0
    for seed in range(5):
        assert np.array_equal(information_dropping(img, unlabelled, np.random.default_rng(seed), prob=1.0), img)
    assert np.array_equal(information_dropping(img, np.zeros((0, 3)), np.random.default_rng(0), prob=1.0), img)


def test_information_dropping_prob_zero_and_fills():
    img = random_image()
    assert np.array_equal(information_dropping(img, KEYPOINTS, np.random.default_rng(0), prob=0.0), img)
    mean = information_dropping(img, KEYPOINTS, np.random.default_rng(1), prob=1.0, fill="mean")
    changed = (mean != img).any(axis=2)
    assert (mean[changed] == np.rint(img.reshape(-1, 3).mean(0))).all()
    noise_a = information_dropping(img, KEYPOINTS, np.random.default_rng(2), prob=1.0, fill="noise")
    noise_b = information_dropping(img, KEYPOINTS, np.random.default_rng(2), prob=1.0, fill="noise")
    assert np.array_equal(noise_a, noise_b) and not np.array_equal(noise_a, img)


def test_information_dropping_validation():
    with pytest.raises(ValueError, match="keypoints"):
        information_dropping(random_image(), np.zeros((3, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="fill"):
        information_dropping(random_image(), KEYPOINTS, np.random.default_rng(0), fill="blur")


# ---- photometric policy --------------------------------------------------------------------------

def one_op(img, op, magnitude, seed=0):
    return photometric_policy(img, np.random.default_rng(seed), num_ops=1, magnitude=magnitude, ops=(op,))


def test_policy_shape_dtype_determinism():
    img = random_image()
    before = img.copy()
    for seed in range(5):
        a = photometric_policy(img, np.random.default_rng(seed))
        b = photometric_policy(img, np.random.default_rng(seed))
        assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.array_equal(img, before)
    assert np.array_equal(photometric_policy(img, np.random.default_rng(0), num_ops=0), img)
    assert set(ADVMIX_OPS) <= set(PHOTOMETRIC_OPS)
    assert not {"contrast", "brightness", "gaussian_blur"} & set(ADVMIX_OPS)


@pytest.mark.parametrize("op", PHOTOMETRIC_OPS)
def test_every_op_runs(op):
    img = random_image(33, 47)
    out = one_op(img, op, 0.7)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_ops_hand_computed():
    img = np.array([[[0, 100, 200], [37, 128, 255]]], np.uint8)
    assert one_op(img, "invert", 0.3).tolist() == [[[255, 155, 55], [218, 127, 0]]]
    # solarize at m = 0.5: values >= 128 inverted
    assert one_op(img, "solarize", 0.5).tolist() == [[[0, 100, 55], [37, 127, 0]]]
    # posterize at m = 1: keep 4 bits
    assert one_op(img, "posterize", 1.0).tolist() == [[[0, 96, 192], [32, 128, 240]]]
    assert np.array_equal(one_op(img, "posterize", 0.0), img)
    assert np.array_equal(one_op(img, "solarize", 0.0), img)


def test_autocontrast_stretches_each_channel():
    img = np.array([[[50, 10, 7], [100, 20, 7], [150, 30, 7]]], np.uint8)
    out = one_op(img, "autocontrast", 0.0)
    assert out[..., 0].tolist() == [[0, 128, 255]] and out[..., 1].tolist() == [[0, 128, 255]]
    assert out[..., 2].tolist() == [[7, 7, 7]]  # a flat channel stays


def test_graded_ops_at_zero_magnitude_are_identity():
    img = random_image()
    for op in ("color", "contrast", "brightness", "sharpness", "hue"):
        assert np.abs(one_op(img, op, 0.0).astype(int) - img).max() <= 1, op


def test_color_on_gray_image_is_identity():
    gray = np.full((8, 8, 3), 77, np.uint8)
    assert np.array_equal(one_op(gray, "color", 1.0), gray)


def test_policy_validation():
    with pytest.raises(ValueError, match="magnitude"):
        photometric_policy(random_image(), np.random.default_rng(0), magnitude=2.0)
    with pytest.raises(ValueError, match="ops"):
        photometric_policy(random_image(), np.random.default_rng(0), ops=("rotate",))


# ---- GridMask: more properties -------------------------------------------------------------------

def test_grid_mask_only_drops_never_moves_pixels():
    """Kept pixels are exactly the input's (keypoints stay valid); dropped pixels take the fill."""
    img = random_image(96, 80, seed=3)
    for seed in range(5):
        out = grid_mask(img, np.random.default_rng(seed), fill=(1, 2, 3))
        changed = (out != img).any(axis=2)
        assert (out[changed] == (1, 2, 3)).all()
        assert np.array_equal(out[~changed], img[~changed])
        assert 0.05 < changed.mean() < 0.5  # about (1 - r)^2 = 25 %, never all or nothing


def test_grid_mask_tiny_images_and_bad_input():
    out = grid_mask(random_image(3, 3), np.random.default_rng(0))  # the period falls back to 2 px
    assert out.shape == (3, 3, 3)
    with pytest.raises(ValueError, match="uint8"):
        grid_mask(random_image().astype(np.float32), np.random.default_rng(0))


# ---- AID in the training pipeline ----------------------------------------------------------------

def _aid_dataset(tmp_path, aid_prob):
    from PIL import Image

    from posekit.codecs import HeatmapCodec
    from posekit.data.dataset import TopDownDataset
    from posekit.data.sample import Sample
    from posekit.data.transforms import AugmentConfig
    from posekit.skeletons import LSP

    path = tmp_path / "person.png"
    if not path.exists():
        Image.fromarray(random_image(100, 100, seed=5)).save(path)
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[:, 0] = np.linspace(30, 70, 14)
    keypoints[:, 1] = np.linspace(15, 85, 14)
    keypoints[:, 2] = 2
    samples = [Sample(str(path), np.array([20, 5, 60, 90], np.float32), keypoints, "lsp", file_name="person.png")] * 40
    augment = AugmentConfig(scale=0.0, rotation=0.0, shift=0.0, color=0.0, flip_prob=0.0, aid_prob=aid_prob)
    return TopDownDataset(samples, HeatmapCodec(input_size=(64, 64), sigma=2.0), (64, 64), flip_index=LSP.flip_index,
                          train=True, augment=augment, seed=3)


def _erased_items(tmp_path, aid_prob):
    plain, aid = _aid_dataset(tmp_path, 0.0), _aid_dataset(tmp_path, aid_prob)
    erased = []
    for i in range(len(plain)):
        a, b = plain[i], aid[i]
        assert np.array_equal(a["heatmaps"], b["heatmaps"])  # AID never changes the labels
        erased.append(not np.array_equal(a["image"], b["image"]))
    return np.array(erased)


def test_training_pipeline_applies_aid_when_aid_prob_is_positive(tmp_path):
    erased = _erased_items(tmp_path, 1.0)
    assert erased.any()
    assert not _erased_items(tmp_path, 0.0).any()


def test_aid_prob_one_erases_every_crop(tmp_path):
    assert _erased_items(tmp_path, 1.0).all()
