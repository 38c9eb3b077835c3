"""Moving per-joint output channels to another keypoint set: known rows, stand-ins, clear errors."""
from __future__ import annotations

import pytest
import torch

from posekit.models.keypoint_transfer import joint_sources, transfer_keypoint_state
from posekit.models.registry import build_model
from posekit.skeletons import COCO, LSP, MPII


def test_lsp_joints_from_coco_by_name_and_stand_ins():
    sources = joint_sources(COCO, LSP)
    # right ankle, right knee, right hip, left hip ... then neck (shoulders) and head top (face)
    assert sources == [(16,), (14,), (12,), (11,), (13,), (15,), (10,), (8,), (6,), (5,), (7,), (9,),
                       (5, 6), (0, 1, 2, 3, 4)]


def test_joint_without_counterpart_is_refused():
    with pytest.raises(ValueError, match="'right_ankle' of mpii has no counterpart or stand-in"):
        joint_sources(LSP.__class__(**{**LSP.__dict__, "keypoints": tuple(f"j{i}" for i in range(14))}), MPII)


def test_heatmap_rows_are_copied_and_averaged():
    source = build_model("simplebaseline_r18", num_keypoints=17, width=0.25, deconv_channels=16)
    target = build_model("simplebaseline_r18", num_keypoints=14, width=0.25, deconv_channels=16)
    state = source.state_dict()
    layer = [k for k in state if k.endswith(".weight") and state[k].shape[0] == 17][-1].rsplit(".", 1)[0]
    state[f"{layer}.weight"] = torch.arange(17.0).view(17, 1, 1, 1).expand_as(state[f"{layer}.weight"]).clone()
    state[f"{layer}.bias"] = torch.arange(17.0)
    out = transfer_keypoint_state(state, target, COCO, LSP)
    target.load_state_dict(out)
    expected = torch.tensor([16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 5.5, 2.0])
    assert torch.equal(out[f"{layer}.bias"], expected)
    assert torch.equal(out[f"{layer}.weight"][:, 0, 0, 0], expected)
    assert torch.equal(state[f"{layer}.bias"], torch.arange(17.0))  # the input is left alone
