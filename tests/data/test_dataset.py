import numpy as np
import pytest
from PIL import Image

from posekit.codecs import HeatmapCodec
from posekit.data.dataset import TopDownDataset
from posekit.data.sample import Sample
from posekit.data.transforms import AugmentConfig
from posekit.skeletons import LSP


def make_sample(tmp_path, name="person.png", write=True):
    path = tmp_path / name
    if write:
        Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(path)
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[LSP.index("right_ankle")] = [30, 80, 2]   # the right ankle on the image's left
    keypoints[LSP.index("left_ankle")] = [70, 80, 2]
    keypoints[LSP.index("head_top")] = [50, 10, 1]
    return Sample(str(path), np.array([20, 5, 60, 90], np.float32), keypoints, "lsp", file_name=name)


def dataset(samples, **aug):
    codec = HeatmapCodec(input_size=(64, 64), sigma=2.0)
    only_flip = dict(scale=0.0, rotation=0.0, shift=0.0, color=0.0, flip_prob=0.0) | aug
    return TopDownDataset(samples, codec, (64, 64), flip_index=LSP.flip_index, train=True,
                          augment=AugmentConfig(**only_flip), seed=3)


def test_flip_moves_left_joints_to_the_right_joint_slots(tmp_path):
    sample = make_sample(tmp_path)
    plain, flipped = dataset([sample])[0], dataset([sample], flip_prob=1.0)[0]
    ra, la = LSP.index("right_ankle"), LSP.index("left_ankle")
    # After mirroring, the joint stored as "right ankle" is the old left ankle, at the mirrored x.
    assert flipped["keypoints"][ra, 0].item() == pytest.approx(63 - plain["keypoints"][la, 0].item(), abs=1e-4)
    assert flipped["keypoints"][ra, 1].item() == pytest.approx(plain["keypoints"][la, 1].item(), abs=1e-4)
    # its heatmap peak sits where the keypoint is
    hm = flipped["heatmaps"][ra].numpy()
    y, x = np.unravel_index(hm.argmax(), hm.shape)
    assert abs(x - flipped["keypoints"][ra, 0].item() / 4) <= 1 and abs(y - flipped["keypoints"][ra, 1].item() / 4) <= 1


def test_targets_and_weights(tmp_path):
    item = dataset([make_sample(tmp_path)])[0]
    assert item["image"].shape == (3, 64, 64) and item["heatmaps"].shape == (14, 16, 16)
    assert item["weights"][LSP.index("head_top")] == 1 and item["weights"][LSP.index("neck")] == 0
    assert item["ok"] == 1


def test_same_seed_same_augmentation(tmp_path):
    sample = make_sample(tmp_path)
    a = dataset([sample], scale=0.3, rotation=30, rotation_prob=1.0, shift=0.1, flip_prob=0.5, color=0.2)
    b = dataset([sample], scale=0.3, rotation=30, rotation_prob=1.0, shift=0.1, flip_prob=0.5, color=0.2)
    assert (a[0]["image"] == b[0]["image"]).all()
    a.set_epoch(1)
    assert not (a[0]["keypoints"] == b[0]["keypoints"]).all()


def test_unreadable_image_costs_one_sample_not_the_epoch(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    item = dataset([make_sample(tmp_path, "broken.jpg", write=False)])[0]
    assert item["ok"] == 0 and item["weights"].sum() == 0


@pytest.mark.parametrize("aid_prob", [0.0, 1.0])
def test_item_image_is_the_plain_jitter_then_information_dropping_then_normalisation(tmp_path, aid_prob):
    """The item's pixels follow the plain formulas, with every random draw in its old order: crop, colour
    jitter, the AID coin, AID's own draws."""
    from posekit.data.augment import information_dropping
    from posekit.data.transforms import IMAGE_MEAN, IMAGE_STD, color_jitter
    path = tmp_path / "person.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(path)
    sample = make_sample(tmp_path, write=False)
    data = dataset([sample], scale=0.3, rotation=30, rotation_prob=1.0, shift=0.1, flip_prob=0.5, color=0.3,
                   aid_prob=aid_prob)
    for epoch in range(4):
        data.set_epoch(epoch)
        item = data[0]
        rng = np.random.default_rng([data.seed, epoch, 0])
        matrix, _ = data.crop(sample, rng)
        crop = color_jitter(data.warped_crop(0, matrix), rng, 0.3)  # the plain formula: test_transforms.py
        if aid_prob and rng.random() < aid_prob:
            keypoints = item["keypoints"].numpy()
            inside = ((keypoints[:, :2] >= 0) & (keypoints[:, :2] <= 63)).all(axis=1) & (keypoints[:, 2] > 0)
            crop = information_dropping(crop, np.where(inside[:, None], keypoints, 0), rng, prob=1.0)
        expected = ((crop.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1)
        np.testing.assert_array_equal(item["image"].numpy(), expected)
