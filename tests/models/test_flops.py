"""Parameter / FLOP counting (FlopCounterMode convention: 2 FLOPs per multiply-accumulate)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from posekit.models import build_model
from posekit.models.flops import count_flops, count_params, model_info


def test_single_conv_flops_are_two_per_mac():
    # 8 output channels x 3 input channels x 3x3 kernel x 8x8 positions MACs, 2 FLOPs each; bias not counted
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, input_size=(8, 8)) == 2 * 3 * 8 * 9 * 64 == 27648
    assert count_flops(conv, input_size=(8, 8), batch=3) == 3 * 27648


def test_non_square_input_size_is_width_height():
    conv = nn.Conv2d(3, 4, 1)
    assert count_flops(conv, input_size=(6, 2)) == 2 * 3 * 4 * 12


def test_count_params_hand_value():
    conv = nn.Conv2d(3, 8, 3)
    assert count_params(conv) == 3 * 8 * 9 + 8
    conv.bias.requires_grad_(False)
    assert count_params(conv, trainable_only=True) == 3 * 8 * 9
    bn = nn.BatchNorm2d(4)  # running stats are buffers, not parameters
    assert count_params(bn) == 8


def test_count_flops_leaves_model_untouched():
    torch.manual_seed(0)
    model = build_model("lite_hourglass_2x32", num_keypoints=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, (64, 64))
    assert model.training
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def test_meta_count_equals_a_real_forward():
    torch.manual_seed(0)
    model = build_model("lite_hourglass_2x32", num_keypoints=2).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 64, 48))
    assert count_flops(model, (48, 64)) == counter.get_total_flops()


def test_flops_scale_with_pixels():
    # a fully convolutional net: doubling both sides costs exactly 4x
    small = model_info("simplebaseline_r18", (128, 96))["flops"]
    assert model_info("simplebaseline_r18", (256, 192))["flops"] == 4 * small


def test_model_info_by_name_and_by_model():
    info = model_info("lite_hourglass_2x32", (64, 64), num_keypoints=5)
    assert set(info) == {"params", "flops", "gflops"}
    assert info["gflops"] == pytest.approx(info["flops"] / 1e9)
    torch.manual_seed(0)
    model = build_model("lite_hourglass_2x32", num_keypoints=5)
    assert model_info(model, (64, 64)) == info


def test_fpd_student_costs_under_a_fifth_of_the_teacher():
    """FPD: the 4-stack, 128-channel student needs ~1/6 of the 8-stack, 256-channel teacher's FLOPs.
    Measured here at 256x256: 9.35 / 54.91 GFLOPs = 0.170; params 3.33M / 25.41M."""
    teacher = model_info("hourglass_8x256", (256, 256))
    student = model_info("hourglass_4x128", (256, 256))
    ratio = student["flops"] / teacher["flops"]
    assert 0.1 < ratio <= 0.2
    assert 24e6 < teacher["params"] < 27e6  # the paper's network has ~25M parameters


def test_bad_input_size():
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Conv2d(3, 3, 1), input_size=64)
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Conv2d(3, 3, 1), input_size=(0, 64))


def test_conv_stack_hand_computed():
    """Every kind of counted layer, on a 32x32 input; FLOPs = 2 x multiply-accumulates (MACs)."""
    stack = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),        # -> 8x16x16: 8*256 outputs x 3*9 MACs = 55296 MACs
        nn.BatchNorm2d(8), nn.ReLU(),                    # 0 FLOPs
        nn.Conv2d(8, 16, 3, padding=1, bias=False),      # -> 16x16x16: 16*256 outputs x 8*9 = 294912 MACs
        nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1),  # 16x16 inputs x 16 in x 4 out x 4*4 = 262144 MACs
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),           # 0 FLOPs
        nn.Linear(4, 10),                                # 4 x 10 = 40 MACs
    )
    assert count_flops(stack, (32, 32)) == 2 * (55296 + 294912 + 262144 + 40) == 1224784
    assert count_flops(stack, (32, 32), batch=2) == 2 * 1224784
    # weights + biases: 8*3*9 + 8, BN gamma + beta 2*8, 16*8*9 (no bias), 16*4*4*4 + 4, 4*10 + 10
    assert count_params(stack) == 224 + 16 + 1152 + 1028 + 50 == 2470
    assert model_info(stack, (32, 32)) == {"params": 2470, "flops": 1224784, "gflops": 1224784 / 1e9}


@pytest.mark.parametrize("name", ["hourglass_2x64", "lite_hourglass_2x32", "simplebaseline_r18_half", "repvgg_lite"])
def test_each_family_counts_on_meta(name):
    # the meta-device count is exactly that of the real model: its parameters and a real forward pass
    info = model_info(name, (64, 64), num_keypoints=3)
    torch.manual_seed(0)
    model = build_model(name, num_keypoints=3).eval()
    assert info["params"] == sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 64, 64))
    assert info["flops"] == counter.get_total_flops() > 0
