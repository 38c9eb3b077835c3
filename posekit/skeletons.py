"""Keypoint sets: names, left/right flip pairs, limbs, OKS sigmas, metric references, limb chains.

Every other module refers to joints through a :class:`Skeleton`, never through hard-coded indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    #: (left shoulder, right hip): the torso diameter that normalises PCK (LSP convention).
    torso: tuple[int, int]
    #: two joints whose distance is the head segment of PCKh, or None.
    head: tuple[int, int] | None
    #: SCAI limb chains, each four joints ordered proximal -> distal.
    chains: tuple[tuple[int, int, int, int], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> np.ndarray:
        """(K,) permutation: joint k of a mirrored image is joint ``flip_index[k]`` of the original."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, name: str) -> int:
        return self.keypoints.index(name)

    def __post_init__(self):
        k = len(self.keypoints)
        if len(self.sigmas) != k:
            raise ValueError(f"skeleton {self.name}: {len(self.sigmas)} sigmas for {k} keypoints")
        for group in (self.flip_pairs, self.limbs, self.chains, (self.torso,)):
            for pair in group:
                if any(not 0 <= j < k for j in pair):
                    raise ValueError(f"skeleton {self.name}: index out of range in {pair}")


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO = Skeleton(
    name="coco",
    keypoints=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    limbs=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
           (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    # Official COCO per-keypoint OKS sigmas.
    sigmas=(.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
            .107, .107, .087, .087, .089, .089),
    torso=(5, 12),
    head=(3, 4),  # ear to ear: COCO has no head top; used only if someone asks for PCKh on COCO
    chains=((5, 6, 8, 10), (6, 5, 7, 9), (11, 12, 14, 16), (12, 11, 13, 15), (0, 6, 12, 14), (0, 5, 11, 13)),
)

_LSP_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)
LSP = Skeleton(
    name="lsp",
    keypoints=_LSP_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    limbs=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (12, 9), (9, 10),
           (10, 11), (12, 13), (8, 2), (9, 3)),
    # COCO sigmas for the shared joints; neck like a shoulder, head top like an ear.
    sigmas=(.089, .087, .107, .107, .087, .089, .062, .072, .079, .079, .072, .062, .079, .035),
    torso=(9, 2),
    head=(12, 13),
    chains=((12, 8, 7, 6), (12, 9, 10, 11), (3, 2, 1, 0), (2, 3, 4, 5), (13, 12, 8, 2), (13, 12, 9, 3)),
)

_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
MPII = Skeleton(
    name="mpii",
    keypoints=_MPII_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    limbs=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11),
           (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)),
    sigmas=(.089, .087, .107, .107, .087, .089, .107, .079, .079, .035,
            .062, .072, .079, .079, .072, .062),
    torso=(13, 2),
    head=(8, 9),
    chains=((7, 12, 11, 10), (7, 13, 14, 15), (6, 2, 1, 0), (6, 3, 4, 5), (9, 8, 12, 2), (9, 8, 13, 3)),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO, LSP, MPII)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None


def skeleton_for(num_keypoints: int) -> Skeleton | None:
    """The registered skeleton with this many keypoints, if exactly one has it."""
    found = [s for s in SKELETONS.values() if s.num_keypoints == num_keypoints]
    return found[0] if len(found) == 1 else None


def shared_skeleton(model: Skeleton, data: Skeleton) -> tuple[Skeleton, np.ndarray, np.ndarray]:
    """The joints two skeletons both name, so a model of one can be scored on data of the other.

    Returns ``(sub, model_index, data_index)``: ``sub`` is a skeleton of the shared joints in ``data``'s order
    (``data``'s OKS sigmas, flip pairs, limbs; torso / head kept when both of their joints are shared; no
    chains), and ``model_output[:, model_index]`` / ``data_keypoints[:, data_index]`` are the shared joints in
    that order. E.g. an LSP model on COCO data: the 12 limb joints (no nose, eyes, ears, neck or head top).
    Raises ValueError when the skeletons share no joint or a shared torso cannot be formed.
    """
    data_index = [j for j, name in enumerate(data.keypoints) if name in model.keypoints]
    if not data_index:
        raise ValueError(f"skeletons {model.name} and {data.name} share no joint name")
    model_index = [model.index(data.keypoints[j]) for j in data_index]
    new = {old: i for i, old in enumerate(data_index)}

    def pairs(group):
        return tuple((new[a], new[b]) for a, b in group if a in new and b in new)

    def pair(p):
        return (new[p[0]], new[p[1]]) if p is not None and p[0] in new and p[1] in new else None

    torso = pair(data.torso)
    if torso is None:
        raise ValueError(f"skeletons {model.name} and {data.name}: the torso joints of {data.name} are not shared")
    sub = Skeleton(name=f"{data.name}&{model.name}", keypoints=tuple(data.keypoints[j] for j in data_index),
                   flip_pairs=pairs(data.flip_pairs), limbs=pairs(data.limbs),
                   sigmas=tuple(data.sigmas[j] for j in data_index), torso=torso, head=pair(data.head), chains=())
    return sub, np.asarray(model_index), np.asarray(data_index)
