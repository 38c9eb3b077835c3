"""MoveNet against Google's released ONNX graphs (../shared/models): exact weight import, raw heads,
decoded keypoints and boxes, checkpoint and CLI. Skipped when the shared models are absent; the tests that
need no shared data are in test_movenet_arch.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).parents[2]
MODELS = ROOT / ".." / "shared" / "models"
LSPET = ROOT / ".." / "shared" / "datasets" / "lspet"
VARIANTS = {"lightning": 192, "thunder": 256, "multipose": 256}
LSPET_IMAGES = (10, 20, 30, 40, 50, 60, 70, 80)      # val-split images (number % 10 == 0)
MOVENET_SCALE = np.float32(0.007843017578125)         # the graphs' 1 / 127.5 (float16)

pytestmark = [pytest.mark.shared_data,
              pytest.mark.skipif(not all((MODELS / f"movenet-{v}.onnx").is_file() for v in VARIANTS),
                                 reason=f"MoveNet ONNX models not available in {MODELS}")]
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason=f"LSPET not available in {LSPET}")

from posekit.codecs.movenet import movenet_decode, movenet_multipose_decode  # noqa: E402
from posekit.data.transforms import normalize_image  # noqa: E402
from posekit.checkpoint import build_from_checkpoint  # noqa: E402
from posekit.models.movenet_import import ONNX_HEAD_SCOPES, import_movenet, main, movenet_checkpoint  # noqa: E402


def onnx_path(variant: str) -> Path:
    return MODELS / f"movenet-{variant}.onnx"


@pytest.fixture(scope="module")
def imported():
    """variant -> (native model, info), imported once per module."""
    cache = {}

    def get(variant):
        if variant not in cache:
            cache[variant] = import_movenet(onnx_path(variant))
        return cache[variant]
    return get


@pytest.fixture(scope="module")
def lspet_crops():
    """size -> (8, size, size, 3) uint8 crops around LSPET people (posekit's top-down crop, padding 1.25)."""
    from posekit.data.formats.lsp import load_lsp_joints
    from posekit.data.io import read_image
    from posekit.data.transforms import box_to_center_scale, crop_matrix, warp_image

    coords, visible, _ = load_lsp_joints(LSPET / "joints.mat")

    def crops(size: int) -> np.ndarray:
        out = []
        for number in LSPET_IMAGES:
            xy = coords[number - 1][visible[number - 1]]
            (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
            center, wh = box_to_center_scale(np.array([x0, y0, x1 - x0, y1 - y0]), 1.0, 1.25)
            image = read_image(LSPET / "images" / f"im{number:05d}.jpg")
            out.append(warp_image(image, crop_matrix(center, wh, (size, size)), (size, size)))
        return np.stack(out)
    return crops


def head_tensors(graph) -> dict[str, str]:
    """head name -> the graph's raw head output (the BiasAdd of each head's last conv)."""
    found = {}
    for name, scope in ONNX_HEAD_SCOPES.items():
        convs = [n for n in graph.node if n.op_type == "Conv" and n.output[0].startswith(f"StatefulPartitionedCall/{scope}/")]
        if convs:
            found[name] = convs[-1].output[0]
    return found


@pytest.fixture(scope="module")
def head_subgraphs(tmp_path_factory):
    """variant -> (ORT session of the extracted network, its input name, {head: output name})."""
    cache, folder = {}, tmp_path_factory.mktemp("movenet_subgraphs")

    def get(variant):
        if variant not in cache:
            graph = onnx.load(str(onnx_path(variant))).graph
            start = next(n for n in graph.node if n.op_type == "Transpose").output[0]
            heads = head_tensors(graph)
            out = folder / f"{variant}.onnx"
            onnx.utils.extract_model(str(onnx_path(variant)), str(out), [start], list(heads.values()))
            cache[variant] = (ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]), start, heads)
        return cache[variant]
    return get


def compare_heads(model, subgraph, rgb: np.ndarray) -> dict[str, tuple[float, float]]:
    """rgb (N, H, W, 3) uint8 -> {output: (max |torch - ORT|, max |ORT|)} over the batch, for every raw head
    and for the probabilities posekit consumes (``sigmoid_heatmap``, ``sigmoid_center``)."""
    session, start, heads = subgraph
    with torch.no_grad():
        native = model.forward_heads(torch.from_numpy(np.stack([normalize_image(im) for im in rgb])))
    diffs, peaks = {}, {}
    for index, image in enumerate(rgb):
        x = (image.astype(np.float32) * MOVENET_SCALE - 1).transpose(2, 0, 1)[None].copy()
        ref = dict(zip(heads, session.run(list(heads.values()), {start: x})))
        pairs = {name: (native[name][index:index + 1].numpy(), value) for name, value in ref.items()}
        for name in ("heatmap", "center"):
            ours, theirs = pairs[name]
            pairs[f"sigmoid_{name}"] = (torch.sigmoid(torch.from_numpy(ours)).numpy(),
                                        torch.sigmoid(torch.from_numpy(theirs)).numpy())
        for name, (ours, theirs) in pairs.items():
            diffs[name] = max(diffs.get(name, 0.0), float(np.abs(ours - theirs).max()))
            peaks[name] = max(peaks.get(name, 0.0), float(np.abs(theirs).max()))
    return {name: (diffs[name], peaks[name]) for name in diffs}


def assert_heads_close(result: dict[str, tuple[float, float]]) -> None:
    """Probabilities within 1e-4; logits within 1e-4 + 1e-5 x their range: the float32 floor (ORT itself
    is ~1e-6 of the range away from a float64 evaluation; Thunder's logits reach ~120)."""
    for name, (diff, peak) in result.items():
        tol = 1e-4 if name.startswith("sigmoid_") else 1e-4 + 1e-5 * peak
        assert diff <= tol, f"{name}: max |torch - onnxruntime| = {diff:.2e} > {tol:.2e} (range {peak:.1f})"


# ----------------------------------------------------------------------------------------------- (a) heads
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_heads_equal_onnxruntime_on_random_input(variant, imported, head_subgraphs):
    model, info = imported(variant)
    assert info["variant"] == variant
    size = VARIANTS[variant]
    rgb = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    result = compare_heads(model, head_subgraphs(variant), rgb)
    assert set(result) >= set(model.heads)
    assert_heads_close(result)


@needs_lspet
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_heads_equal_onnxruntime_on_lspet(variant, imported, head_subgraphs, lspet_crops):
    model, _ = imported(variant)
    assert_heads_close(compare_heads(model, head_subgraphs(variant), lspet_crops(VARIANTS[variant])[:2]))


# ----------------------------------------------------------------------------------------------- (b) pipeline
@pytest.fixture(scope="module")
def checkpoint_models():
    """variant -> (model rebuilt from the imported checkpoint, its config, the full-graph ORT session)."""
    cache = {}

    def get(variant):
        if variant not in cache:
            model, config = build_from_checkpoint(movenet_checkpoint(onnx_path(variant)))
            cache[variant] = (model, config, ort.InferenceSession(str(onnx_path(variant)),
                                                                  providers=["CPUExecutionProvider"]))
        return cache[variant]
    return get


def native_heads(model, crops: np.ndarray) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model.forward_heads(torch.from_numpy(np.stack([normalize_image(c) for c in crops])))


@needs_lspet
@pytest.mark.parametrize("variant", ["lightning", "thunder"])
def test_single_pose_pipeline_equals_full_graph(variant, checkpoint_models, lspet_crops):
    model, config, session = checkpoint_models(variant)
    crops = lspet_crops(VARIANTS[variant])
    keypoints = movenet_decode(native_heads(model, crops), input_size=tuple(config["input_size"]))
    for crop, ours in zip(crops, keypoints):
        ref = session.run(None, {"input:0": crop[None].astype(np.int32)})[0][0, 0]   # (17, 3) y, x, score
        h, w = crop.shape[:2]
        np.testing.assert_allclose(ours[:, 0], ref[:, 1] * w, atol=0.5)
        np.testing.assert_allclose(ours[:, 1], ref[:, 0] * h, atol=0.5)
        np.testing.assert_allclose(ours[:, 2], ref[:, 2], atol=1e-3)


@needs_lspet
def test_multipose_pipeline_equals_full_graph(checkpoint_models, lspet_crops):
    model, _, session = checkpoint_models("multipose")
    crops = lspet_crops(256)
    people, boxes, scores = movenet_multipose_decode(native_heads(model, crops))
    assert people.shape == (len(crops), 6, 17, 3) and boxes.shape == (len(crops), 6, 4)
    for crop, ours, box, score in zip(crops, people, boxes, scores):
        ref = session.run(None, {"input:0": crop[None].astype(np.int32)})[0][0]      # (6, 56)
        joints = ref[:, :51].reshape(6, 17, 3)
        np.testing.assert_allclose(ours[..., 0], joints[..., 1] * 256, atol=0.5)
        np.testing.assert_allclose(ours[..., 1], joints[..., 0] * 256, atol=0.5)
        np.testing.assert_allclose(ours[..., 2], joints[..., 2], atol=1e-3)
        np.testing.assert_allclose(box, ref[:, [52, 51, 54, 53]] * 256, atol=1.0)
        np.testing.assert_allclose(score, ref[:, 55], atol=1e-3)
    assert scores[:, 0].max() > 0.2, "some crop should hold a confidently detected person"


# ----------------------------------------------------------------------------------------------- import
def test_checkpoint_config_and_provenance(checkpoint_models):
    from posekit.config import PoseConfig
    from posekit.skeletons import get_skeleton

    _, config, _ = checkpoint_models("lightning")
    assert config["model"] == {"name": "movenet_lightning",
                               "kwargs": {"num_keypoints": 17, "heads": "all", "output": "packed"}}
    assert config["input_size"] == [192, 192]
    assert config["codec"] == {"type": "MoveNetCodec", "input_size": [192, 192], "num_keypoints": 17,
                               "decode": "movenet", "multipose": False}
    assert config["skeleton"] == "coco" and config["flip_index"] == get_skeleton("coco").flip_index.tolist()
    assert config["padding"] == 1.25 and config["version"] == 2
    source = config["source"]
    assert source["license"] == "Apache-2.0" and source["onnx"] == "movenet-lightning.onnx"
    sums = (MODELS / "SHA256SUMS").read_text() if (MODELS / "SHA256SUMS").is_file() else ""
    if "movenet-lightning.onnx" in sums:
        assert source["sha256"] in sums
    assert PoseConfig.from_dict(config).extra["source"] == source


def test_import_detects_variants_and_rejects_the_wrong_one(imported):
    assert imported("thunder")[1]["width"] == 1.75 and imported("multipose")[1]["multipose"]
    with pytest.raises(ValueError, match="graph is 'lightning'"):
        import_movenet(onnx_path("lightning"), variant="thunder")


def test_import_names_the_layer_whose_shape_does_not_fit(tmp_path):
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path("lightning")))
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    weight = next(t for t in proto.graph.initializer if t.name == stem.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, :2, :2].copy(), weight.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(ValueError, match=r"broken\.onnx: layer Conv1_relu: weight \(32, 3, 2, 2\)"):
        import_movenet(broken)


def test_cli_writes_a_checkpoint_and_reports_bad_files_in_one_line(tmp_path, capsys):
    out = tmp_path / "lightning.pt"
    assert main([str(onnx_path("lightning")), "--out", str(out)]) == 0
    model, config = build_from_checkpoint(out)
    assert config["model"]["name"] == "movenet_lightning" and model.num_keypoints == 17
    capsys.readouterr()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file at all")
    for bad in (garbage, tmp_path / "missing.onnx"):
        assert main([str(bad), "--out", str(tmp_path / "x.pt")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(bad) in err and "\n" not in err and "Traceback" not in err


def test_imported_checkpoint_initialises_training_on_another_keypoint_set(tmp_path, tiny_data):
    from posekit.checkpoint import save_checkpoint
    from posekit.engine.trainer import TrainConfig
    from posekit.methods import build_trainer

    init = tmp_path / "lightning.pt"
    payload = movenet_checkpoint(onnx_path("lightning"))
    save_checkpoint(init, payload)
    cfg = TrainConfig(train=f"coco:{tiny_data}", out=str(tmp_path / "run"), model="movenet_lightning",
                      input_size=(192, 192), batch_size=8, workers=0, progress=False, init=str(init))
    state = build_trainer(cfg).model.state_dict()  # heatmap head only; LSP-14: its K-sized output conv stays fresh
    assert "heads.center.1.weight" not in state
    for key in ("trunk.stem.0.1.weight", "fpn.smooth.2.1.bias", "heads.heatmap.0.0.weight", "heads.heatmap.0.1.bias"):
        assert torch.equal(state[key], payload["model"][key]), key
    assert state["heads.heatmap.1.weight"].shape[0] == 14


@needs_lspet
def test_predictor_with_the_movenet_codec_equals_the_full_graph_in_image_pixels(checkpoint_models):
    """Imported checkpoint -> posekit Predictor (MoveNetCodec, no flip test) on whole LSPET photos and boxes:
    the original graph on the same crop, mapped back through the crop's inverse matrix (and moved from
    MoveNet's [i, i + 1) pixels to posekit's pixel centres), gives the same joints within 0.5 px."""
    from posekit.data.formats.lsp import load_lsp_joints
    from posekit.data.io import read_image
    from posekit.data.transforms import affine_points, box_to_center_scale, crop_matrix, invert_affine, warp_image
    from posekit.inference.predictor import Predictor

    model, config, session = checkpoint_models("lightning")
    predictor = Predictor(model, config, flip_test=False)
    coords, visible, _ = load_lsp_joints(LSPET / "joints.mat")
    for number in LSPET_IMAGES[:4]:
        xy = coords[number - 1][visible[number - 1]]
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        box = np.array([x0, y0, x1 - x0, y1 - y0])
        image = read_image(LSPET / "images" / f"im{number:05d}.jpg")
        ours = predictor.predict(image, box[None])[0]                                    # (17, 3)
        matrix = crop_matrix(*box_to_center_scale(box, 1.0, 1.25), (192, 192))
        crop = warp_image(image, matrix, (192, 192))
        ref = session.run(None, {"input:0": crop[None].astype(np.int32)})[0][0, 0]      # y, x, score
        ref_xy = affine_points(np.stack([ref[:, 1] * 192 - 0.5, ref[:, 0] * 192 - 0.5], -1), invert_affine(matrix))
        np.testing.assert_allclose(ours[:, :2], ref_xy, atol=0.5)
        np.testing.assert_allclose(ours[:, 2], ref[:, 2], atol=1e-3)


def test_retargeted_checkpoint_moves_joints_by_name(checkpoint_models):
    """COCO-17 import -> LSP-14 heatmap model: LSP's right ankle is COCO's row 16, its neck the mean of the
    shoulders' rows; the trunk is untouched; the config is a trainable heatmap model of the LSP skeleton."""
    from posekit.models.movenet_import import retarget_checkpoint

    payload = movenet_checkpoint(onnx_path("lightning"))
    out = retarget_checkpoint(payload, "lsp")
    key = "heads.heatmap.1.bias"
    coco = payload["model"][key]
    assert torch.equal(out["model"][key][0], coco[16])
    assert torch.allclose(out["model"][key][12], (coco[5] + coco[6]) / 2)
    trunk = [k for k in payload["model"] if k.startswith("trunk.")]
    assert trunk and all(torch.equal(out["model"][k], payload["model"][k]) for k in trunk)
    assert not any(k.startswith(("heads.center", "heads.offset", "heads.regress")) for k in out["model"])
    config = out["config"]
    assert config["model"] == {"name": "movenet_lightning", "kwargs": {"num_keypoints": 14}}
    assert config["skeleton"] == "lsp" and config["codec"]["type"] == "HeatmapCodec"
    assert config["retargeted"] == {"from": "coco", "to": "lsp"} and config["source"]["license"] == "Apache-2.0"
