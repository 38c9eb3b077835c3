"""Registry behaviour and the model contract, checked for every registered model."""
from __future__ import annotations

import io
import json

import pytest
import torch

from posekit.models import build_model, list_models, model_config, register_model, registry
from posekit.models.heads import HeatmapHead

# Heavy presets are built at a reduced size (their kwargs override the preset, which is itself under
# test); everything else runs exactly as registered.
SMALL_KWARGS = {
    "hourglass": {"channels": 32},
    "hourglass_8x256": {"channels": 32},
    "hourglass_4x128": {"channels": 32},
    "simplebaseline_r18": {"width": 0.25, "deconv_channels": 32},
    "simplebaseline_r34": {"width": 0.25, "deconv_channels": 32},
    "simplebaseline_r50": {"width": 0.25, "deconv_channels": 32},
    "repvgg_a0": {"widths": [16, 16, 32, 64, 128], "deconv_channels": 32},
}
K = 3


def _build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, num_keypoints=K, **SMALL_KWARGS.get(name, {}))


@torch.no_grad()
def _calibrated(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Eval mode with BN running statistics taken from one random batch: a fresh model's unit running
    variance would leave eval-mode activations unnormalised (degenerate, huge or tiny)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()(torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def test_expected_models_are_registered():
    names = set(list_models())
    expected = {"hourglass", "hourglass_8x256", "hourglass_4x128", "hourglass_2x64", "hourglass_2x128",
                "hourglass_4x64", "lite_hourglass", "lite_hourglass_2x64", "simplebaseline_r18",
                "simplebaseline_r34", "simplebaseline_r50", "repvgg_a0", "repvgg_lite"}
    assert expected <= names
    assert list_models() == sorted(names)


def test_list_models_pattern():
    assert list_models("simplebaseline_r*") == ["simplebaseline_r18", "simplebaseline_r18_half",
                                                "simplebaseline_r34", "simplebaseline_r50"]
    assert list_models("no_such_*") == []


def test_unknown_name_lists_registered_models():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*hourglass_2x64"):
        build_model("resnet9000")


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "17"])
def test_bad_num_keypoints(bad):
    with pytest.raises(ValueError, match="num_keypoints"):
        build_model("lite_hourglass_2x32", num_keypoints=bad)


def test_kwargs_must_be_json_able():
    with pytest.raises(ValueError, match="JSON"):
        build_model("lite_hourglass_2x32", act=object())


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        build_model("lite_hourglass_2x32", act="gelu")


def test_register_model_decorator(monkeypatch):
    monkeypatch.setattr(registry.MODELS, "_entries", dict(registry.MODELS._entries))

    @register_model
    def tiny_test_model(num_keypoints=17, scale=1.0):
        return torch.nn.Conv2d(3, num_keypoints, 1)

    @register_model(name="tiny_alias")
    def _other(num_keypoints=17):
        return torch.nn.Conv2d(3, num_keypoints, 1)

    assert {"tiny_test_model", "tiny_alias"} <= set(list_models())
    model = build_model("tiny_test_model", num_keypoints=4, scale=2.0)
    assert model.out_channels == 4
    assert model_config(model) == {"name": "tiny_test_model", "kwargs": {"num_keypoints": 4, "scale": 2.0}}
    with pytest.raises(ValueError, match="already registered"):
        register_model(name="tiny_test_model")(lambda **kw: None)


def test_model_config_requires_build_model():
    with pytest.raises(ValueError, match="build_model"):
        model_config(torch.nn.Conv2d(3, 3, 1))


def test_preset_kwargs_are_overridable_and_recorded():
    model = build_model("hourglass_2x64", num_keypoints=5, num_stacks=3, depth=2, act="hardmish")
    assert model.num_stacks == 3 and model.feature_channels == 64
    config = model_config(model)
    assert config == {"name": "hourglass_2x64",
                      "kwargs": {"num_keypoints": 5, "num_stacks": 3, "depth": 2, "act": "hardmish"}}
    config["kwargs"]["num_stacks"] = 1  # a copy: editing it must not touch the model's record
    assert model.pk_config["kwargs"]["num_stacks"] == 3


def test_tuple_kwargs_are_stored_as_json_lists():
    model = build_model("repvgg_lite", num_keypoints=2, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1))
    assert model.pk_config["kwargs"]["widths"] == [8, 8, 16, 16, 32]


@pytest.mark.parametrize("name", ["simplebaseline_r18_half", "lite_hourglass_2x32", "repvgg_lite"])
def test_bad_input_sizes_raise(name):
    model = _build(name).eval()
    with pytest.raises(ValueError, match="multiples"):
        model(torch.zeros(1, 3, 64, 62))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 1, 64, 64))


# -- the contract, for every registered model ------------------------------------------------------
@pytest.mark.parametrize("name", list_models())
def test_model_contract(name):
    """forward / forward_all / forward_features shapes (square, H != W, channels_last), backward reaches
    every parameter, and a checkpoint (state_dict + config) rebuilds an identical model."""
    model = _build(name)
    assert model.num_keypoints == K and model.output_stride == 4

    stages = model.train().forward_all(torch.randn(2, 3, 64, 64))
    sum(((s - 1.0) ** 2).mean() for s in stages).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname

    model = _calibrated(model)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        stages = model.forward_all(x)
        features = model.forward_features(x)
        wide = model(torch.randn(1, 3, 128, 96))
        out_cl = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (1, K, 16, 16)
    assert wide.shape == (1, K, 32, 24)  # H != W
    assert isinstance(stages, list) and len(stages) >= 1
    assert all(s.shape == out.shape for s in stages)
    torch.testing.assert_close(stages[-1], out)
    assert features.shape == (1, model.feature_channels, 16, 16)
    assert torch.isfinite(out).all() and out.abs().max() > 1e-4  # not degenerate
    # same maths in another memory layout: equal up to float rounding, relative to the output's scale
    assert (out_cl - out).abs().max() <= 1e-4 * out.abs().max()

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": model_config(model)}, buffer)
    buffer.seek(0)
    payload = torch.load(buffer, weights_only=True)
    json.dumps(payload["config"])
    torch.manual_seed(123)  # different init: equality below must come from the loaded weights
    rebuilt = build_model(payload["config"]["name"], **payload["config"]["kwargs"]).eval()
    rebuilt.load_state_dict(payload["model"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), out, atol=0, rtol=0)


@pytest.mark.parametrize("name", list_models())
def test_heatmap_heads_start_small(name):
    heads = [m for m in _build(name).modules() if isinstance(m, HeatmapHead)]
    assert heads
    for head in heads:
        assert head.out_channels == K
        assert torch.all(head.bias == 0)
        assert 0.0005 < head.weight.std().item() < 0.002  # normal(std=0.001)
