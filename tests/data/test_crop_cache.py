"""The crop cache: cached items have the uncached keypoints, targets and matrices and nearly the same pixels;
the cached square holds every crop the augmentation can draw; the key follows the data and the crop settings;
unreadable images stay one black, weightless item; the cache is a memory map that DataLoader workers reopen."""
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec
from posekit.data import crop_cache as crop_cache_module
from posekit.data.crop_cache import (CropCache, CropSettings, cache_key, cache_region, cache_to_image_matrix,
                                     open_crop_cache, training_crop_cache)
from posekit.data.dataset import TopDownDataset
from posekit.data.formats import load_samples
from posekit.data.synth import generate_dataset
from posekit.data.transforms import AugmentConfig, affine_points, box_to_center_scale, crop_matrix
from posekit.skeletons import LSP

#: every geometric augmentation at its default extent, rotations always drawn
AUGMENT = AugmentConfig(rotation_prob=1.0)
#: cached and uncached crops differ by less than this on average (uint8 levels; measured values in the test)
MAX_MEAN_ABS_DIFF = 2.5  # uint8 levels


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Synthetic people, two to an image, in 20 images of 320x240 px (so a 64-px crop's cache is shrunk): COCO
    json path."""
    root = tmp_path_factory.mktemp("cache_people")
    return generate_dataset(root, 20, style="textured", skeleton="lsp", seed=4, size=(320, 240), people_per_image=2)


def datasets(samples, tmp_path, input_size=(64, 64), augment=AUGMENT, seed=5):
    """(uncached, cached) training datasets of ``samples`` that differ only in the image source."""
    codec = HeatmapCodec(input_size=input_size, sigma=2.0)
    cache = training_crop_cache(samples, input_size, 1.25, augment, tmp_path / "cache")
    make = lambda c: TopDownDataset(samples, codec, input_size, flip_index=LSP.flip_index, train=True,
                                    augment=augment, seed=seed, crop_cache=c)
    return make(None), make(cache)


def pixel_levels(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised image -> (H, W, 3) values in uint8 levels."""
    std = np.array([0.229, 0.224, 0.225]) * 255
    mean = np.array([0.485, 0.456, 0.406]) * 255
    return image.numpy().transpose(1, 2, 0) * std + mean


@pytest.mark.parametrize("input_size", [(64, 64), (48, 64), (160, 160)])
def test_cached_items_have_the_same_targets_and_nearly_the_same_pixels(people, tmp_path, input_size):
    samples = load_samples(f"coco:{people}")
    plain, cached = datasets(samples, tmp_path, input_size)
    differences = []
    for epoch in (0, 3):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(samples)):
            a, b = plain[i], cached[i]
            for key in ("keypoints", "heatmaps", "weights", "matrix", "index", "ok"):
                assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), (key, i)
            differences.append(np.abs(pixel_levels(a["image"]) - pixel_levels(b["image"])).mean())
    # Measured mean absolute differences, in uint8 levels: 1.44 (64x64) and 1.72 (48x64), where the cache shrinks
    # these 80-170 px people 1.5-3x with area interpolation and the direct bilinear warp aliases; 4e-5 at
    # 160x160, where the cache keeps the image's resolution (only float rounding of the composed matrix differs).
    # LSPET train at 128x128 (benchmarks/train_speed.py's data): 0.13.
    assert np.mean(differences) < MAX_MEAN_ABS_DIFF
    assert input_size != (160, 160) or np.mean(differences) < 0.01


def test_the_cached_square_holds_every_crop_the_augmentation_can_draw():
    settings = CropSettings.for_training((48, 64), 1.25, AUGMENT)
    rng = np.random.default_rng(0)
    box = np.array([40.0, 30.0, 50.0, 120.0])
    origin, side, stored = cache_region(box, settings)
    to_image = cache_to_image_matrix(origin, side, stored)
    # the cache's pixel grid, in image pixels: its first and last pixel centres
    lo, hi = affine_points(np.array([[0.0, 0.0], [stored - 1.0, stored - 1.0]]), to_image)
    center, size = box_to_center_scale(box, 48 / 64, 1.25)
    corners = np.array([[0, 0], [47, 0], [0, 63], [47, 63]], np.float64)
    extremes = [(s, r, np.array(sh)) for s in (0.7, 1.3) for r in (-30.0, 30.0, 0.0)
                for sh in ((0.1, 0.1), (-0.1, 0.1), (0.1, -0.1), (-0.1, -0.1))]
    draws = extremes + [(rng.uniform(0.7, 1.3), rng.uniform(-30, 30), rng.uniform(-0.1, 0.1, 2)) for _ in range(500)]
    for scale, rotation, shift in draws:
        matrix = crop_matrix(center + shift * size, size * scale, (48, 64), rotation)
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        in_image = affine_points(corners, inverse)
        # every crop corner, with a one-pixel bilinear footprint, lies inside the cached grid
        assert (in_image >= lo + 1).all() and (in_image <= hi - 1).all(), (scale, rotation, shift)


def test_the_key_follows_the_data_and_the_crop_settings(people, tmp_path):
    samples = load_samples(f"coco:{people}")
    settings = CropSettings.for_training((64, 64), 1.25, AUGMENT)
    key = cache_key(samples, settings)
    assert cache_key(load_samples(f"coco:{people}"), settings) == key
    changed_settings = [CropSettings.for_training((96, 96), 1.25, AUGMENT),
                        CropSettings.for_training((64, 64), 1.5, AUGMENT),
                        CropSettings.for_training((64, 64), 1.25, AugmentConfig(scale=0.4, rotation_prob=1.0)),
                        CropSettings.for_training((64, 64), 1.25, AugmentConfig(shift=0.2, rotation_prob=1.0)),
                        CropSettings.for_training((64, 64), 1.25, AugmentConfig(rotation=40, rotation_prob=1.0))]
    assert len({key, *(cache_key(samples, s) for s in changed_settings)}) == 6
    # settings that do not change the cached pixels (colour, flips) keep the key
    assert cache_key(samples, CropSettings.for_training((64, 64), 1.25, AugmentConfig(
        rotation_prob=1.0, color=0.5, flip_prob=0.0))) == key
    moved = [s for s in samples]
    moved[0] = type(samples[0])(**{**samples[0].__dict__, "box": samples[0].box + [1, 0, 0, 0]})
    assert cache_key(moved, settings) != key

    copy = tmp_path / "copy"
    shutil.copytree(people.parent, copy)
    copied = load_samples(f"coco:{copy / 'annotations.json'}")
    first = open_crop_cache(copied, settings, tmp_path / "c")
    image = copied[0].image_path
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10**9))  # the image changed
    second = open_crop_cache(copied, settings, tmp_path / "c")
    assert first.directory != second.directory  # a new cache, built on first use
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted([first.directory.name, second.directory.name])


def test_each_image_is_decoded_once_and_the_cache_only_on_first_use(people, tmp_path, monkeypatch):
    samples = load_samples(f"coco:{people}")
    reads = []
    real = crop_cache_module.read_image
    monkeypatch.setattr(crop_cache_module, "read_image", lambda path: reads.append(path) or real(path))
    settings = CropSettings.for_training((64, 64), 1.25, AUGMENT)
    cache = open_crop_cache(samples, settings, tmp_path)
    assert sorted(reads) == sorted({s.image_path for s in samples}) and len(reads) < len(samples)
    again = open_crop_cache(samples, settings, tmp_path)
    assert again.directory == cache.directory and len(reads) == len({s.image_path for s in samples})
    assert [p.name for p in tmp_path.iterdir()] == [cache.directory.name]  # no temporary folder left


def test_an_unreadable_image_is_one_black_weightless_item_named_in_the_error(people, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(people.parent, root)
    samples = load_samples(f"coco:{root / 'annotations.json'}")
    broken = samples[3].image_path
    with open(broken, "wb") as f:
        f.write(b"not an image")
    plain, cached = datasets(samples, tmp_path)
    bad = [i for i, s in enumerate(samples) if s.image_path == broken]
    assert set(cached.crop_cache.unreadable) == set(bad)
    with pytest.raises(ValueError, match=broken.replace(".", r"\.")):
        cached.crop_cache.crop(bad[0])
    for i in bad:
        a, b = plain[i], cached[i]
        assert a["ok"] == b["ok"] == 0 and b["weights"].sum() == 0 and torch.equal(a["image"], b["image"])
    assert cached[bad[-1] + 1]["ok"] == 1


def test_the_cache_is_a_memory_map_that_workers_reopen(people, tmp_path):
    samples = load_samples(f"coco:{people}")
    plain, cached = datasets(samples, tmp_path)
    cache = cached.crop_cache
    assert isinstance(cache.crop(0), np.memmap) and not cache.crop(0).flags.writeable
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._crops is None and np.array_equal(clone.crop(2), cache.crop(2))
    loader = torch.utils.data.DataLoader(cached, batch_size=5, num_workers=1, multiprocessing_context="fork")
    batch = next(iter(loader))
    torch.testing.assert_close(batch["image"], torch.stack([cached[i]["image"] for i in range(5)]), atol=0, rtol=0)


def test_a_cache_must_cover_the_dataset_it_serves(people, tmp_path):
    samples = load_samples(f"coco:{people}")
    cache = training_crop_cache(samples, (64, 64), 1.25, AugmentConfig(), tmp_path)
    assert isinstance(cache, CropCache)
    codec = HeatmapCodec(input_size=(64, 64), sigma=2.0)
    with pytest.raises(ValueError, match="does not cover"):
        TopDownDataset(samples, codec, (64, 64), flip_index=LSP.flip_index, train=True,
                       augment=AugmentConfig(scale=0.5), crop_cache=cache)
    with pytest.raises(ValueError, match="does not cover"):
        TopDownDataset(samples[:-1], codec, (64, 64), flip_index=LSP.flip_index, crop_cache=cache)
    # evaluation crops (no augmentation) are inside any training cache
    TopDownDataset(samples, codec, (64, 64), flip_index=LSP.flip_index, crop_cache=cache)


def test_cached_crops_are_rgba_whose_rgb_is_the_three_channel_region_and_warp():
    """Cache version 2 stores a fourth byte for OpenCV's faster 4-channel warp: the RGB bytes of the region and of
    every warp are those of the 3-channel ones."""
    import cv2
    from posekit.data.crop_cache import CHANNELS, cut_region
    from posekit.data.transforms import warp_image
    image = np.random.default_rng(6).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    region = cut_region(image, np.array([-10, 5]), 80, 53)  # partly outside the image, shrunk
    assert region.shape == (53, 53, CHANNELS) == (53, 53, 4) and not region[..., 3].any()
    plain = np.zeros((80, 80, 3), np.uint8)
    plain[:, 10:] = image[5:85, :70]
    np.testing.assert_array_equal(region[..., :3], cv2.resize(plain, (53, 53), interpolation=cv2.INTER_AREA))
    matrix = crop_matrix(np.array([26.0, 27.0]), np.array([40.0, 40.0]), (32, 24), rotation=17.0, flip=True)
    rgb = region[..., :3].copy()
    np.testing.assert_array_equal(warp_image(region, matrix, (32, 24)), warp_image(rgb, matrix, (32, 24)))
    with pytest.raises(ValueError, match="rgba must be a contiguous"):
        warp_image(region, matrix, (32, 24), rgba=np.empty((24, 32, 3), np.uint8))
