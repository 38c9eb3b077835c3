"""ONNX export of coordinate heads: `posekit export` output gives the same raw outputs and keypoints as PyTorch."""
import numpy as np
import pytest
import torch

from posekit.codecs import IntegralCodec, RegressionCodec
from posekit.checkpoint import save_checkpoint
from posekit.inference.export import onnx_config
from posekit.inference.predictor import Predictor
from posekit.models.heads import build_pose_model
from posekit.skeletons import get_skeleton

pytest.importorskip("onnxruntime")


def checkpoint(path, name, kwargs, head, codec):
    torch.manual_seed(0)
    model = build_pose_model(name, 14, kwargs, head)
    with torch.no_grad():  # BN statistics of real-looking activations, so the deploy form is non-trivial
        model.train()(torch.randn(4, 3, 64, 64))
    config = {"model": {"name": name, "kwargs": {"num_keypoints": 14, **kwargs}}, "codec": codec.to_config(),
              "input_size": [64, 64], "num_keypoints": 14, "skeleton": "lsp",
              "flip_index": get_skeleton("lsp").flip_index.tolist(), "padding": 1.25}
    if head != "heatmap":
        config["head"] = {"type": head, "kwargs": {}}
    save_checkpoint(path, {"model": model.eval().state_dict(), "config": config})
    return path


@pytest.mark.parametrize("name,kwargs,head,codec", [
    ("repvgg_lite", {"widths": [8, 8, 16, 16, 32], "depths": [1, 1, 1, 1, 1], "deconv_channels": 16}, "rle",
     RegressionCodec((64, 64))),
    ("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}, "regression", RegressionCodec((64, 64))),
    ("simplebaseline_r18", {"width": 0.25, "deconv_channels": 32}, "dsnt", IntegralCodec((64, 64))),
])
def test_onnx_and_torch_agree_for_coordinate_heads(tmp_path, name, kwargs, head, codec):
    from posekit.cli import main
    ckpt = checkpoint(tmp_path / "model.pt", name, kwargs, head, codec)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "model.onnx")]) == 0
    assert onnx_config(tmp_path / "model.onnx")["head"]["type"] == head
    by_torch, by_onnx = Predictor.load(ckpt), Predictor.load(tmp_path / "model.onnx")
    assert by_onnx.backend == "onnx" and type(by_onnx.codec) is type(codec)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(120, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 40, 80], [0, 0, 90, 120]], np.float32)
    crops = np.stack([view[0] for view in by_torch.prepare(image, boxes[0])])
    expected = by_torch.run_network(crops)
    got = by_onnx.run_network(crops)
    assert got.shape == expected.shape == ((2, 14, 4) if head == "rle" else (2, 14, 2) if head == "regression"
                                           else (2, 14, 16, 16))
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))
    torch_kp, onnx_kp = by_torch.predict(image, boxes), by_onnx.predict(image, boxes)
    assert torch_kp.shape == onnx_kp.shape == (2, 14, 3) and np.isfinite(torch_kp).all()
    np.testing.assert_allclose(onnx_kp, torch_kp, atol=1e-3)
