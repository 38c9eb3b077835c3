"""Exact weight import of Google's MoveNet ONNX graphs into the native :class:`~posekit.models.backbones.movenet.MoveNet`.

Every convolution of the graph is matched to its native module by the Keras layer name the converters kept
(``block_3_depthwise``, ``conv2d_1``, ``kpt_heatmap_0``, ...; tf2onnx renames some depthwise nodes
``Conv__N``, and those are named after the activation that consumes them). Shapes, kernel geometry
(incl. TF's bottom/right "SAME" padding at stride 2), the bilinear half-pixel resizes and the input
normalisation are checked against the native model; anything that does not fit is a ``ValueError`` naming
the file and the layer. The weights are copied unchanged (BatchNorm is already folded in the graphs).

``python -m posekit.models.movenet_import movenet-lightning.onnx --out movenet_lightning.pt`` writes a
posekit checkpoint (:func:`movenet_checkpoint`).
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from posekit.models.backbones.movenet import MOVENET_NORM_SCALE, MOVENET_VARIANTS, MoveNet
from posekit.models.registry import build_model

__all__ = ["import_movenet", "movenet_checkpoint", "retarget_checkpoint", "detect_variant", "main", "ONNX_HEAD_SCOPES"]

#: native head name -> the head's name scope inside the graphs
ONNX_HEAD_SCOPES = {"center": "center_0", "regress": "kpt_regress_0", "heatmap": "kpt_heatmap_0",
                    "offset": "kpt_offset_0", "box_scale": "box_scale_0", "box_offset": "box_offset_0"}
_HEAD_ROLES = ("depthwise", "pointwise", "output")      # a head's convs in graph order
_TRUNK_LAYER = re.compile(r"/model/([^/]+)/")           # MobileNetV2 (Keras model "model")
_FPN_LAYER = re.compile(r"/model_1/([^/]+)/")           # FPN layers of the feature extractor
_HEAD_SCOPE = re.compile(r"(?:^|/)(" + "|".join(ONNX_HEAD_SCOPES.values()) + r")/")
_LICENSE = "Apache-2.0"


# ----------------------------------------------------------------------------------------------- reading
def _load_graph(path: Path):
    import onnx
    from onnx import numpy_helper

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # protobuf raises DecodeError / RuntimeError with long messages
        raise ValueError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # constants may also live in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return graph, tensors


def _attributes(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _consumers(graph) -> dict[str, list]:
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _layer_name(node, consumers) -> str:
    """The Keras layer a Conv node came from: its output's name scope, else its consumer's (``Conv__N`` nodes)."""
    candidates = [node.output[0]] + [c.name for c in consumers.get(node.output[0], [])]
    for text in candidates:
        for pattern in (_TRUNK_LAYER, _FPN_LAYER):
            match = pattern.search(text)
            if match and match.group(1) != "model":
                return match.group(1)
    return ""


def onnx_convs(graph, tensors, path: Path) -> dict[str, dict]:
    """Every Conv node keyed like :func:`native_convs`: ``{key: {"weight", "bias", "attrs", "node"}}``."""
    consumers = _consumers(graph)
    convs, head_counts = {}, {}
    for node in graph.node:  # ONNX lists nodes in topological order
        if node.op_type != "Conv":
            continue
        scope = _HEAD_SCOPE.search(node.output[0])
        if scope:
            role_index = head_counts.get(scope.group(1), 0)
            head_counts[scope.group(1)] = role_index + 1
            if role_index >= len(_HEAD_ROLES):
                raise ValueError(f"{path}: head {scope.group(1)} has more than {len(_HEAD_ROLES)} convolutions")
            key = f"{scope.group(1)}/{_HEAD_ROLES[role_index]}"
        else:
            key = _layer_name(node, consumers)
        if not key:
            raise ValueError(f"{path}: not a MoveNet graph: Conv node {node.name!r} has no MobileNetV2/FPN/head "
                             f"layer name")
        if key in convs:
            raise ValueError(f"{path}: two Conv nodes claim layer {key!r} (the second is {node.name!r})")
        for name in node.input[1:]:
            if name not in tensors:
                raise ValueError(f"{path}: Conv {node.name!r} takes a computed weight {name!r}, not a constant")
        convs[key] = {"weight": tensors[node.input[1]], "node": node.name, "attrs": _attributes(node),
                      "bias": tensors[node.input[2]] if len(node.input) > 2 and node.input[2] else None}
    return convs


# ----------------------------------------------------------------------------------------------- native side
def _conv(module: nn.Module) -> nn.Conv2d:
    """The Conv2d of a plain conv or of a (pad, conv) stride-2 pair."""
    return module if isinstance(module, nn.Conv2d) else module[-1]


def native_convs(model: MoveNet) -> dict[str, nn.Conv2d]:
    """The native model's convolutions keyed by the graph's Keras layer names (see :func:`onnx_convs`)."""
    convs = {"Conv1_relu": _conv(model.trunk.stem[0])}
    for i, block in enumerate(model.trunk.blocks):
        prefix = f"block_{i}" if i else "expanded_conv"
        if i:
            convs[f"{prefix}_expand_relu"] = block.expand[0]
        convs[f"{prefix}_depthwise"] = _conv(block.depthwise[0])
        convs[f"{prefix}_project_BN"] = block.project
    convs["out_relu"] = model.trunk.last[0]
    for lateral, name in zip(model.fpn.lateral, ("conv2d_3", "conv2d_2", "conv2d_1", "conv2d")):
        convs[name] = lateral
    for smooth, suffix in zip(model.fpn.smooth, ("", "_1", "_2")):
        convs[f"separable_conv2d{suffix}"] = _conv(smooth[0])
        convs[f"re_lu{suffix}"] = smooth[1]
    for name, head in model.heads.items():
        scope = ONNX_HEAD_SCOPES[name]
        convs.update({f"{scope}/depthwise": _conv(head[0][0]), f"{scope}/pointwise": head[0][1],
                      f"{scope}/output": head[1]})
    return convs


# ----------------------------------------------------------------------------------------------- checks
def _expected_pads(conv: nn.Conv2d) -> list[int]:
    """ONNX ``pads`` (top, left, bottom, right) of a native conv: TF SAME = bottom/right only at stride 2."""
    if conv.kernel_size == (1, 1):
        return [0, 0, 0, 0]
    return [0, 0, 1, 1] if conv.stride == (2, 2) else [1, 1, 1, 1]


def _check_geometry(key: str, conv: nn.Conv2d, attrs: dict, path: Path) -> None:
    strides = list(attrs.get("strides", [1, 1]))
    group = int(attrs.get("group", 1))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    # SAME_UPPER puts the odd pixel after, which is the native padding on the even sizes MoveNet sees
    pads_ok = auto_pad == "SAME_UPPER" or list(attrs.get("pads", [0, 0, 0, 0])) == _expected_pads(conv)
    if strides != list(conv.stride) or group != conv.groups or not pads_ok or list(attrs.get("dilations", [1, 1])) != [1, 1]:
        raise ValueError(f"{path}: layer {key}: strides {strides}, group {group}, pads {attrs.get('pads')} "
                         f"auto_pad {auto_pad} differ from the native conv (stride {list(conv.stride)}, "
                         f"group {conv.groups}, pads {_expected_pads(conv)})")


def _check_resizes(graph, path: Path) -> None:
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    for node in resizes:
        attrs = _attributes(node)
        mode, coords = attrs.get("mode", b"nearest"), attrs.get("coordinate_transformation_mode", b"half_pixel")
        if (mode, coords) != (b"linear", b"half_pixel"):
            raise ValueError(f"{path}: Resize {node.name!r} is {mode.decode()}/{coords.decode()}, the native FPN "
                             f"upsamples bilinear/half_pixel")
    if len(resizes) != 3:
        raise ValueError(f"{path}: {len(resizes)} Resize nodes, the MoveNet FPN has 3")


def input_affine(graph, tensors, network_input: str, path: Path) -> tuple[float, float]:
    """(scale, offset) of the graph's pre-processing ``x = rgb * scale + offset``, composed from the
    elementwise ops between the graph input and the network input; it must be the same for all channels."""
    producers = {out: node for node in graph.node for out in node.output}
    scale, offset, name = np.ones(3), np.zeros(3), network_input
    ops = []
    while name in producers:
        node = producers[name]
        ops.append(node)
        name = node.input[0]
    for node in reversed(ops):  # graph input -> network input
        const = [tensors[i] for i in node.input[1:] if i in tensors]
        c = np.broadcast_to(np.asarray(const[0], np.float64).reshape(-1), (3,)) if const else None
        if node.op_type == "Sub":
            offset = offset - c
        elif node.op_type == "Add":
            offset = offset + c
        elif node.op_type in ("Mul", "Div"):
            factor = c if node.op_type == "Mul" else 1.0 / c
            scale, offset = scale * factor, offset * factor
        elif node.op_type not in ("Cast", "Split", "Squeeze", "Unsqueeze", "Transpose", "Identity"):
            raise ValueError(f"{path}: unexpected pre-processing op {node.op_type} ({node.name!r})")
    if np.ptp(scale) or np.ptp(offset):
        raise ValueError(f"{path}: per-channel input normalisation (scale {scale}, offset {offset}) is not MoveNet's")
    return float(scale[0]), float(offset[0])


# ----------------------------------------------------------------------------------------------- import
def detect_variant(convs: dict[str, dict], path: Path | str = "model") -> str:
    """'lightning' | 'thunder' | 'multipose' from the graph: box heads, else the stem's width."""
    if "box_scale_0/output" in convs:
        return "multipose"
    stem = convs.get("Conv1_relu", {}).get("weight")
    by_stem = {32: "lightning", 56: "thunder"}  # make_divisible(32 * width) for width 1.0 / 1.75
    if stem is None or stem.shape[0] not in by_stem:
        raise ValueError(f"{path}: not a MoveNet graph this importer knows (stem "
                         f"{None if stem is None else stem.shape}); expected Lightning, Thunder or MultiPose")
    return by_stem[stem.shape[0]]


def _graph_input_size(graph) -> tuple[int, int] | None:
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    return (dims[2], dims[1]) if len(dims) == 4 and dims[1] > 0 and dims[2] > 0 else None  # NHWC -> (W, H)


def import_movenet(onnx_path, variant: str | None = None) -> tuple[MoveNet, dict]:
    """MoveNet ONNX file -> (native model in eval mode with the graph's weights, info dict).

    ``variant`` ('lightning' | 'thunder' | 'multipose') is detected from the graph when None, and checked
    against it otherwise. ``info``: variant, width, multipose, num_keypoints, input_size (W, H), convs,
    parameters, onnx (file name), sha256, input_scale/input_offset of the graph's normalisation.
    """
    path = Path(onnx_path)
    graph, tensors = _load_graph(path)
    convs = onnx_convs(graph, tensors, path)
    detected = detect_variant(convs, path)
    if variant is not None and variant != detected:
        raise ValueError(f"{path}: asked for MoveNet {variant!r} but the graph is {detected!r}")
    if "kpt_heatmap_0/output" not in convs:
        raise ValueError(f"{path}: no keypoint heatmap head (kpt_heatmap_0) in the graph")
    num_keypoints = int(convs["kpt_heatmap_0/output"]["weight"].shape[0])
    model = build_model(f"movenet_{detected}", num_keypoints=num_keypoints, heads="all").eval()
    native = native_convs(model)
    missing, unexpected = sorted(set(native) - set(convs)), sorted(set(convs) - set(native))
    if missing or unexpected:
        raise ValueError(f"{path}: layers do not match the native {detected} model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        for key, conv in native.items():
            entry = convs[key]
            if tuple(entry["weight"].shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path}: layer {key}: weight {tuple(entry['weight'].shape)} does not fit the "
                                 f"native {tuple(conv.weight.shape)}")
            if (entry["bias"] is None) != (conv.bias is None):
                raise ValueError(f"{path}: layer {key}: bias {'missing' if entry['bias'] is None else 'unexpected'}")
            _check_geometry(key, conv, entry["attrs"], path)
            conv.weight.copy_(torch.tensor(entry["weight"], dtype=torch.float32))
            if conv.bias is not None:
                conv.bias.copy_(torch.tensor(entry["bias"], dtype=torch.float32).reshape(-1))
    _check_resizes(graph, path)
    stem_node = next(n for n in graph.node if n.name == convs["Conv1_relu"]["node"])
    scale, offset = input_affine(graph, tensors, stem_node.input[0], path)
    if abs(scale - MOVENET_NORM_SCALE) > 1e-9 or abs(offset + 1.0) > 1e-9:
        raise ValueError(f"{path}: input normalisation rgb * {scale} + {offset} is not MoveNet's "
                         f"rgb * {MOVENET_NORM_SCALE} - 1")
    side = MOVENET_VARIANTS[detected]["input_size"]
    info = {"variant": detected, "width": MOVENET_VARIANTS[detected]["width"],
            "multipose": MOVENET_VARIANTS[detected]["multipose"], "num_keypoints": num_keypoints,
            "input_size": list(_graph_input_size(graph) or (side, side)), "convs": len(native),
            "parameters": sum(p.numel() for p in model.parameters()), "onnx": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "input_scale": scale, "input_offset": offset}
    return model, info


def movenet_checkpoint(onnx_path, variant: str | None = None) -> dict:
    """MoveNet ONNX file -> posekit checkpoint payload ``{"model": state_dict, "config": PoseConfig dict}``.

    The model keeps all of MoveNet's heads and gives them packed (``heads="all", output="packed"``), and
    the codec is :class:`~posekit.codecs.movenet.MoveNetCodec` with the graphs' own decoding (``decode``
    "dark" / "argmax" read the heatmaps instead); COCO-17 skeleton and flip index; box padding 1.25; plus a
    ``source`` record: the ONNX file name, its sha256 and the Apache-2.0 licence of Google's weights.
    """
    from posekit.codecs import MoveNetCodec
    from posekit.config import DEFAULT_PADDING, PoseConfig
    from posekit.skeletons import get_skeleton

    model, info = import_movenet(onnx_path, variant)
    input_size = tuple(info["input_size"])  # MultiPose's graph is dynamic: its usual 256x256
    skeleton = get_skeleton("coco") if info["num_keypoints"] == 17 else None
    source = {"onnx": info["onnx"], "sha256": info["sha256"], "license": _LICENSE, "author": "Google",
              "model": f"MoveNet {info['variant']}", "importer": "posekit.models.movenet_import",
              "notice": "MoveNet by Google, Apache License 2.0; weights copied unchanged from the ONNX graph. "
                        "Derived models keep this notice and say where they came from."}
    config = PoseConfig(model=f"movenet_{info['variant']}", model_kwargs={"heads": "all", "output": "packed"},
                        num_keypoints=info["num_keypoints"],
                        codec=MoveNetCodec(input_size=input_size, num_keypoints=info["num_keypoints"],
                                           multipose=info["variant"] == "multipose").to_config(),
                        input_size=input_size, skeleton=skeleton.name if skeleton else "unknown",
                        flip_index=tuple(int(i) for i in (skeleton.flip_index if skeleton else range(info["num_keypoints"]))),
                        padding=DEFAULT_PADDING, extra={"source": source})
    return {"model": model.state_dict(), "config": config.to_dict()}


def retarget_checkpoint(payload: dict, skeleton: str) -> dict:
    """An imported COCO-17 checkpoint -> a trainable heatmap model of another keypoint set: the heatmap
    head only (``heads="heatmap"``), its channels moved by joint name with
    :func:`~posekit.models.keypoint_transfer.transfer_keypoint_state` (e.g. LSP's neck from the shoulders,
    its head top from the face joints), posekit's HeatmapCodec (sigma 2, DARK). A starting point for
    fine-tuning (``posekit train --init``), with the same ``source`` record."""
    from posekit.codecs import HeatmapCodec
    from posekit.config import PoseConfig
    from posekit.models.keypoint_transfer import transfer_keypoint_state
    from posekit.skeletons import get_skeleton

    config = PoseConfig.from_dict(payload["config"])
    source, target = get_skeleton(config.skeleton), get_skeleton(skeleton)
    model = build_model(config.model, num_keypoints=target.num_keypoints)
    state = transfer_keypoint_state(payload["model"], model, source, target)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own})
    new = config.replace(model_kwargs={}, num_keypoints=target.num_keypoints, skeleton=target.name,
                         flip_index=tuple(int(i) for i in target.flip_index),
                         codec=HeatmapCodec(input_size=config.input_size, sigma=2.0, decode="dark").to_config(),
                         extra={**config.extra, "retargeted": {"from": source.name, "to": target.name}})
    return {"model": model.state_dict(), "config": new.to_dict()}


def _fail(message) -> int:
    """One-line error on stderr (exit code 2): the CLI never shows a traceback for bad input."""
    lines = str(message).splitlines()
    print(f"error: {lines[0] if lines else 'failed'}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """CLI: ``SRC.onnx --out OUT.pt [--variant V]``; bad input is a one-line error naming the file (exit 2)."""
    parser = argparse.ArgumentParser(prog="python -m posekit.models.movenet_import",
                                     description="Import a MoveNet ONNX model as a posekit checkpoint.")
    parser.add_argument("onnx", help="movenet-lightning.onnx, movenet-thunder.onnx or movenet-multipose.onnx")
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--variant", choices=sorted(MOVENET_VARIANTS), default=None,
                        help="expected variant (default: detected from the graph)")
    parser.add_argument("--skeleton", default=None, help="retarget to this keypoint set for fine-tuning "
                        "(e.g. lsp: heatmap head only, joints moved by name; default: COCO-17 as released)")
    args = parser.parse_args(argv)
    from posekit.checkpoint import save_checkpoint
    try:
        payload = movenet_checkpoint(args.onnx, args.variant)
        if args.skeleton:
            payload = retarget_checkpoint(payload, args.skeleton)
    except ImportError as err:
        return _fail(f"{args.onnx}: reading ONNX needs the 'onnx' package ({err.name})")
    except (ValueError, OSError) as err:
        return _fail(err if str(args.onnx) in str(err) else f"{args.onnx}: {err}")
    try:
        save_checkpoint(args.out, payload)
    except OSError as err:
        return _fail(f"{args.out}: cannot write the checkpoint ({err.strerror or err})")
    source = payload["config"]["source"]
    print(f"wrote {args.out}: {payload['config']['model']['name']} from {source['onnx']} (sha256 {source['sha256'][:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
