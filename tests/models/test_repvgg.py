"""RepVGG re-parameterisation: the deploy model equals the training form in eval mode."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn

from posekit.models import build_model, model_config, reparameterize
from posekit.models.backbones.repvgg import RepVGGBlock
from posekit.models.heads import DeconvBlock

TINY = dict(widths=[8, 16, 16, 24, 32], depths=[1, 2, 3, 2, 1], deconv_channels=16)


@torch.no_grad()
def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine parameters and running statistics, so folding them is not an identity map."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model.eval()


def _max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("in_ch,out_ch,stride", [(8, 8, 1), (8, 12, 1), (8, 12, 2), (3, 8, 2)])
def test_block_fusion_is_exact(in_ch, out_ch, stride):
    torch.manual_seed(0)
    block = _randomise_bn(RepVGGBlock(in_ch, out_ch, stride, act="hardswish"))
    assert (block.branch_identity is not None) == (in_ch == out_ch and stride == 1)
    fused = RepVGGBlock(in_ch, out_ch, stride, act="hardswish", deploy=True)
    fused.load_state_dict(block.fused_state())
    x = torch.randn(2, in_ch, 9, 10)
    with torch.no_grad():
        expected = block(x)
        torch.testing.assert_close(fused(x), expected, atol=1e-5, rtol=1e-5)
    assert expected.abs().max() > 0.5  # non-trivial outputs


def test_deconv_bn_folding_is_exact():
    torch.manual_seed(0)
    block = _randomise_bn(DeconvBlock(6, 5))
    folded = DeconvBlock(6, 5, deploy=True)
    folded.load_state_dict(block.fused_state())
    x = torch.randn(2, 6, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), block(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", [("repvgg_lite", TINY), ("repvgg_a0", dict(TINY, depths=[1, 2, 4, 14, 1]))])
def test_reparameterized_model_matches_training_form(name, kwargs):
    torch.manual_seed(0)
    model = _randomise_bn(build_model(name, num_keypoints=4, **kwargs))
    nn.init.normal_(model.head.weight, std=0.5)  # a full-size head, so heatmap errors aren't scaled down 1000x
    deployed = reparameterize(model)
    assert deployed is not model and deployed.deploy and not model.deploy
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features, heatmaps = model.forward_features(x), model(x)
        assert features.abs().max() > 0.1 and heatmaps.abs().max() > 0.1
        assert _max_rel_diff(deployed.forward_features(x), features) < 1e-5
        assert (deployed(x) - heatmaps).abs().max() < 1e-5 * max(1.0, heatmaps.abs().max().item())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())  # trunk and head
    assert sum(isinstance(m, RepVGGBlock) and m.deploy for m in deployed.modules()) == sum(kwargs["depths"])
    # the training model is left as it was, and shares no storage with the deploy model
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        deployed.head.weight.zero_()
    assert model.head.weight.abs().max() > 0
    assert all(p.device.type == "cpu" and p.requires_grad for p in deployed.parameters())


def test_deploy_model_round_trips_through_a_checkpoint():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("repvgg_lite", num_keypoints=3, **TINY))
    deployed = model.reparameterize().eval()
    config = model_config(deployed)
    assert config["name"] == "repvgg_lite" and config["kwargs"]["deploy"] is True
    assert config["kwargs"]["widths"] == TINY["widths"]
    buffer = io.BytesIO()
    torch.save({"model": deployed.state_dict(), "config": config}, buffer)
    buffer.seek(0)
    payload = torch.load(buffer, weights_only=True)
    rebuilt = build_model(payload["config"]["name"], **payload["config"]["kwargs"]).eval()
    rebuilt.load_state_dict(payload["model"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), deployed(x), atol=0, rtol=0)


def test_reparameterizing_a_deploy_model_is_a_copy():
    torch.manual_seed(0)
    deployed = build_model("repvgg_lite", num_keypoints=3, deploy=True, **TINY).eval()
    again = deployed.reparameterize()
    assert again is not deployed
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), deployed(x), atol=0, rtol=0)


def test_generic_reparameterize_copies_other_models():
    model = build_model("lite_hourglass_2x32", num_keypoints=2)
    copy = reparameterize(model)
    assert copy is not model and not hasattr(model, "reparameterize")
    assert copy.state_dict().keys() == model.state_dict().keys()


def test_bad_stage_spec():
    with pytest.raises(ValueError, match="five positive ints"):
        build_model("repvgg_lite", widths=[8, 8, 8])
