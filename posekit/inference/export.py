"""ONNX export. The posekit config travels inside the .onnx file (metadata 'posekit_config', the JSON of
:meth:`posekit.config.PoseConfig.to_dict`), so an exported model runs with ONNX Runtime alone:
``Predictor.from_onnx(path)``. Any head exports: the graph's one output is the network's raw output
(heatmaps, DSNT logits, or (N, K, 2|4) coordinates), which the stored codec decodes."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from posekit.checkpoint import CheckpointError, load_model
from posekit.optional import import_extra


def export_onnx(checkpoint, out, *, opset: int = 17, batch: int = 1) -> Path:
    """Write the checkpoint's network (image crops (N, 3, H, W) -> raw outputs) as ONNX with a dynamic batch axis."""
    onnx = import_extra("onnx", "onnx", "ONNX export")
    model, config = load_model(checkpoint)
    if hasattr(model, "reparameterize"):  # deploy form: fewer, plain convolutions
        model = model.reparameterize().eval()
    w, h = config.input_size
    dummy = torch.zeros(batch, 3, h, w)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(out), input_names=["image"], output_names=["output"],
                      dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset, dynamo=False)
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "posekit_config", json.dumps(config.to_dict())
    onnx.save(proto, str(out))
    return out


def onnx_config(path) -> dict:
    """The posekit config stored in an exported model: the dict layout (``PoseConfig.from_dict`` reads it).
    A file that is not an ONNX model, or one posekit did not export, is a CheckpointError naming it."""
    onnx = import_extra("onnx", "onnx", "Reading an .onnx model")
    if not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError, onnx's own errors: the bytes are not an ONNX model
        raise CheckpointError(path, f"not an ONNX model ({type(err).__name__}: "
                                    f"{next(iter(str(err).splitlines()), '')})") from None
    for entry in proto.metadata_props:
        if entry.key == "posekit_config":
            try:
                return json.loads(entry.value)
            except ValueError as err:
                raise CheckpointError(path, f"its posekit_config metadata is not JSON ({err})") from None
    raise CheckpointError(path, "no posekit_config metadata: not exported by `posekit export`")
