"""An endless, resumable stream of augmented crops of unlabeled people (FPD's teacher-only batches)."""
from __future__ import annotations

import numpy as np

from posekit.data.transforms import AugmentConfig
from posekit.training.seeding import epoch_permutation

__all__ = ["UnlabeledStream"]


class UnlabeledStream:
    """Endless batches of augmented crops of ``spec``'s people (a union ``A+B`` of data specs allowed, any
    skeletons) with every label withheld: each sample's keypoints
    are replaced by ``num_keypoints`` zeros (v = 0) before the dataset sees it, so targets and weights are all
    zero. The person box stays (a detector's box, for ``lsp``/``coco`` data the annotated one; ``folder:`` data
    uses the whole image).

    Crops are cut as the labelled data's are (``codec``, ``input_size``, ``flip_index``, ``augment``), with
    ``round(batch_size * ratio)`` crops a batch. Deterministic and resumable: batch ``position`` p is the p-th
    slice of a seeded per-epoch permutation, its augmentation comes from (seed, epoch, index) like the labelled
    data's, and ``position`` is all the state there is. Images are read in the main process.
    """

    def __init__(self, spec: str, *, codec, input_size, num_keypoints: int, flip_index, batch_size: int,
                 seed: int, ratio: float = 1.0, augment: dict | None = None, skip_invalid: bool = False):
        from posekit.data.dataset import TopDownDataset
        from posekit.data.formats import load_samples, split_union

        if ratio <= 0:
            raise ValueError(f"unlabeled_ratio must be > 0, got {ratio}")
        samples = [s for part in split_union(spec) for s in load_samples(part, skip_invalid=skip_invalid)]
        if not samples:
            raise ValueError(f"no unlabeled images in {spec}")
        for s in samples:  # withhold labels (and match the student's joint count: folder data has 17)
            s.keypoints = np.zeros((num_keypoints, 3), np.float32)
        self.seed = seed
        self.dataset = TopDownDataset(samples, codec, tuple(input_size), flip_index=np.array(flip_index),
                                      train=True, augment=AugmentConfig(**(augment or {})), seed=self.seed)
        self.batch_size = min(len(samples), max(1, int(round(batch_size * ratio))))
        self.batches_per_epoch = len(samples) // self.batch_size
        self.position = 0

    def indices(self, position: int) -> tuple[int, list[int]]:
        """(epoch, sample indices) of batch number ``position``."""
        epoch, slot = divmod(position, self.batches_per_epoch)
        perm = epoch_permutation(len(self.dataset), self.seed, epoch)
        return epoch, perm[slot * self.batch_size:(slot + 1) * self.batch_size].tolist()

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        epoch, indices = self.indices(self.position)
        self.position += 1
        self.dataset.set_epoch(epoch)
        return self.dataset.batch(indices)
