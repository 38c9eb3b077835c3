"""Coordinate heads on registered backbones: shapes, the model contract, checkpoint rebuild, deploy form."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec, IntegralCodec, RegressionCodec
from posekit.config import PoseConfig
from posekit.models import build_model
from posekit.models.base import CoordinateModel
from posekit.models.heads import RegressionHead, RLEHead, build_pose_model

K = 5
BACKBONES = [("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}), ("lite_hourglass_2x32", {}),
             ("repvgg_lite", {"widths": [8, 8, 16, 16, 32], "depths": [1, 1, 1, 1, 1], "deconv_channels": 16})]


def _config(name, kwargs, head, head_kwargs=None):
    return {"model": {"name": name, "kwargs": {"num_keypoints": K, **kwargs}},
            "head": {"type": head, "kwargs": head_kwargs or {}},
            "codec": RegressionCodec((64, 64)).to_config(), "input_size": [64, 64]}


@pytest.mark.parametrize("name,kwargs", BACKBONES)
@pytest.mark.parametrize("head,dims", [("regression", 2), ("rle", 4)])
def test_coordinate_head_contract_on_any_backbone(name, kwargs, head, dims):
    torch.manual_seed(0)
    model = build_pose_model(name, K, kwargs, head)
    assert isinstance(model, CoordinateModel) and model.num_keypoints == K
    x = torch.randn(2, 3, 64, 64)
    stages = model.train().forward_all(x)
    assert len(stages) == 1 and stages[0].shape == (2, K, dims)
    stages[0].square().mean().backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.backbone.forward_features(x).shape[1] == model.head.fc.in_features

    model.eval()
    with torch.no_grad():
        out = model(x)
        wide = model(torch.randn(1, 3, 96, 64))
        out_cl = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(model.forward_all(x)[0], out)
    assert wide.shape == (1, K, dims)
    assert (out_cl - out).abs().max() <= 1e-4 * max(1.0, out.abs().max().item())

    # checkpoint: state dict + config rebuild the same network with no other argument
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": _config(name, kwargs, head)}, buffer)
    buffer.seek(0)
    payload = torch.load(buffer, weights_only=True)
    torch.manual_seed(123)
    rebuilt = PoseConfig.from_dict(payload["config"]).build_model()
    rebuilt.load_state_dict(payload["model"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), out, atol=0, rtol=0)


def test_untrained_regression_head_predicts_about_the_crop_centre():
    head = RegressionHead(16, K)
    out = head(torch.rand(3, 16, 8, 8))
    assert out.shape == (3, K, 2) and out.abs().max() < 0.2
    assert torch.equal(head.fc.bias, torch.zeros(2 * K))
    rle = RLEHead(16, K)
    assert rle(torch.rand(3, 16, 8, 8)).shape == (3, K, 4)


def test_regression_head_pools_globally():
    head = RegressionHead(4, 2)
    features = torch.zeros(1, 4, 6, 6)
    features[0, :, 1, 1] = 36.0  # mean over the map = 1 per channel
    expected = head.fc(torch.ones(1, 4)).reshape(1, 2, 2)
    torch.testing.assert_close(head(features), expected)


@pytest.mark.parametrize("head", ["heatmap", "dsnt"])
def test_heatmap_output_heads_are_the_registered_backbone_unchanged(head):
    torch.manual_seed(3)
    reference = build_model("simplebaseline_r18", num_keypoints=K, width=0.25, deconv_channels=32)
    torch.manual_seed(3)
    model = build_pose_model("simplebaseline_r18", K, {"width": 0.25, "deconv_channels": 32}, head)
    assert type(model) is type(reference)
    for (key, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), key


def test_config_without_head_is_a_heatmap_model():
    model = PoseConfig.from_dict({"model": {"name": "lite_hourglass_2x32", "kwargs": {"num_keypoints": K}},
                                  "codec": HeatmapCodec((64, 64)).to_config(), "input_size": [64, 64]}).build_model()
    assert not isinstance(model, CoordinateModel)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, K, 16, 16)


def test_repvgg_coordinate_model_reparameterizes_exactly():
    name, kwargs = BACKBONES[2]
    torch.manual_seed(0)
    model = build_pose_model(name, K, kwargs, "rle")
    with torch.no_grad():  # non-trivial BN statistics
        model.train()(torch.randn(4, 3, 64, 64))
    model.eval()
    deployed = model.reparameterize()
    assert deployed is not model and deployed.backbone.deploy
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), atol=1e-4, rtol=1e-4)


def test_dsnt_reads_movenet_logits_and_refuses_its_sigmoid_maps():
    with pytest.raises(ValueError, match=r"reads the maps as logits, but movenet_lightning's output goes through a "
                                         r"sigmoid: build it to output the logits"):
        build_pose_model("movenet_lightning", 2, {}, "dsnt")
    model = build_pose_model("movenet_lightning", 2, {"output": "logits"}, "dsnt").eval()
    final = model.heads["heatmap"][1]
    with torch.no_grad():  # constant logits 3 and -1: uniform soft-argmax maps
        final.weight.zero_()
        final.bias.copy_(torch.tensor([3.0, -1.0]))
        logits = model(torch.zeros(1, 3, 64, 64))
    coords, scores = IntegralCodec((64, 64)).decode(logits)
    # the mean of i / 16 - 0.5 over i = 0..15 is -1/32, i.e. input pixel 64 * (0.5 - 1/32) = 30
    np.testing.assert_array_equal(coords, np.full((1, 2, 2), 30.0, np.float32))
    np.testing.assert_allclose(scores, [[0.95257413, 0.26894142]], rtol=1e-6)


def test_head_validation():
    with pytest.raises(ValueError, match="unknown head"):
        build_pose_model("lite_hourglass_2x32", K, {}, "heatmaps")
    with pytest.raises(ValueError, match="takes no head_kwargs"):
        build_pose_model("lite_hourglass_2x32", K, {}, "dsnt", {"init_std": 0.1})
    with pytest.raises(ValueError, match="bad head_kwargs"):
        build_pose_model("lite_hourglass_2x32", K, {}, "regression", {"no_such_option": 1})
