"""Activations are a per-model choice: every registered model takes ``act`` (relu, hardswish, hardmish, mish), the
choice reaches every activation layer and is recorded in the config, and every family builds, runs, trains a
step and (RepVGG) re-parameterises with each of them."""
import pytest
import torch

from posekit.models import build_model, list_models, model_config, reparameterize
from posekit.models.layers import ACTIVATIONS, HardMish, hard_mish

ACTS = sorted(ACTIVATIONS)
ACT_TYPES = {name: type(factory()) for name, factory in ACTIVATIONS.items()}

#: one small member of every family: (name, kwargs) at 64x64 input
FAMILIES = {
    "simplebaseline": ("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}),
    "simplebaseline_bottleneck": ("simplebaseline_r50", {"width": 0.25, "deconv_channels": 32}),
    "repvgg": ("repvgg_lite", {"widths": [8, 8, 16, 16, 32], "deconv_channels": 16}),
    "hourglass": ("hourglass", {"num_stacks": 2, "channels": 16, "depth": 2}),
    "lite_hourglass": ("lite_hourglass_2x32", {}),
}


def activations_of(model):
    return [m for m in model.modules() if type(m) in set(ACT_TYPES.values())]


def test_the_four_activations_are_available():
    assert set(ACTS) == {"relu", "hardswish", "hardmish", "mish"}
    x = torch.linspace(-4, 4, 81)
    torch.testing.assert_close(HardMish()(x), x / 2 * torch.clamp(x + 2, 0, 2))  # HardMish = x/2 * clamp(x+2, 0, 2)
    torch.testing.assert_close(hard_mish(x), x / 2 * torch.clamp(x + 2, 0, 2))


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("act", ACTS)
def test_every_registered_model_accepts_act(name, act):
    with torch.device("meta"):  # shapes only: even the 8-stack hourglass builds instantly
        model = build_model(name, num_keypoints=14, act=act)
    acts = activations_of(model)
    assert acts, f"{name} has no activation layers"
    assert all(type(m) is ACT_TYPES[act] for m in acts), f"{name}: not every activation is {act}"
    assert model_config(model)["kwargs"]["act"] == act


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("act", ACTS)
def test_each_activation_builds_runs_and_trains_for_each_family(family, act):
    name, kwargs = FAMILIES[family]
    torch.manual_seed(0)
    model = build_model(name, num_keypoints=14, act=act, **kwargs)
    x = torch.randn(2, 3, 64, 64)
    stages = model.forward_all(x)
    assert stages[-1].shape == (2, 14, 16, 16)
    assert all(torch.isfinite(s).all() for s in stages)
    loss = sum(s.pow(2).mean() for s in stages)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(x)
        if hasattr(model, "reparameterize"):  # RepVGG: the deploy form keeps the activation and the outputs
            deployed = reparameterize(model).eval()
            assert all(type(m) is ACT_TYPES[act] for m in activations_of(deployed))
            assert (deployed(x) - out).abs().max() < 1e-5 * max(1.0, out.abs().max().item())


def test_activation_changes_the_function_not_the_parameters():
    name, kwargs = FAMILIES["simplebaseline"]
    counts = {act: sum(p.numel() for p in build_model(name, num_keypoints=14, act=act, **kwargs).parameters())
              for act in ACTS}
    assert len(set(counts.values())) == 1
    torch.manual_seed(0)
    relu = build_model(name, num_keypoints=14, act="relu", **kwargs).eval()
    torch.manual_seed(0)
    mish = build_model(name, num_keypoints=14, act="mish", **kwargs).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(relu.forward_features(x), mish.forward_features(x))
