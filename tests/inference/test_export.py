"""ONNX export: the exported network gives the same keypoints as PyTorch (within 1e-3 px)."""
import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec
from posekit.checkpoint import save_checkpoint
from posekit.inference.export import export_onnx, onnx_config
from posekit.inference.predictor import Predictor
from posekit.models import build_model
from posekit.skeletons import get_skeleton

pytest.importorskip("onnxruntime")


def tiny_checkpoint(path, name="simplebaseline_r18", **kwargs):
    torch.manual_seed(0)
    skeleton = get_skeleton("lsp")
    model = build_model(name, num_keypoints=14, **kwargs)
    codec = HeatmapCodec(input_size=(64, 64), sigma=2.0)
    config = {"model": {"name": name, "kwargs": {"num_keypoints": 14, **kwargs}}, "codec": codec.to_config(),
              "input_size": [64, 64], "num_keypoints": 14, "skeleton": "lsp",
              "flip_index": skeleton.flip_index.tolist(), "padding": 1.25}
    save_checkpoint(path, {"model": model.state_dict(), "config": config})
    return path


@pytest.mark.parametrize("name,kwargs", [("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}),
                                         ("hourglass_2x64", {})])
def test_onnx_and_torch_predict_the_same_keypoints(tmp_path, name, kwargs):
    ckpt = tiny_checkpoint(tmp_path / "model.pt", name, **kwargs)
    onnx_path = export_onnx(ckpt, tmp_path / "model.onnx")
    assert onnx_config(onnx_path)["model"]["name"] == name
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(120, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 40, 80], [0, 0, 90, 120]], np.float32)
    # Random weights give flat, noisy maps on which DARK's Newton step is ill-conditioned and amplifies
    # float rounding; argmax decoding isolates what this test is about: the two runtimes agree.
    torch_predictor, onnx_predictor = Predictor.load(ckpt, decode="argmax"), Predictor.load(onnx_path, decode="argmax")
    crops = np.stack([view[0] for view in torch_predictor.prepare(image, boxes[0])])
    expected = torch_predictor.run_network(crops)
    np.testing.assert_allclose(onnx_predictor.run_network(crops), expected, atol=1e-5 * np.abs(expected).max())
    by_torch = torch_predictor.predict(image, boxes)
    by_onnx = onnx_predictor.predict(image, boxes)
    assert by_torch.shape == by_onnx.shape == (2, 14, 3)
    np.testing.assert_allclose(by_onnx[..., :2], by_torch[..., :2], atol=1e-3)
    np.testing.assert_allclose(by_onnx[..., 2], by_torch[..., 2], atol=1e-4)


def test_onnx_config_refuses_a_foreign_model(tmp_path):
    import onnx
    from onnx import helper, TensorProto
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="posekit_config"):
        onnx_config(tmp_path / "foreign.onnx")
