"""Whole batches at once (issue #17): ``TopDownDataset.batch`` is the collated items bit for bit, and each vectorised
piece it is made of gives what the per-item code gave, on literal values and against the plain formulas."""
import numpy as np
import pytest
import torch
from PIL import Image

from posekit.codecs import HeatmapCodec, RegressionCodec
from posekit.data.crop_cache import compose
from posekit.data.dataset import BatchedView, TopDownDataset
from posekit.data.sample import Sample
from posekit.data.transforms import (IMAGE_MEAN, IMAGE_STD, UNIFORMS, AugmentConfig, PixelScratch, _clip_to_planes,
                                     affine_points, augmentation_draws, box_to_center_scale, boxes_to_centers_sizes,
                                     crop_matrices, crop_matrix, draw_uniforms, draws_from_uniforms, float32_mean,
                                     normalize_planes, random_crop_params)
from posekit.skeletons import LSP


def six_draws(rng, cfg):
    """The draws as the dataset made them before (six Generator calls): crop parameters, then the jitter's."""
    scale = float(rng.uniform(1 - cfg.scale, 1 + cfg.scale))
    rotation = float(rng.uniform(-cfg.rotation, cfg.rotation)) if rng.random() < cfg.rotation_prob else 0.0
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2)
    flip = bool(rng.random() < cfg.flip_prob)
    factors = rng.uniform(1 - cfg.color, 1 + cfg.color, size=3) if cfg.color > 0 else np.full(3, np.nan)
    return np.array([scale, rotation, *shift, float(flip), *factors])


@pytest.mark.parametrize("cfg", [AugmentConfig(), AugmentConfig(rotation_prob=1.0, color=0.0),
                                 AugmentConfig(rotation_prob=0.0, scale=0.0, shift=0.0, flip_prob=1.0, color=0.9)])
def test_two_calls_draw_the_six_calls_values_and_leave_the_generator_where_they_did(cfg):
    for seed in range(300):
        old, new = np.random.default_rng([seed, 1, 2]), np.random.default_rng([seed, 1, 2])
        np.testing.assert_array_equal(augmentation_draws(new, cfg), six_draws(old, cfg))
        assert new.random() == old.random()  # AID draws next from the same generator
    rows = np.zeros((4, UNIFORMS))
    for row, seed in zip(rows, range(4)):
        draw_uniforms(np.random.default_rng(seed), cfg, row)
    batched = draws_from_uniforms(rows, cfg)
    np.testing.assert_array_equal(batched, [six_draws(np.random.default_rng(s), cfg) for s in range(4)])


def test_random_crop_params_is_the_geometric_part_of_the_draws():
    cfg = AugmentConfig(rotation_prob=1.0)
    p = random_crop_params(np.random.default_rng(7), cfg)
    expected = six_draws(np.random.default_rng(7), cfg)
    assert (p["scale"], p["rotation"], *p["shift"], p["flip"]) == tuple(expected[:4]) + (bool(expected[4]),)


def test_a_negative_range_is_refused_as_numpy_refuses_it():
    with pytest.raises(ValueError, match="high - low < 0"):
        augmentation_draws(np.random.default_rng(0), AugmentConfig(scale=-0.1))


def test_boxes_to_centers_sizes_known_values_and_the_single_box_form():
    centers, sizes = boxes_to_centers_sizes(np.array([[10, 20, 40, 100], [0, 0, 90, 30]]), 0.75, 1.25)
    np.testing.assert_array_equal(centers, [[30, 70], [45, 15]])
    np.testing.assert_allclose(sizes, [[75 * 1.25, 100 * 1.25], [90 * 1.25, 120 * 1.25]])
    assert centers.dtype == sizes.dtype == np.float32
    one = box_to_center_scale(np.array([0, 0, 90, 30], np.float32), 0.75, 1.25)
    np.testing.assert_array_equal(one[0], centers[1]) and np.testing.assert_array_equal(one[1], sizes[1])
    with pytest.raises(ValueError, match=r"positive size, got \[0. 0. 0. 5.\]"):
        boxes_to_centers_sizes(np.array([[1, 1, 4, 4], [0, 0, 0, 5]], float), 1.0)


def test_crop_matrices_known_values_and_each_crop_as_alone():
    matrices = crop_matrices([[50.0, 50.0], [50.0, 50.0]], [[100.0, 100.0], [100.0, 100.0]], (64, 64), [0.0, 0.0],
                             [False, True])
    np.testing.assert_allclose(matrices[0], [[0.64, 0, 31.5 - 32], [0, 0.64, 31.5 - 32]])
    np.testing.assert_allclose(matrices[1], [[-0.64, 0, 63 - (31.5 - 32)], [0, 0.64, 31.5 - 32]])
    rng = np.random.default_rng(0)
    centers, sizes = rng.uniform(0, 500, (50, 2)), rng.uniform(20, 300, (50, 2)).astype(np.float32)
    rotations, flips = rng.uniform(-30, 30, 50) * (rng.random(50) < 0.6), rng.random(50) < 0.5
    batched = crop_matrices(centers, sizes, (128, 96), rotations, flips)
    for j in range(50):
        np.testing.assert_array_equal(batched[j], crop_matrix(centers[j], sizes[j], (128, 96), rotations[j], flips[j]))


def test_points_and_compositions_of_a_batch_are_each_persons_own():
    rng = np.random.default_rng(1)
    matrices, inner = rng.normal(size=(20, 2, 3)), rng.normal(size=(20, 2, 3))
    points = rng.uniform(-50, 200, (20, 14, 2)).astype(np.float32)
    moved, composed = affine_points(points, matrices), compose(matrices, inner)
    for j in range(20):
        np.testing.assert_array_equal(moved[j], affine_points(points[j], matrices[j]))
        np.testing.assert_array_equal(composed[j], compose(matrices[j], inner[j]))
    identity = np.array([[[1.0, 0, 2], [0, 1, -1]]])
    np.testing.assert_array_equal(affine_points(np.array([[[3.0, 4.0]]]), identity), [[[5.0, 3.0]]])


@pytest.mark.parametrize("bound", [300.0, 1e6])  # the int16 pass, and int64 where int16 could overflow
def test_clip_then_truncate_by_hand(bound):
    levels = np.array([-3.7, -0.2, -0.0, 0.0, 12.9, 254.99, 255.0, 255.5, 300.5], np.float64)
    channels = np.tile(levels, (3, 1, 1))
    scratch = PixelScratch(1, len(levels))
    planes = _clip_to_planes(channels, scratch, bound)
    assert planes is scratch.planes and planes.dtype == np.uint8
    assert planes[0, 0].tolist() == [0, 0, 0, 0, 12, 254, 255, 255, 255]


def test_float32_mean_is_numpys_mean():
    for values in (np.array([0.1, 0.2, 0.3], np.float32), np.full((128, 128, 3), 0.1, np.float32),
                   np.random.default_rng(2).uniform(0, 319, (96, 64, 3)).astype(np.float32)):
        mean = float32_mean(values)
        assert mean.dtype == np.float32 and mean == values.mean()


def test_normalisation_into_a_batch_slot_is_the_formula():
    planes = np.array([[[0, 255]], [[128, 1]], [[7, 200]]], np.uint8)  # (3, 1, 2)
    batch = np.full((2, 3, 1, 2), -1.0, np.float32)
    out = normalize_planes(planes, out=batch[1])
    assert np.shares_memory(out, batch) and (batch[0] == -1).all()
    expected = (planes.transpose(1, 2, 0).astype(np.float32) - IMAGE_MEAN) / IMAGE_STD
    np.testing.assert_array_equal(batch[1], expected.transpose(2, 0, 1))


@pytest.mark.parametrize("codec", [HeatmapCodec((64, 48), sigma=2.0), HeatmapCodec((64, 48), sigma=1.5, unbiased=True),
                                   RegressionCodec((64, 48))])
def test_encode_batch_is_each_persons_encode(codec):
    rng = np.random.default_rng(4)
    keypoints = rng.uniform(-30, 90, (6, 14, 2))
    visible = (rng.random((6, 14)) < 0.7).astype(np.float32)
    keypoints[visible == 0] = np.nan  # ignored joints may hold anything
    batch = codec.encode_batch(keypoints, visible)
    for j in range(6):
        for name, value in codec.encode(keypoints[j], visible[j]).items():
            np.testing.assert_array_equal(batch[name][j], value)


# -- the dataset ----------------------------------------------------------------------------------------
def people(tmp_path, count=5):
    rng = np.random.default_rng(5)
    samples = []
    for i in range(count):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)).save(path)
        keypoints = np.concatenate([rng.uniform(10, 90, (14, 2)), rng.integers(0, 3, (14, 1))], axis=1)
        samples.append(Sample(str(path), np.array([15, 10, 60 + 5 * i, 70], np.float32), keypoints.astype(np.float32),
                              "lsp", file_name=path.name))
    return samples


def collated(dataset, indices):
    return torch.utils.data.default_collate([dataset[i] for i in indices])


def assert_same_batch(a, b):
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].stride() == b[name].stride() and torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("options", [dict(train=True, augment=AugmentConfig(rotation_prob=1.0)),
                                     dict(train=True, augment=AugmentConfig(aid_prob=1.0, color=0.0)),
                                     dict(train=True, augment=AugmentConfig(aid_prob=0.5)), dict(train=False)])
def test_a_batch_is_its_items_collated_and_an_item_is_a_batch_of_one(tmp_path, options):
    samples = people(tmp_path)
    (tmp_path / "p3.png").write_bytes(b"broken")  # one unreadable image: black, weightless, ok 0
    dataset = TopDownDataset(samples, HeatmapCodec((64, 64)), (64, 64), flip_index=LSP.flip_index, seed=2, **options)
    dataset.set_epoch(1)
    batch = dataset.batch([4, 3, 0, 4])
    assert batch["ok"].tolist() == [1, 0, 1, 1] and batch["weights"][1].sum() == 0
    assert_same_batch(batch, collated(dataset, [4, 3, 0, 4]))
    assert_same_batch(BatchedView(dataset)[[4, 3, 0, 4]], batch)
    item = dataset[2]
    assert isinstance(item["index"], int) and isinstance(item["ok"], int) and item["image"].shape == (3, 64, 64)


def test_batch_profile_adds_cpu_seconds_per_stage(tmp_path):
    dataset = TopDownDataset(people(tmp_path), HeatmapCodec((64, 64)), (64, 64), flip_index=LSP.flip_index, train=True,
                             threads=1)
    profile = {}
    dataset.batch([0, 1], profile)
    dataset.batch([2, 3], profile)
    assert list(profile) == ["random generator", "crop parameters", "keypoints", "cache read + warp",
                             "colour jitter + normalisation", "heatmap targets", "batch tensors"]
    assert all(seconds >= 0 for seconds in profile.values())


@pytest.mark.parametrize("aid_prob", [0.0, 1.0])
def test_threads_split_the_crops_without_changing_a_bit(tmp_path, aid_prob):
    samples = people(tmp_path, count=7)
    (tmp_path / "p5.png").write_bytes(b"broken")
    make = lambda threads: TopDownDataset(samples, HeatmapCodec((48, 64)), (48, 64), flip_index=LSP.flip_index,
                                          train=True, augment=AugmentConfig(aid_prob=aid_prob), seed=4, threads=threads)
    one, three = make(1), make(3)
    profile = {}
    for epoch in range(2):
        one.set_epoch(epoch), three.set_epoch(epoch)
        assert_same_batch(one.batch([6, 5, 1, 0, 2, 3, 4]), three.batch([6, 5, 1, 0, 2, 3, 4], profile))
    assert "warp + colour jitter + normalisation (3 threads)" in profile


def test_a_forked_worker_makes_the_same_batches_on_its_own_threads(tmp_path):
    """The trainer's loader: BatchedView + BatchSampler, batch_size None. A worker forked after the parent used its
    thread pool gets a pool of its own (the parent's threads do not survive the fork)."""
    samples = people(tmp_path, count=6)
    dataset = TopDownDataset(samples, HeatmapCodec((64, 64)), (64, 64), flip_index=LSP.flip_index, train=True, seed=1,
                             threads=2)
    expected = [dataset.batch(chunk) for chunk in ([3, 1, 4], [0, 5, 2])]  # the parent's pool is in use now
    sampler = torch.utils.data.BatchSampler([3, 1, 4, 0, 5, 2], 3, drop_last=True)
    loader = torch.utils.data.DataLoader(BatchedView(dataset), batch_size=None, sampler=sampler, num_workers=1,
                                         multiprocessing_context="fork")
    for batch, want in zip(loader, expected, strict=True):
        assert_same_batch(batch, want)
