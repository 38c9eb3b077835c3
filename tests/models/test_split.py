"""How a backbone says it splits into trunk and head (PoseModel.split_trunk_head) and the hourglass's stack
ranges: head(trunk(x)) is the model, over the model's own layers, for every family."""
import copy

import pytest
import torch

from posekit.models import build_model
from posekit.models.base import CoordinateModel, PoseModel

FAMILIES = [("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}),
            ("repvgg_lite", {"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}),
            ("lite_hourglass_2x32", {"depth": 2})]


def tiny(name, kwargs):
    torch.manual_seed(0)
    return build_model(name, num_keypoints=14, **kwargs).eval()


@pytest.mark.parametrize("name,kwargs", FAMILIES)
@pytest.mark.parametrize("final_conv", [False, True])
def test_head_of_trunk_is_the_model(name, kwargs, final_conv):
    model = tiny(name, kwargs)
    split = model.split_trunk_head(final_conv=final_conv)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(split.head(split.trunk(x)), model(x))
    own = {id(p) for p in model.parameters()}
    assert {id(p) for p in split.head.parameters()} <= own  # the model's layers, not copies
    encoder_decoder = name != "lite_hourglass_2x32" and not final_conv
    assert (split.stages is not None) == encoder_decoder
    if encoder_decoder:
        assert list(split.head.named_children())[0][0] == "upsample" and split.stages is model.trunk
        with torch.no_grad():
            assert torch.equal(split.stages(x), split.trunk(x))
    else:
        assert [n for n, _ in split.head.named_children()] == ["head"] and len(list(split.head.parameters())) == 2


def test_a_model_that_does_not_say_raises():
    class Bare(PoseModel):
        def forward_all(self, x):
            return [x]

    with pytest.raises(NotImplementedError, match="Bare does not say how it splits into trunk and head"):
        Bare(14, 8).split_trunk_head()
    coordinate = build_model("simplebaseline_r18", num_keypoints=14, width=0.25, deconv_channels=32)
    from posekit.models.heads import RegressionHead
    with pytest.raises(NotImplementedError, match="CoordinateModel"):
        CoordinateModel(coordinate, RegressionHead(32, 14)).split_trunk_head()


def test_hourglass_stack_ranges_compose_to_the_network():
    model = tiny("hourglass", {"num_stacks": 4, "channels": 16, "depth": 2, "block": "narrow"})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model.forward_all(x)
        z, early = model.stacks(0, 2)(model.stem(x))
        last, late = model.stacks(2)(z)
        assert all(torch.equal(a, b) for a, b in zip([h for _, h in early + late], plain)) and len(plain) == 4
        assert torch.equal(late[-1][0], model.forward_features(x))
        # the output is the last stack's input: stack 2's features and heatmaps re-injected, none after stack 3
        features, heatmaps = late[0]
        assert torch.equal(last, z + model.merge_features[2](features) + model.merge_heatmaps[2](heatmaps))
    stacks = model.stacks(2, 4)
    assert len(stacks.hourglasses) == 2 and len(stacks.merge_features) == 1
    assert stacks.hourglasses[0] is model.hourglasses[2]  # the network's own layers ...
    assert copy.deepcopy(stacks).hourglasses[0] is not model.hourglasses[2]  # ... a deep copy is independent
    with pytest.raises(ValueError, match="stacks 3..5"):
        model.stacks(3, 5)


@pytest.mark.parametrize("final_conv", [False, True])
def test_movenet_splits_off_its_heatmap_head(final_conv):
    model = tiny("movenet_lightning", {})
    split = model.split_trunk_head(final_conv=final_conv)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(split.head(split.trunk(x)), model(x))
    assert split.stages is None
    names = [n for n, _ in split.head.named_children()]
    assert names == (["output", "sigmoid"] if final_conv else ["heatmap", "sigmoid"])
    own = {id(p) for p in model.parameters()}
    assert {id(p) for p in split.head.parameters()} <= own
    packed = build_model("movenet_lightning", num_keypoints=17, heads="all", output="packed")
    with pytest.raises(NotImplementedError, match="packed"):
        packed.split_trunk_head()
