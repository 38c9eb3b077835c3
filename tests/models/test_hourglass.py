"""Stacked hourglass specifics: intermediate supervision, recursion, blocks, presets, odd sizes."""
from __future__ import annotations

import pytest
import torch

from posekit.models import build_model
from posekit.models.backbones.hourglass import (DepthwiseSeparableResidual, Hourglass, PreActBottleneck,
                                                StackedHourglass, make_block)
from posekit.models.flops import count_params


@pytest.mark.parametrize("num_stacks", [1, 2, 3])
def test_one_supervised_output_per_stack(num_stacks):
    torch.manual_seed(0)
    model = build_model("hourglass", num_keypoints=4, num_stacks=num_stacks, channels=16, depth=2)
    stages = model.train().forward_all(torch.randn(2, 3, 64, 48))
    assert len(stages) == num_stacks
    assert all(s.shape == (2, 4, 16, 12) for s in stages)
    assert len(model.merge_heatmaps) == len(model.merge_features) == num_stacks - 1


def test_heatmaps_are_reinjected_into_the_next_stack():
    """Stack 2's output depends on stack 1's heatmaps through merge_heatmaps (zeroing it changes stack 2 only)."""
    torch.manual_seed(0)
    model = build_model("hourglass", num_keypoints=3, num_stacks=2, channels=16, depth=2).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model.forward_all(x)
        model.merge_heatmaps[0].weight.mul_(1000.0)
        after = model.forward_all(x)
    torch.testing.assert_close(after[0], before[0])
    assert not torch.allclose(after[1], before[1])


@pytest.mark.parametrize("name,stacks,channels", [("hourglass_8x256", 8, 256), ("hourglass_4x128", 4, 128),
                                                  ("hourglass_2x64", 2, 64), ("hourglass_2x128", 2, 128),
                                                  ("hourglass_4x64", 4, 64), ("lite_hourglass_2x64", 2, 64)])
def test_presets(name, stacks, channels):
    with torch.device("meta"):  # the structure is all we check: skip weight init
        model = build_model(name)
    assert (model.num_stacks, model.feature_channels, model.num_keypoints) == (stacks, channels, 17)


def test_lite_hourglass_is_much_smaller_than_the_paper_blocks():
    with torch.device("meta"):
        lite = build_model("lite_hourglass", num_stacks=2, channels=64)
        full = build_model("hourglass", num_stacks=2, channels=64)
        narrow = build_model("lite_hourglass", num_stacks=2, channels=64, block="narrow")
    assert count_params(lite) < 0.7 * count_params(full)
    assert count_params(narrow) < 0.7 * count_params(full)
    assert all(isinstance(m, DepthwiseSeparableResidual) for m in lite.hourglasses[0].skip)


def test_recursion_depth():
    glass = Hourglass(depth=3, channels=8, block="bottleneck", act="relu")
    levels, node = 0, glass
    while isinstance(node, Hourglass):
        levels, node = levels + 1, node.inner
    assert levels == 3


@pytest.mark.parametrize("size", [(20, 12), (24, 14), (9, 7)])
def test_hourglass_keeps_odd_sizes(size):
    """Pooling floors odd sizes; upsampling to the skip branch's size restores them exactly."""
    glass = Hourglass(depth=2, channels=8, block="dwsep", act="relu").eval()
    x = torch.randn(1, 8, *size)
    assert glass(x).shape == x.shape


def test_minimum_input_size_follows_depth():
    model = build_model("hourglass", num_keypoints=2, channels=16, depth=3).eval()
    assert model.min_input_size == 32
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="at least 32"):
        model(torch.zeros(1, 3, 16, 32))


@pytest.mark.parametrize("kind,cls", [("bottleneck", PreActBottleneck), ("narrow", PreActBottleneck),
                                      ("dwsep", DepthwiseSeparableResidual)])
def test_blocks_change_channels_and_keep_size(kind, cls):
    block = make_block(kind, 8, 16, act="hardmish")
    assert isinstance(block, cls)
    assert block(torch.randn(2, 8, 5, 7)).shape == (2, 16, 5, 7)


def test_narrow_block_uses_quarter_width_bottleneck():
    block = make_block("narrow", 32, 32)
    assert block.body[2].out_channels == 8
    assert make_block("bottleneck", 32, 32).body[2].out_channels == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown hourglass block"):
        make_block("inverted", 8, 8)
    with pytest.raises(ValueError, match="stem"):
        StackedHourglass(stem="resnet")
    with pytest.raises(ValueError, match="num_stacks"):
        StackedHourglass(num_stacks=0)


def test_forward_features_are_last_stack_features():
    torch.manual_seed(0)
    model = build_model("lite_hourglass", num_keypoints=5, channels=16, depth=2).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.heads[-1](model.forward_features(x)), model(x))


@pytest.mark.parametrize("act", ["relu", "hardswish", "hardmish", "mish"])
def test_activation_choice_reaches_every_layer(act):
    from posekit.models.layers import ACTIVATIONS

    model = build_model("lite_hourglass", channels=16, depth=2, act=act)
    expected = type(ACTIVATIONS[act]())
    acts = [m for m in model.modules() if type(m) in {type(f()) for f in ACTIVATIONS.values()}]
    assert acts and all(type(m) is expected for m in acts)
