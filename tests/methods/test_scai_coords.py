"""SCAI's coordinate design (MLPs on chain coordinates and confidences): input assembly on literal joints, a
fresh correction that changes nothing, left/right chains, training and checkpoints, the Python and CLI
options ``scai`` / ``tta`` and the zoo's ``base``."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.data.formats import load_samples
from posekit.inference.predictor import Predictor
from posekit.methods import scai
from posekit.methods.scai import CoordSCAINets, SCAICorrector, load_scai, train_scai
from posekit.methods.scai.coord_nets import correction_inputs, prediction_inputs, referee_inputs
from posekit.skeletons import SKELETONS

LSP_CHAINS = scai.chains_of(SKELETONS["lsp"])


def literal_rows():
    """One chain row: p (10, 20), m1 (14, 22), m2 (18, 26), d (22, 31) on a 48x48 heatmap, scores .9 .8 .7 .6."""
    coords = torch.tensor([[[10.0, 20.0], [14.0, 22.0], [18.0, 26.0], [22.0, 31.0]]])
    return {"maps": torch.zeros(1, 4, 48, 48), "coords": coords, "scores": torch.tensor([[0.9, 0.8, 0.7, 0.6]]),
            "chain": torch.tensor([2])}


def test_input_assembly_on_literal_joints():
    rows = literal_rows()
    x = prediction_inputs(rows["coords"], rows["scores"], (48, 48))
    # (p - m2) / 48, (m1 - m2) / 48, m2 in [-1, 1] (x / 47 * 2 - 1), scores of p, m1, m2
    expected = [-8 / 48, -6 / 48, -4 / 48, -4 / 48, 18 / 47 * 2 - 1, 26 / 47 * 2 - 1, 0.9, 0.8, 0.7]
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-6)
    y = referee_inputs(rows["coords"], rows["scores"], torch.tensor([[30.0, 40.0]]), (48, 48))
    # (m2 - m1) / 48, (d - m1) / 48 with the given d, m1 in [-1, 1], scores of m1, m2
    expected = [4 / 48, 4 / 48, 16 / 48, 18 / 48, 14 / 47 * 2 - 1, 22 / 47 * 2 - 1, 0.8, 0.7]
    np.testing.assert_allclose(y[0].numpy(), expected, rtol=1e-6)
    ctx = {"phi_xy": torch.tensor([[24.0, 30.0]]), "ref_xy": torch.tensor([[11.0, 18.0]]), "error": torch.tensor([2.5]),
           "peak2_xy": torch.tensor([[30.0, 35.0]]), "peak2_score": torch.tensor([0.4])}
    z = correction_inputs(rows["coords"], rows["scores"], ctx, (48, 48))
    expected = [-12 / 48, -11 / 48, -8 / 48, -9 / 48, -4 / 48, -5 / 48, 22 / 47 * 2 - 1, 31 / 47 * 2 - 1,
                0.9, 0.8, 0.7, 0.6, 2 / 48, -1 / 48, 1 / 48, -2 / 48, 2.5 / 48, 8 / 48, 4 / 48, 0.4]
    np.testing.assert_allclose(z[0].numpy(), expected, rtol=1e-6)
    assert x.shape[1] == 9 and y.shape[1] == 8 and z.shape[1] == 20


def test_second_peak_is_the_best_pixel_away_from_the_decoded_joint():
    from posekit.methods.scai import render_gaussian
    from posekit.methods.scai.coord_nets import second_peak
    maps = render_gaussian(torch.tensor([[10.0, 12.0]]), (48, 48), 2.0)[:, 0] \
        + 0.6 * render_gaussian(torch.tensor([[30.0, 20.0]]), (48, 48), 2.0)[:, 0]
    xy, value = second_peak(maps, torch.tensor([[10.2, 11.8]]), radius=4.0)
    assert xy.tolist() == [[30.0, 20.0]] and value.item() == pytest.approx(0.6, abs=1e-6)
    # decoded at the weaker peak: the runner-up is the stronger one
    xy, value = second_peak(maps, torch.tensor([[30.0, 20.0]]), radius=4.0)
    assert xy.tolist() == [[10.0, 12.0]] and value.item() == pytest.approx(1.0, abs=1e-6)


def test_zeroed_heads_predict_the_neighbouring_joint_and_a_fresh_correction_is_zero():
    torch.manual_seed(0)
    nets = CoordSCAINets((48, 48), 2.0, LSP_CHAINS, width=16)
    rows = literal_rows()
    ctx = nets.context(rows)
    assert torch.equal(nets.offsets(rows, ctx), torch.zeros(1, 2))  # C starts at zero
    for head in (nets.prediction.head, nets.referee.head):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    ctx = nets.context(rows)
    assert torch.equal(ctx["phi_xy"], rows["coords"][:, 2])  # Φ's output is an offset from m2
    assert torch.equal(ctx["ref_xy"], rows["coords"][:, 1])  # Γ's from m1
    assert torch.allclose(ctx["error"], torch.tensor([float(np.hypot(4, 2))]))  # |m1 - p|


def test_losses_train_every_net_and_tta_lowers_its_loss_with_the_referee_frozen():
    torch.manual_seed(1)
    nets = CoordSCAINets((16, 16), 2.0, LSP_CHAINS, width=8)
    g = torch.Generator().manual_seed(2)
    rows = {"maps": torch.zeros(12, 4, 16, 16), "coords": torch.rand(12, 4, 2, generator=g) * 15,
            "scores": torch.rand(12, 4, generator=g), "chain": torch.arange(6).repeat(2)}
    truth = torch.rand(12, 4, 2, generator=g) * 15
    logs = nets.losses(rows, truth, torch.ones(12, 4))
    assert torch.isfinite(logs["loss"]) and logs["distal_err"] == logs["corrected_err"]  # C is still zero
    logs["loss"].backward()
    for name in ("prediction", "referee", "correction"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(nets, name).parameters()), name
    nets.zero_grad()
    torch.nn.init.normal_(nets.correction.head.weight, std=0.1)  # a trained-looking C
    tta = scai.TestTimeTrainer(nets, lr=1e-2, steps=1)
    ctx = nets.context(rows)
    referee = {k: v.clone() for k, v in nets.referee.state_dict().items()}
    before = tta.step(rows, ctx)
    with torch.no_grad():
        assert float(tta.loss(rows, ctx)) < before
    assert all(torch.equal(v, nets.referee.state_dict()[k]) for k, v in referee.items())


def test_designs_by_name_and_old_checkpoints_are_heatmap_nets():
    nets = scai.build_nets((16, 16), 2.0, LSP_CHAINS, design="coords")
    assert nets.width == 64 and nets.config()["design"] == "coords"
    assert isinstance(scai.nets_from_config(nets.config()), CoordSCAINets)
    old = scai.build_nets((16, 16), 2.0, LSP_CHAINS).config()
    assert "design" not in old and isinstance(scai.nets_from_config(old), scai.SCAINets) and old["width"] == 16
    with pytest.raises(ValueError, match="design must be one of"):
        scai.build_nets((16, 16), 2.0, LSP_CHAINS, design="graph")


# -- on a tiny pose model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, scai_pose):
    root = tmp_path_factory.mktemp("scai_coords")
    pose = scai_pose["pose"]
    ckpt = train_scai(pose, scai_pose["spec"], root / "scai", epochs=1, batch_size=8, max_iters=2, design="coords",
                      width=8, tta_steps=1, tta_lr=1e-3)
    return {**scai_pose, "root": root, "scai": ckpt}


def predictions(predictor, samples):
    return np.stack([k for _, k in predictor.predict_samples(samples)])


def test_trained_coordinate_nets_round_trip(tiny):
    nets, config = load_scai(tiny["scai"])
    assert isinstance(nets, CoordSCAINets) and config["nets"]["design"] == "coords" and config["nets"]["width"] == 8
    again = train_scai(tiny["pose"], tiny["spec"], tiny["root"] / "scai", epochs=1, batch_size=8, max_iters=2,
                       design="coords", width=8, tta_steps=1, tta_lr=1e-3)
    assert again == tiny["scai"]  # finished with the same settings: not retrained


def test_zero_correction_leaves_predictions_unchanged_and_offsets_reach_the_right_joints(tiny):
    samples = load_samples(tiny["spec"])[:4]
    predictor = Predictor.load(tiny["pose"])
    base = predictions(predictor, samples)
    nets, config = load_scai(tiny["scai"])
    torch.nn.init.zeros_(nets.correction.head.weight)
    torch.nn.init.zeros_(nets.correction.head.bias)
    corrector = SCAICorrector(predictor, nets, config, mode="correct")
    np.testing.assert_array_equal(predictions(corrector, samples), base)
    # left/right: chain c's offset moves exactly chain c's distal joint, by offset x stride in crop pixels
    coords = np.zeros((1, 14, 2), np.float32)
    offsets = np.zeros((1, 6, 2), np.float32)
    offsets[0, 0] = [1.0, 0.0]   # right arm -> right wrist (6)
    offsets[0, 1] = [0.0, -2.0]  # left arm -> left wrist (11)
    corrector.offsets = lambda heatmaps, c, s: offsets
    moved = corrector.correct(None, coords, None)
    stride = 1 / predictor.codec.input_to_heatmap(np.ones(2))  # input px per heatmap px (4 at 64 -> 16 px)
    assert stride == pytest.approx([4.0, 4.0], rel=0.1)
    expected = np.zeros_like(coords)
    expected[0, 6] = [stride[0], 0.0]
    expected[0, 11] = [0.0, -2 * stride[1]]
    np.testing.assert_allclose(moved, expected)
    names = SKELETONS["lsp"].keypoints
    assert [names[j] for j in corrector.distal] == ["right_wrist", "left_wrist", "right_ankle", "left_ankle",
                                                    "right_hip", "left_hip"]


def test_predictor_load_with_scai_and_tta(tiny):
    samples = load_samples(tiny["spec"])[:4]
    plain = predictions(Predictor.load(tiny["pose"]), samples)
    corrected = Predictor.load(tiny["pose"], scai=tiny["scai"])
    adapted = Predictor.load(tiny["pose"], scai=tiny["scai"], tta="scai")
    assert isinstance(corrected, SCAICorrector) and corrected.mode == "correct" and adapted.mode == "tta"
    out = predictions(adapted, samples)
    others = [k for k in range(14) if k not in adapted.distal]
    np.testing.assert_array_equal(out[:, others], plain[:, others])
    assert len(adapted.tta.history) >= 1
    with pytest.raises(ValueError, match="needs scai"):
        Predictor.load(tiny["pose"], tta="scai")
    with pytest.raises(ValueError, match="tta must be"):
        Predictor.load(tiny["pose"], scai=tiny["scai"], tta="flip")


def test_predict_cli_with_scai_on_an_image_and_a_mismatched_base(tiny, capsys):
    from posekit.cli import main
    first = load_samples(tiny["spec"])[0].image_path
    folder = tiny["root"] / "one"
    folder.mkdir(exist_ok=True)
    (folder / Path(first).name).write_bytes(Path(first).read_bytes())
    out = tiny["root"] / "p.json"
    assert main(["predict", str(folder), "--detector", "none", "--checkpoint", str(tiny["pose"]), "--scai",
                 str(tiny["scai"]), "--tta", "scai", "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert len(records) == 1 and len(records[0]["keypoints"]) == 14
    # nets of another heatmap frame: a one-line error naming the pose model they belong to
    nets, config = load_scai(tiny["scai"])
    other = scai.build_nets((32, 32), 2.0, LSP_CHAINS, design="coords", width=8)
    wrong = tiny["root"] / "wrong.pt"
    from posekit.checkpoint import save_checkpoint
    save_checkpoint(wrong, scai.scai_payload(other, {**config, "nets": other.config(), "base": "some_base"}))
    capsys.readouterr()
    assert main(["predict", str(folder), "--detector", "none", "--checkpoint", str(tiny["pose"]), "--scai",
                 str(wrong), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "belong to the pose model some_base (heatmaps 32x32)" in err and "heatmaps 16x16" in err
    # another skeleton
    coco = {**config, "pose": {**config["pose"], "config": {**config["pose"]["config"], "skeleton": "coco"}}}
    save_checkpoint(wrong, scai.scai_payload(nets, coco))
    with pytest.raises(ValueError, match="skeleton coco"):
        Predictor.load(tiny["pose"], scai=wrong)


def test_zoo_entry_with_base_round_trip(tiny):
    from posekit.methods.scai.publish import publish_scai
    from posekit.zoo import base_entry, read_index, recommend, write_index, zoo_table
    zoo = tiny["root"] / "zoo"
    zoo.mkdir()
    pose_file = zoo / "tiny_pose.pt"
    pose_file.write_bytes(tiny["pose"].read_bytes())
    write_index([{"name": "tiny_pose", "file": pose_file.as_posix(), "card": (zoo / "tiny_pose.md").as_posix(),
                  "dataset": "synthetic", "method": "supervised", "role": "compact", "skeleton": "lsp",
                  "model": {"name": "simplebaseline_r18", "kwargs": {}}, "input_size": [64, 64], "params": 1,
                  "flops": 1, "metrics": {}, "command": "c", "budget": "b", "recommended": True}], zoo)
    entry = publish_scai(tiny["scai"], "tiny_scai", base="tiny_pose", val=tiny["spec"], command="python x",
                         budget="1 epoch", zoo_dir=zoo, notes="Apache-2.0 notice here")
    entries = read_index(zoo)
    stored = next(e for e in entries if e["name"] == "tiny_scai")
    assert stored == json.loads(json.dumps(entry)) and stored["base"] == "tiny_pose"
    assert base_entry(stored, entries)["file"] == pose_file.as_posix() and base_entry(entries[0], entries) is None
    for key in ("pck@0.2_torso", "correct_pck@0.2_torso", "base_pck@0.2_torso", "distal_pck@0.2_torso"):
        assert key in stored["metrics"], key
    nets, config = load_scai(stored["file"])
    assert config["base"] == "tiny_pose" and "history" not in config
    predictor = Predictor.load(pose_file, scai=stored["file"], tta="scai")
    samples = load_samples(tiny["spec"])
    from posekit.engine.evaluate import evaluate_samples
    # the index's numbers are those of the stored files
    assert evaluate_samples(predictor, samples)["pck@0.2_torso"] == pytest.approx(stored["metrics"]["pck@0.2_torso"],
                                                                                  abs=1e-4)
    card = (zoo / "tiny_scai.md").read_text()
    assert "python x" in card and "Apache-2.0" in card and "tiny_pose" in card
    assert "tiny_scai" in zoo_table(entries)
    with pytest.raises(ValueError, match="add-on"):
        recommend("tiny_scai", zoo)
    with pytest.raises(ValueError, match="no base entry"):
        publish_scai(tiny["scai"], "x", base="missing", val=tiny["spec"], command="c", budget="b", zoo_dir=zoo)
