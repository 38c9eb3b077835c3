"""MoveNet without shared data: architecture, posekit model contract, TF geometry helpers, ONNX export and
the decoders on hand-built head outputs. (test_movenet.py checks everything against the released graphs.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit.codecs.movenet import center_weight, local_peaks, movenet_decode, movenet_multipose_decode
from posekit.data.transforms import normalize_image
from posekit.models.backbones.movenet import MOVENET_NORM_SCALE, MoveNet, pad_same_stride2, upsample2x
from posekit.models.registry import build_model, list_models

#: registered name -> (parameters with heads="all", as in the released graphs' network, input side, MultiPose)
MODELS = {"movenet_lightning": (2_317_974, 192, False), "movenet_thunder": (6_226_046, 256, False),
          "movenet_multipose": (4_723_346, 256, True)}


@pytest.fixture(scope="module")
def lightning():
    torch.manual_seed(0)
    return build_model("movenet_lightning").eval()


# ----------------------------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("name", list(MODELS))
def test_registered_models_build_with_the_graphs_parameter_counts(name):
    params, _, multipose = MODELS[name]
    model = build_model(name, heads="all")
    assert name in list_models("movenet_*")
    assert isinstance(model, MoveNet) and model.pk_config == {"name": name, "kwargs": {"num_keypoints": 17, "heads": "all"}}
    assert sum(p.numel() for p in model.parameters()) == params
    assert (model.num_keypoints, model.output_stride, model.input_multiple, model.feature_channels) == (17, 4, 32, 24)
    assert model.skeleton == "coco" and model.multipose == multipose
    assert sorted(model.heads) == sorted(["center", "regress", "heatmap", "offset"]
                                         + (["box_scale", "box_offset"] if multipose else []))
    assert list(build_model(name).heads) == ["heatmap"]  # the default: what posekit trains


@pytest.mark.parametrize("name, size", [("movenet_lightning", (192, 192)), ("movenet_lightning", (256, 192)),
                                        ("movenet_thunder", (256, 256)), ("movenet_multipose", (256, 256))])
def test_output_shapes(name, size):
    model = build_model(name, num_keypoints=14, heads="all").eval()
    h, w = size
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        heatmaps, heads, features = model(x), model.forward_heads(x), model.forward_features(x)
        stages = model.forward_all(x)
    assert heatmaps.shape == (2, 14, h // 4, w // 4) and 0 <= heatmaps.min() and heatmaps.max() <= 1
    assert len(stages) == 1 and torch.equal(stages[-1], heatmaps)
    assert features.shape == (2, 24, h // 4, w // 4)
    channels = {"center": 1, "regress": 28, "heatmap": 14, "offset": 28, "box_scale": 2, "box_offset": 2}
    assert {k: v.shape[1] for k, v in heads.items()} == {k: channels[k] for k in heads}
    assert all(v.shape[2:] == (h // 4, w // 4) for v in heads.values())
    torch.testing.assert_close(torch.sigmoid(heads["heatmap"]), heatmaps)
    assert model.skeleton is None  # 14 joints: not the pretrained COCO-17 set


def test_rejects_sides_that_are_not_multiples_of_32(lightning):
    with pytest.raises(ValueError, match="multiples of 32"):
        lightning(torch.zeros(1, 3, 200, 192))


def test_channels_last_gives_the_same_output(lightning):
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        expected = lightning(x)
        model = build_model("movenet_lightning").eval()
        model.load_state_dict(lightning.state_dict())
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_forward_backward_reaches_every_parameter():
    model = build_model("movenet_multipose", num_keypoints=5, heads="all").train()
    heads = model.forward_heads(torch.randn(2, 3, 64, 96))
    sum(v.square().mean() for v in heads.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    loss = torch.nn.functional.mse_loss(model(torch.randn(2, 3, 64, 64)), torch.rand(2, 5, 16, 16))
    loss.backward()
    assert torch.isfinite(loss)


def test_activations_are_movenets_own_unless_chosen():
    from posekit.models.layers import HardMish

    def kinds(model):
        return {type(m) for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6, HardMish))}
    assert kinds(build_model("movenet_lightning", heads="all")) == {torch.nn.ReLU6, torch.nn.ReLU}
    assert kinds(build_model("movenet_lightning", heads="all", act="hardmish")) == {HardMish}


# ----------------------------------------------------------------------------------------------- TF geometry
def test_same_padding_of_stride2_convs_is_bottom_right_only():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert pad_same_stride2(x).tolist() == [[[[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]]
    # 3x3 box filter, stride 2, on 0..15: windows rows/cols {0,1,2} and {2,3,pad}
    image = torch.arange(16.0).view(1, 1, 4, 4)
    out = torch.nn.functional.conv2d(pad_same_stride2(image), torch.ones(1, 1, 3, 3), stride=2)
    assert out.view(2, 2).tolist() == [[45.0, 39.0], [66.0, 50.0]]


def test_upsampling_uses_half_pixel_centres():
    # output x samples input at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped at the border)
    out = upsample2x(torch.tensor([[[[0.0, 1.0]]]]))
    assert out[0, 0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]


def test_posekit_input_is_mapped_to_movenets_normalisation(lightning):
    rgb = np.array([[[0, 128, 255], [17, 200, 99]]], dtype=np.uint8)          # (1, 2, 3) HWC
    posekit_input = torch.from_numpy(normalize_image(rgb))[None]
    internal = posekit_input * lightning.input_scale + lightning.input_shift
    expected = rgb.astype(np.float64).transpose(2, 0, 1)[None] * MOVENET_NORM_SCALE - 1
    np.testing.assert_allclose(internal.numpy(), expected, atol=1e-6)
    raw = MoveNet(input_norm="movenet")
    assert torch.equal(raw.input_scale.flatten(), torch.ones(3)) and not raw.input_shift.any()
    assert "input_scale" not in lightning.state_dict()  # a property of the input convention, not a weight


# ----------------------------------------------------------------------------------------------- export
def test_onnx_export_through_posekit_equals_torch(tmp_path, lightning):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from posekit.codecs import HeatmapCodec
    from posekit.config import PoseConfig
    from posekit.inference.export import export_onnx, onnx_config

    config = PoseConfig(model="movenet_lightning", model_kwargs={}, num_keypoints=17,
                        codec=HeatmapCodec(input_size=(192, 192)).to_config(), input_size=(192, 192),
                        skeleton="coco", flip_index=tuple(range(17))).to_dict()
    out = export_onnx({"model": lightning.state_dict(), "config": config}, tmp_path / "movenet.onnx")
    assert onnx_config(out)["model"]["name"] == "movenet_lightning"
    x = torch.randn(2, 3, 192, 192)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = lightning(x).numpy()
    np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------- decoders
def logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).astype(np.float32)


def one_person_heads(h=8, w=8, centre=(3, 4), joints=((1, 2), (6, 5)), offsets=((0.25, 0.5), (-0.5, 0.0))):
    """Heads (batch 1, K = 2) of a person centred at ``centre`` with joints at integer cells ``joints``."""
    k = len(joints)
    center = np.full((1, 1, h, w), 0.01)
    center[0, 0, centre[0], centre[1]] = 0.9
    heatmap, regress, offset = np.full((1, k, h, w), 0.01), np.zeros((1, 2 * k, h, w)), np.zeros((1, 2 * k, h, w))
    for j, ((y, x), (dy, dx)) in enumerate(zip(joints, offsets)):
        heatmap[0, j, y, x] = 0.8
        regress[0, 2 * j:2 * j + 2, centre[0], centre[1]] = (y - centre[0], x - centre[1])
        offset[0, 2 * j:2 * j + 2, y, x] = (dy, dx)
    return {"center": logits(center), "heatmap": logits(heatmap), "regress": regress, "offset": offset}


def test_single_pose_decoding_of_hand_built_heads():
    keypoints = movenet_decode(one_person_heads())                      # 8x8 maps, 32x32 input: stride 4
    np.testing.assert_allclose(keypoints[0, :, :2], [[(2 + 0.5) * 4, (1 + 0.25) * 4], [5 * 4, (6 - 0.5) * 4]])
    np.testing.assert_allclose(keypoints[0, :, 2], 0.8, rtol=1e-5)


def test_single_pose_decoding_prefers_the_joint_near_the_regressed_position():
    heads = one_person_heads(h=16, w=16, centre=(8, 8), joints=((4, 4),), offsets=((0.0, 0.0),))
    heatmap = torch.sigmoid(torch.from_numpy(heads["heatmap"])).numpy()
    heatmap[0, 0, 14, 14] = 0.85                                         # a stronger peak, but far away
    heads["heatmap"] = logits(heatmap)
    np.testing.assert_allclose(movenet_decode(heads)[0, 0, :2], [16.0, 16.0])


def test_center_weight_peaks_at_the_map_centre():
    weight = center_weight(48, 48)
    assert np.unravel_index(weight.argmax(), weight.shape) == (24, 24)
    assert weight[24, 24] == np.float32(np.float16(1 / 1.8)) and np.array_equal(weight[24], weight[:, 24])


def test_local_peaks_keeps_only_5x5_maxima():
    x = np.zeros((1, 6, 6), np.float32)
    x[0, 1, 1], x[0, 2, 3], x[0, 5, 5] = 0.5, 0.7, 0.4
    assert np.argwhere(local_peaks(x)[0] > 0).tolist() == [[2, 3], [5, 5]]


def test_multipose_decoding_of_hand_built_heads():
    heads = one_person_heads(h=16, w=16, centre=(4, 4), joints=((2, 3), (6, 5)))
    heads["box_scale"] = np.zeros((1, 2, 16, 16), np.float32)
    heads["box_offset"] = np.zeros((1, 2, 16, 16), np.float32)
    heads["box_scale"][0, :, 4, 4] = (8.0, 6.0)                           # box h = 8, w = 6 cells around (4, 4)
    people, boxes, scores = movenet_multipose_decode(heads)
    assert people.shape == (1, 6, 2, 3) and boxes.shape == (1, 6, 4) and scores.shape == (1, 6)
    np.testing.assert_allclose(boxes[0, 0], [(4 - 3) * 4, 0 * 4, (4 + 3) * 4, (4 + 4) * 4])
    np.testing.assert_allclose(people[0, 0, :, :2], [[3.5 * 4, 2.25 * 4], [5 * 4, 5.5 * 4]], atol=1e-5)
    np.testing.assert_allclose(scores[0, 0], 0.9 * 0.8, rtol=1e-4)      # centre score x mean joint score
    assert scores[0, 0] > scores[0, 1:].max()


def test_decoders_reject_mismatched_heads():
    heads = one_person_heads()
    heads["offset"] = heads["offset"][:, :3]
    with pytest.raises(ValueError, match="head 'offset' has shape"):
        movenet_decode(heads)
    with pytest.raises(ValueError, match="missing \\['box_scale', 'box_offset'\\]"):
        movenet_multipose_decode(one_person_heads())


# ----------------------------------------------------------------------------------------------- training
def test_posekit_trainer_trains_movenet_unchanged(tmp_path, tiny_data):
    from posekit.engine.trainer import TrainConfig
    from posekit.methods import build_trainer

    cfg = TrainConfig(train=f"coco:{tiny_data}", val=f"coco:{tiny_data}", out=str(tmp_path / "run"),
                      model="movenet_lightning", input_size=(64, 64), epochs=1, batch_size=8, warmup_iters=1,
                      workers=0, max_iters_per_epoch=2, progress=False)
    result = build_trainer(cfg).fit()
    assert np.isfinite(result["loss"]) and "pck@0.2_torso" in result["val"]


def test_packed_output_splits_back_into_the_heads_and_decodes_like_the_heatmap_codec():
    from posekit.codecs import HeatmapCodec, MoveNetCodec
    from posekit.codecs.movenet import split_packed

    torch.manual_seed(0)
    model = build_model("movenet_lightning", num_keypoints=3, heads="all", output="packed").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        packed, heads = model(x), model.forward_heads(x)
    assert packed.shape == (2, 1 + 6 + 3 + 6, 16, 16)
    for name, part in split_packed(packed.numpy(), 3).items():
        np.testing.assert_array_equal(part, heads[name].numpy())
    coords, scores = MoveNetCodec((64, 64), 3, decode="argmax").decode(packed.numpy())
    ref_coords, ref_scores = HeatmapCodec((64, 64), (16, 16), decode="argmax").decode(torch.sigmoid(heads["heatmap"]).numpy())
    np.testing.assert_array_equal(coords, ref_coords)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)
    with pytest.raises(ValueError, match="packed needs heads='all'"):
        build_model("movenet_lightning", output="packed")
    with pytest.raises(ValueError, match="only decodes"):
        MoveNetCodec().encode(np.zeros((17, 2)), np.ones(17))


def test_logits_output_is_the_heatmap_head_before_its_sigmoid():
    model = build_model("movenet_lightning", num_keypoints=2, output="logits").eval()
    final = model.heads["heatmap"][1]
    with torch.no_grad():  # constant maps: the final 1x1 conv's bias alone
        final.weight.zero_()
        final.bias.copy_(torch.tensor([3.0, -1.0]))
        logits = model(torch.zeros(1, 3, 64, 64))
        split = model.split_trunk_head(final_conv=True)
        assert torch.equal(split.head(split.trunk(torch.zeros(1, 3, 64, 64))), logits)
    assert model.output_activation is None and build_model("movenet_lightning").output_activation == "sigmoid"
    assert logits.shape == (1, 2, 16, 16)
    assert torch.equal(logits[0, 0], torch.full((16, 16), 3.0)) and torch.equal(logits[0, 1], torch.full((16, 16), -1.0))
    assert [n for n, _ in split.head.named_children()] == ["output"]
    with pytest.raises(ValueError, match="'heatmap', 'logits' or 'packed'"):
        build_model("movenet_lightning", output="probabilities")
