import numpy as np
import pytest

from posekit.data.transforms import (PixelScratch, affine_points, box_to_center_scale, color_jitter, crop_matrix,
                                     invert_affine, jittered_planes, warp_image)


def test_box_grows_to_aspect_ratio_then_padding():
    center, size = box_to_center_scale(np.array([10, 20, 40, 100]), aspect_ratio=0.75, padding=1.25)
    assert center.tolist() == [30, 70]
    assert size.tolist() == pytest.approx([75 * 1.25, 100 * 1.25])  # width grown to 0.75 * height


@pytest.mark.parametrize("box", [[0, 0, 0, 10], [0, 0, 10, -1], [np.nan, 0, 5, 5]])
def test_degenerate_boxes_are_refused(box):
    with pytest.raises(ValueError, match="positive size"):
        box_to_center_scale(np.array(box, dtype=float), 1.0)


def test_crop_matrix_known_points():
    m = crop_matrix(np.array([50.0, 50.0]), np.array([100.0, 100.0]), (64, 64))
    # pixel centres at integers: the region [0, 100] fills [-0.5, 63.5]
    assert affine_points(np.array([[50.0, 50.0], [0.0, 0.0], [100.0, 100.0]]), m) == pytest.approx(
        np.array([[31.5, 31.5], [-0.5, -0.5], [63.5, 63.5]]))
    flipped = crop_matrix(np.array([50.0, 50.0]), np.array([100.0, 100.0]), (64, 64), flip=True)
    assert affine_points(np.array([[25.0, 50.0]]), flipped) == pytest.approx(np.array([[63 - 15.5, 31.5]]))


def test_rotation_and_inverse_round_trip():
    m = crop_matrix(np.array([40.0, 30.0]), np.array([80.0, 60.0]), (64, 48), rotation=90)
    # the point right of the centre moves to straight above the crop centre
    assert affine_points(np.array([[50.0, 30.0]]), m) == pytest.approx(np.array([[31.5, 23.5 - 8.0]]), abs=1e-5)
    pts = np.random.default_rng(0).uniform(0, 80, size=(10, 2))
    back = affine_points(affine_points(pts, m), invert_affine(m))
    assert back == pytest.approx(pts, abs=1e-4)


def test_warp_moves_a_dot_where_the_matrix_says():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40, 70] = 255
    m = crop_matrix(np.array([50.0, 50.0]), np.array([50.0, 50.0]), (50, 50), flip=True)
    crop = warp_image(image, m, (50, 50))
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert (x, y) == tuple(np.round(affine_points(np.array([[70.0, 40.0]]), m)[0]).astype(int))


def test_color_jitter_is_seeded_and_keeps_dtype():
    image = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    a = color_jitter(image, np.random.default_rng(5), 0.3)
    b = color_jitter(image, np.random.default_rng(5), 0.3)
    assert a.dtype == np.uint8 and (a == b).all() and not (a == image).all()
    assert (color_jitter(image, np.random.default_rng(5), 0.0) == image).all()


def plain_jitter(image, factors):
    """The jitter's plain expression with its (brightness, contrast, saturation) factors given."""
    brightness, contrast, saturation = factors
    img = image.astype(np.float32)
    img *= brightness
    mean = img.mean()
    img = (img - mean) * contrast + mean
    gray = img.mean(axis=2, keepdims=True)
    img = (img - gray) * saturation + gray
    return np.clip(img, 0, 255).astype(np.uint8)


def reference_color_jitter(image, rng, amount):
    """The plain expression color_jitter must reproduce bit for bit (its original form, factors drawn)."""
    return plain_jitter(image, rng.uniform(1 - amount, 1 + amount, size=3))


@pytest.mark.parametrize("shape", [(64, 64, 3), (128, 96, 3), (7, 5, 3)])
def test_fast_color_jitter_and_normalisation_give_the_same_bits_as_the_plain_formulas(shape):
    from posekit.data.transforms import IMAGE_MEAN, IMAGE_STD, normalize_image
    source = np.random.default_rng(shape[0])
    for trial in range(20):
        image = source.integers(0, 256, shape, dtype=np.uint8)
        amount = (0.1, 0.25, 0.9)[trial % 3]
        expected = reference_color_jitter(image, np.random.default_rng(trial), amount)
        np.testing.assert_array_equal(color_jitter(image, np.random.default_rng(trial), amount), expected)
        plain = ((image.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1)
        np.testing.assert_array_equal(normalize_image(image), plain)
    as_float = image.astype(np.float32)
    np.testing.assert_array_equal(normalize_image(as_float), plain)


@pytest.mark.parametrize("shape", [(128, 128, 3), (1, 1, 3), (1, 9, 3), (9, 1, 3), (33, 200, 3)])
def test_jittered_planes_and_their_normalisation_are_the_plain_formulas_channel_by_channel(shape):
    from posekit.data.transforms import IMAGE_MEAN, IMAGE_STD, color_jitter_planes, normalize_planes
    source = np.random.default_rng(sum(shape))
    for trial in range(12):
        image = source.integers(0, 256, shape, dtype=np.uint8)
        if trial % 4 == 0:  # few levels, flat regions: the case where a rounding slip would show
            image = (image // 64 * 64).astype(np.uint8)
        amount = (0.25, 0.6, 0.05)[trial % 3]
        planes = color_jitter_planes(image, np.random.default_rng(trial), amount)
        expected = reference_color_jitter(image, np.random.default_rng(trial), amount)
        assert len(planes) == 3 and all(p.dtype == np.uint8 and p.shape == shape[:2] for p in planes)
        np.testing.assert_array_equal(np.stack(planes, axis=-1), expected)
        plain = ((expected.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1)
        np.testing.assert_array_equal(normalize_planes(planes), plain)


def test_jitter_and_normalisation_accept_a_strided_view_and_leave_it_alone():
    from posekit.data.transforms import color_jitter_planes, normalize_image
    image = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view, before = image[::2, 5:45], image.copy()
    np.testing.assert_array_equal(np.stack(color_jitter_planes(view, np.random.default_rng(1), 0.3), axis=-1),
                                  reference_color_jitter(view, np.random.default_rng(1), 0.3))
    np.testing.assert_array_equal(normalize_image(view), normalize_image(view.copy()))
    np.testing.assert_array_equal(image, before)
    rng = np.random.default_rng(4)
    unjittered = color_jitter_planes(image, rng, 0.0)  # no jitter: the planes as they are, nothing drawn
    np.testing.assert_array_equal(np.stack(unjittered, axis=-1), image)
    assert rng.random() == np.random.default_rng(4).random()


def test_jitter_with_one_scratch_for_many_crops_is_the_plain_expression_each_time():
    rng = np.random.default_rng(3)
    scratch = PixelScratch(40, 30)
    for trial in range(12):
        image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
        amount = (0.25, 0.9, 3.0)[trial % 3]  # 3.0: factors up to 4, through the int64 pass
        factors = rng.uniform(1 - amount, 1 + amount, size=3)
        planes = jittered_planes(image, factors, scratch)
        np.testing.assert_array_equal(planes.transpose(1, 2, 0), plain_jitter(image, factors))
    with pytest.raises(ValueError, match="scratch"):
        jittered_planes(image, factors, PixelScratch(30, 40))
