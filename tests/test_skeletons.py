import numpy as np
import pytest

from posekit.skeletons import COCO, LSP, MPII, SKELETONS, get_skeleton, skeleton_for


@pytest.mark.parametrize("skeleton", list(SKELETONS.values()), ids=list(SKELETONS))
def test_flip_pairs_swap_left_and_right(skeleton):
    perm = skeleton.flip_index
    assert sorted(perm.tolist()) == list(range(skeleton.num_keypoints))  # a permutation
    assert (perm[perm] == np.arange(skeleton.num_keypoints)).all()       # an involution
    for k, name in enumerate(skeleton.keypoints):
        mirrored = skeleton.keypoints[perm[k]]
        if name.startswith("left_"):
            assert mirrored == "right_" + name[5:]
        elif name.startswith("right_"):
            assert mirrored == "left_" + name[6:]
        else:
            assert mirrored == name


def test_counts_and_references():
    assert (COCO.num_keypoints, LSP.num_keypoints, MPII.num_keypoints) == (17, 14, 16)
    assert [LSP.keypoints[i] for i in LSP.torso] == ["left_shoulder", "right_hip"]
    assert [COCO.keypoints[i] for i in COCO.torso] == ["left_shoulder", "right_hip"]
    assert [MPII.keypoints[i] for i in MPII.torso] == ["left_shoulder", "right_hip"]
    assert COCO.sigmas[0] == 0.026 and COCO.sigmas[-1] == 0.089
    assert get_skeleton("lsp") is LSP and skeleton_for(16) is MPII
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("horse")


@pytest.mark.parametrize("skeleton", list(SKELETONS.values()), ids=list(SKELETONS))
def test_six_limb_chains_of_four_distinct_joints(skeleton):
    assert len(skeleton.chains) == 6
    for chain in skeleton.chains:
        assert len(set(chain)) == 4


def test_shared_skeleton_of_an_lsp_model_on_coco_data_is_the_twelve_limb_joints():
    from posekit.skeletons import shared_skeleton
    sub, model_index, data_index = shared_skeleton(LSP, COCO)
    assert sub.keypoints == COCO.keypoints[5:]  # shoulders .. ankles, in COCO order
    assert data_index.tolist() == list(range(5, 17))
    # COCO left_shoulder (5) is LSP joint 9, right_ankle (16) is LSP joint 0
    assert model_index[0] == 9 and model_index[-1] == 0
    assert [LSP.keypoints[m] for m in model_index] == list(sub.keypoints)
    assert sub.sigmas == COCO.sigmas[5:]
    assert sub.torso == (0, 7)  # left_shoulder, right_hip of the 12
    assert sub.head is None  # COCO's ears are not LSP joints
    assert (0, 1) in sub.flip_pairs  # left / right shoulder


def test_shared_skeleton_refuses_skeletons_without_common_joints():
    from posekit.skeletons import Skeleton, shared_skeleton
    other = Skeleton(name="tail", keypoints=("tail_base", "tail_tip"), flip_pairs=(), limbs=((0, 1),),
                     sigmas=(0.1, 0.1), torso=(0, 1), head=None, chains=())
    with pytest.raises(ValueError, match="share no joint"):
        shared_skeleton(other, COCO)
