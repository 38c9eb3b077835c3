"""The unlabeled stream: no label ever reaches a batch, and a position replays its batch exactly."""
import numpy as np
import torch

from posekit.codecs import HeatmapCodec
from posekit.data.formats import load_samples
from posekit.skeletons import get_skeleton
from posekit.training.unlabeled import UnlabeledStream


def stream(spec, **kw):
    options = dict(codec=HeatmapCodec((64, 64)), input_size=(64, 64), num_keypoints=14,
                   flip_index=get_skeleton("lsp").flip_index, batch_size=8, seed=4, ratio=0.5)
    return UnlabeledStream(spec, **(options | kw))


def test_labels_are_withheld_and_batches_have_the_ratio(tiny_data):
    s = stream(f"coco:{tiny_data}")
    assert s.batch_size == 4 and s.batches_per_epoch == 6  # 24 people, 8 x 0.5 a batch
    assert any(x.keypoints[:, 2].any() for x in load_samples(f"coco:{tiny_data}"))  # the data has labels ...
    for _ in range(s.batches_per_epoch + 1):
        batch = next(s)
        assert batch["image"].shape == (4, 3, 64, 64)
        assert not batch["weights"].any() and not batch["heatmaps"].any()  # ... the stream none
    assert s.position == 7
    epoch, indices = s.indices(6)  # the first batch of the second epoch: its own permutation
    expected = torch.randperm(24, generator=torch.Generator().manual_seed(4 * 1000003 + 1))[:4].tolist()
    assert epoch == 1 and indices == expected


def test_a_position_replays_its_batch(tiny_data):
    a, b = stream(f"coco:{tiny_data}"), stream(f"coco:{tiny_data}")
    images = [next(a)["image"] for _ in range(3)]
    b.position = 2
    assert torch.equal(next(b)["image"], images[2])
    folder = stream(f"folder:{tiny_data.parent / 'images'}", num_keypoints=14)  # 17 placeholder joints -> 14
    assert next(folder)["heatmaps"].shape[1] == 14
    assert np.all([not x.keypoints.any() for x in folder.dataset.samples])
