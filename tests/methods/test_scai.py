"""SCAI: the six chains, the referee's fitness error, test-time training, the corrector as a drop-in Predictor,
training on labels, checkpoints, the CLI options and `adapt_cli`."""
import json
from collections import deque

import numpy as np
import pytest
import torch

from posekit.data.formats import load_samples
from posekit.data.io import read_image
from posekit.checkpoint import load_checkpoint
from posekit.engine.evaluate import evaluate_samples
from posekit.inference.predictor import Predictor
from posekit.methods import scai
from posekit.methods.scai import (SCAICorrector, SCAINets, TestTimeTrainer, gather_chains, load_scai,
                                  referee_error, render_gaussian, train_scai)
from posekit.skeletons import SKELETONS


# -- chains ----------------------------------------------------------------------------------------
def limb_distances(skeleton, source: int) -> dict[int, int]:
    """Breadth-first distances over the skeleton's limb graph."""
    neighbours = {k: set() for k in range(skeleton.num_keypoints)}
    for a, b in skeleton.limbs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    dist, queue = {source: 0}, deque([source])
    while queue:
        j = queue.popleft()
        for n in neighbours[j]:
            if n not in dist:
                dist[n] = dist[j] + 1
                queue.append(n)
    return dist


@pytest.mark.parametrize("name", ["lsp", "coco", "mpii"])
def test_chains_have_four_joints_from_proximal_to_distal(name):
    skeleton = SKELETONS[name]
    chains = scai.chains_of(skeleton)
    assert chains.shape == (6, 4)
    for chain in chains.tolist():
        assert len(set(chain)) == 4
        # walking the chain moves away from its proximal joint along the limbs, a few limbs per step
        from_proximal = limb_distances(skeleton, chain[0])
        steps = [from_proximal[j] for j in chain]
        assert steps[0] == 0 and steps[1] < steps[2] < steps[3], (name, chain, steps)
        for a, b in zip(chain, chain[1:]):
            assert limb_distances(skeleton, a)[b] <= 3, (name, a, b)
    names = [[skeleton.keypoints[j] for j in chain] for chain in chains.tolist()]
    distal = [n[-1] for n in names]
    assert len(set(distal)) == 6  # every chain corrects its own joint
    for limb in ("wrist", "ankle"):  # the four limb chains end at the extremities, through elbow / knee
        for side in ("left", "right"):
            chain = names[distal.index(f"{side}_{limb}")]
            assert chain[2] == f"{side}_{'elbow' if limb == 'wrist' else 'knee'}"
            joints = [skeleton.index(x) for x in chain]
            limbs = {frozenset(limb_pair) for limb_pair in skeleton.limbs}
            assert all(frozenset(pair) in limbs for pair in zip(joints, joints[1:])), chain  # a path of limbs
    # mirrored chains: the flip permutation maps the set of chains onto itself
    flip = skeleton.flip_index
    assert {tuple(flip[c].tolist()) for c in chains} == {tuple(c) for c in chains.tolist()}


# -- the networks ----------------------------------------------------------------------------------
def fake_rows(n=6, k=14, size=(16, 16), seed=0, chains=None):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(n, k, 2, generator=g) * (torch.tensor(size, dtype=torch.float32) - 1)
    heatmaps = render_gaussian(coords.reshape(-1, 2), size, 2.0).reshape(n, k, size[1], size[0])
    heatmaps = heatmaps * (0.5 + 0.5 * torch.rand(n, k, 1, 1, generator=g))
    scores = heatmaps.amax(dim=(2, 3))
    chains = scai.chains_of(SKELETONS["lsp"]) if chains is None else chains
    return gather_chains(heatmaps, coords, scores, chains)


def tiny_nets(seed=0, width=8):
    torch.manual_seed(seed)
    return SCAINets((16, 16), 2.0, scai.chains_of(SKELETONS["lsp"]), width=width)


def test_gather_chains_layout():
    rows = fake_rows(n=2)
    chains = scai.chains_of(SKELETONS["lsp"])
    assert rows["maps"].shape == (12, 4, 16, 16) and rows["coords"].shape == (12, 4, 2)
    assert rows["chain"].tolist() == list(range(6)) * 2
    # row i * 6 + c is person i, chain c: the maps are that person's heatmaps of the chain's joints
    heatmaps = torch.rand(2, 14, 16, 16)
    rows = gather_chains(heatmaps, torch.zeros(2, 14, 2), torch.zeros(2, 14), chains)
    assert torch.equal(rows["maps"][6 + 2], heatmaps[1, chains[2]])
    assert chains[2, 3] == 0  # right leg ends at the right ankle


def test_referee_error_is_zero_when_observed_proximal_equals_its_prediction():
    nets = tiny_nets()
    rows = fake_rows()
    distal = rows["coords"][:, 3]
    with torch.no_grad():
        predicted, prob = nets.referee_coords(rows["maps"][:, 1:3], distal, rows["chain"])
    assert prob.shape == (len(distal), 1, 16, 16)
    assert torch.allclose(prob.sum(dim=(1, 2, 3)), torch.ones(len(distal)))
    agreeing = dict(rows, coords=rows["coords"].clone())
    agreeing["coords"][:, 0] = predicted
    with torch.no_grad():
        assert torch.equal(nets.fitness(agreeing, distal), torch.zeros(len(distal)))
        shifted = dict(agreeing, coords=agreeing["coords"].clone())
        shifted["coords"][:, 0] += torch.tensor([3.0, 4.0])
        assert torch.allclose(nets.fitness(shifted, distal), torch.full((len(distal),), 5.0), atol=1e-4)
    assert torch.equal(referee_error(torch.ones(3, 2), torch.ones(3, 2)), torch.zeros(3))


def test_fresh_correction_net_gives_zero_offsets_and_rendering_is_differentiable():
    nets = tiny_nets()
    rows = fake_rows()
    ctx = nets.context(rows)
    assert torch.equal(nets.offsets(rows, ctx), torch.zeros(len(rows["chain"]), 2))
    centre = torch.tensor([[5.0, 7.0]], requires_grad=True)
    g = render_gaussian(centre, (16, 16), 2.0)
    assert g.shape == (1, 1, 16, 16) and g[0, 0, 7, 5] == 1.0
    (g * torch.arange(16.0)[None, None, None, :]).sum().backward()
    assert centre.grad.abs().sum() > 0


def test_one_tta_step_reduces_the_referee_loss_on_a_fixed_batch():
    nets = tiny_nets(seed=1)
    rows = fake_rows(n=8, seed=2)
    tta = TestTimeTrainer(nets, lr=1e-3, steps=1)
    ctx = nets.context(rows)
    referee_before = {k: v.clone() for k, v in nets.referee.state_dict().items()}
    before = tta.step(rows, ctx)
    with torch.no_grad():
        after = float(tta.loss(rows, ctx))
    assert after < before
    assert all(torch.equal(v, nets.referee.state_dict()[k]) for k, v in referee_before.items())  # frozen
    assert tta.history == [before]
    tta.reset()  # back to the trained (here: zero) correction
    assert torch.equal(nets.offsets(rows, nets.context(rows)), torch.zeros(len(rows["chain"]), 2))


def test_confidence_weighting_and_bad_options():
    nets = tiny_nets()
    rows = fake_rows()
    tta = TestTimeTrainer(nets, weighting="confidence")
    assert torch.isfinite(tta.loss(rows, nets.context(rows)))
    with pytest.raises(ValueError, match="tta_weighting"):
        TestTimeTrainer(nets, weighting="median")


def test_training_losses_are_finite_and_train_every_net():
    nets = tiny_nets()
    rows = fake_rows(n=4, seed=3)
    truth = fake_rows(n=4, seed=4)
    logs = nets.losses(rows, truth["coords"], torch.ones(24, 4), truth["maps"], feedback_weight=0.1)
    assert torch.isfinite(logs["loss"])
    logs["loss"].backward()
    for name in ("prediction", "referee", "correction"):
        grads = [p.grad for p in getattr(nets, name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


# -- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, scai_pose):
    root = tmp_path_factory.mktemp("scai")
    pose = scai_pose["pose"]
    ckpt = train_scai(pose, scai_pose["spec"], root / "scai", epochs=1, batch_size=8, max_iters=2, width=8,
                      tta_steps=2, tta_lr=1e-3)
    return {**scai_pose, "root": root, "scai": ckpt}


def predictions(predictor, samples):
    return np.stack([k for _, k in predictor.predict_samples(samples)])


def test_corrector_matches_predictor_except_distal_joints(tiny):
    samples = load_samples(tiny["spec"])
    base = predictions(Predictor.load(tiny["pose"]), samples)
    for mode in ("none", "correct", "tta"):
        corrector = SCAICorrector.from_checkpoint(tiny["scai"], mode=mode)
        out = predictions(corrector, samples)
        assert out.shape == (len(samples), 14, 3) and np.isfinite(out).all()
        distal = scai.distal_joints(corrector.chains)
        others = [k for k in range(14) if k not in distal]
        np.testing.assert_array_equal(out[:, others], base[:, others])
        np.testing.assert_array_equal(out[:, :, 2], base[:, :, 2])  # scores are the pose model's
        if mode == "none":
            np.testing.assert_array_equal(out, base)
        if mode == "tta":
            assert len(corrector.tta.history) >= 2 * 2  # two steps on each of the >= 2 batches
            assert not np.array_equal(out[:, distal], base[:, distal])
    # predict() on one image agrees with predict_samples()
    image = read_image(samples[0].image_path)
    corrector = SCAICorrector.from_checkpoint(tiny["scai"], mode="correct")
    single = corrector.predict(image, samples[0].box[None])
    np.testing.assert_allclose(single[0], predictions(corrector, samples[:1])[0], atol=1e-5)
    assert corrector.predict(image, np.zeros((0, 4))).shape == (0, 14, 3)


def test_zero_offset_correction_leaves_keypoints_unchanged(tiny):
    samples = load_samples(tiny["spec"])[:6]
    predictor = Predictor.load(tiny["pose"])
    base = predictions(predictor, samples)
    nets, config = load_scai(tiny["scai"])
    torch.nn.init.zeros_(nets.correction.head.weight)
    torch.nn.init.zeros_(nets.correction.head.bias)
    corrector = SCAICorrector(predictor, nets, config, mode="correct")
    np.testing.assert_array_equal(predictions(corrector, samples), base)
    corrector.flip_test = False  # forwarded to the wrapped predictor
    assert predictor.flip_test is False
    np.testing.assert_array_equal(predictions(corrector, samples), predictions(predictor, samples))


def scored(predictions_, samples):
    """The PCK family of (N, K, 3) predictions against the samples' labels, computed here by hand."""
    from posekit.metrics import evaluate_keypoints
    gt = np.stack([s.keypoints for s in samples]).astype(np.float32)
    boxes = np.stack([s.box for s in samples]).astype(np.float32)
    return evaluate_keypoints(predictions_[:, :, :2], gt, boxes, SKELETONS["lsp"])


def test_corrector_works_with_evaluation_and_corrupted_images(tiny):
    from posekit.data.corruptions import corrupt
    from posekit.engine.robustness import evaluate_condition, image_indices, image_seed
    samples = load_samples(tiny["spec"])
    corrector = SCAICorrector.from_checkpoint(tiny["scai"], mode="tta")
    metrics = evaluate_samples(corrector, samples)
    corrector.reset()  # the same test-time training again, from the trained C
    expected = scored(predictions(corrector, samples), samples)
    assert metrics["n_evaluated"] == len(samples)
    for key in ("pck@0.2_torso", "pck@0.05_box", "auc_torso"):
        assert metrics[key] == expected[key], key
    # corrupted images: the corrector adapts on what a hand-made corrupting reader gives it
    corrector.reset()
    corrupted = evaluate_condition(corrector, samples, None, "gaussian_noise", 3, seed=0)
    corrector.reset()
    index = image_indices(samples)

    def read(sample):
        image = read_image(sample.image_path)
        return corrupt(image, "gaussian_noise", 3, image_seed(0, index[sample.image_path], "gaussian_noise", 3))

    by_hand = scored(np.stack([k for _, k in corrector.predict_samples(samples, read=read)]), samples)
    assert corrupted["pck@0.2_torso"] == by_hand["pck@0.2_torso"] != metrics["pck@0.2_torso"]
    # per mode: "none" is the pose model itself; the distal PCK is the count-weighted mean over the distal joints
    results = scai.evaluate_modes(corrector, samples, modes=("none", "correct"))
    assert set(results) == {"none", "correct"}
    plain = evaluate_samples(Predictor.load(tiny["pose"]), samples)
    assert results["none"]["pck@0.2_torso"] == plain["pck@0.2_torso"]
    per_joint = results["correct"]["per_joint"]
    distal = [per_joint[SKELETONS["lsp"].keypoints[j]] for j in scai.distal_joints(corrector.chains)]
    weighted = sum(r["pck@0.2_torso"] * r["n_torso"] for r in distal) / sum(r["n_torso"] for r in distal)
    assert results["correct"]["distal_pck@0.2_torso"] == pytest.approx(weighted, abs=1e-12)


def test_checkpoint_round_trip_and_resume(tiny):
    payload = torch.load(tiny["scai"], map_location="cpu", weights_only=True)
    assert set(payload) == {"scai", "config"} and set(load_checkpoint(tiny["scai"])) == {"scai", "config"}
    config = payload["config"]
    json.dumps(config)
    assert config["method"] == "scai" and config["pose"]["checkpoint"] == str(tiny["pose"])
    assert config["pose"]["config"]["num_keypoints"] == 14 and len(config["pose"]["fingerprint"]) == 64
    assert config["nets"]["chains"] == [list(c) for c in SKELETONS["lsp"].chains]
    assert config["tta"] == {"steps": 2, "lr": 1e-3, "weighting": "none", "episodic": False}
    assert len(config["history"]) == 1 and "feedback_corr" in config["history"][0]
    nets, loaded = load_scai(tiny["scai"])
    for name in ("prediction", "correction", "referee"):
        for key, value in getattr(nets, name).state_dict().items():
            assert torch.equal(value, payload["scai"][name][key])
    assert (tiny["root"] / "scai" / "scai_last.pt").exists()
    # the same settings again: nothing retrained, same file
    mtime = tiny["scai"].stat().st_mtime_ns
    again = train_scai(tiny["pose"], tiny["spec"], tiny["root"] / "scai", epochs=1, batch_size=8, max_iters=2, width=8,
                       tta_steps=2, tta_lr=1e-3)
    assert again == tiny["scai"] and again.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="not a SCAI checkpoint"):
        load_scai(tiny["pose"])


def test_incompatible_pose_model_is_refused(tiny):
    nets, config = load_scai(tiny["scai"])
    predictor = Predictor.load(tiny["pose"])
    predictor.config = dict(predictor.config, codec=dict(predictor.config["codec"], heatmap_size=[32, 32]))
    with pytest.raises(ValueError, match="heatmaps"):
        SCAICorrector(predictor, nets, config)
    with pytest.raises(ValueError, match="mode"):
        SCAICorrector(Predictor.load(tiny["pose"]), nets, config, mode="always")


def test_cli_eval_and_predict_with_scai(tiny, capsys):
    from posekit.cli import main
    out = tiny["root"] / "metrics.json"
    assert main(["eval", "--checkpoint", str(tiny["pose"]), "--data", tiny["spec"], "--scai", str(tiny["scai"]),
                 "--tta", "scai", "--tta-steps", "1", "--tta-lr", "1e-4", "--out", str(out)]) == 0
    # the same test-time training in Python: the same numbers
    from posekit.engine.evaluate import evaluate
    library = evaluate(SCAICorrector.from_checkpoint(tiny["scai"], pose_checkpoint=tiny["pose"], mode="tta",
                                                     tta_steps=1, tta_lr=1e-4), tiny["spec"])
    cli = json.loads(out.read_text())
    for key in ("pck@0.2_torso", "pck@0.05_box", "AP"):
        assert cli[key] == library[key], key
    preds = tiny["root"] / "preds.json"
    assert main(["predict", "--checkpoint", str(tiny["pose"]), "--data", tiny["spec"], "--scai", str(tiny["scai"]),
                 "--out", str(preds)]) == 0
    records = json.loads(preds.read_text())
    assert len(records) == 24 and len(records[0]["keypoints"]) == 14
    assert main(["eval", "--checkpoint", str(tiny["pose"]), "--data", tiny["spec"], "--tta", "scai"]) == 2
    assert "needs --scai" in capsys.readouterr().err


def adapt_run(tiny, out, target, **options):
    return scai.adapt(tiny["pose"], target, out, val=tiny["spec"], epochs=1, seed=0, batch_size=8, lr=None,
                      **({"max_iters": 1, "width": 8, "limit": 8, "tta_steps": 1} | options))


def test_adapt_labeled_and_unlabeled_targets(tiny):
    out = tiny["root"] / "adapt_labeled"
    returned = adapt_run(tiny, out, tiny["spec"])
    report = json.loads((out / "scai_eval.json").read_text())
    assert json.dumps(returned, default=float, sort_keys=True) == json.dumps(report, sort_keys=True)  # as written
    assert report["target_labeled"] and report["trained_on"] == tiny["spec"]
    assert set(report["results"]) == {"none", "correct", "tta"}
    assert (out / "scai.pt").exists() and not (out / "scai_adapted.pt").exists()
    assert "| tta |" in scai.format_results(report["results"])
    # unlabeled target: the nets learn from the pose model's own training data, then C adapts to the target
    folder = f"folder:{tiny['ann'].parent / 'images'}"
    out = tiny["root"] / "adapt_unlabeled"
    adapt_run(tiny, out, folder)
    report = json.loads((out / "scai_eval.json").read_text())
    assert not report["target_labeled"] and report["trained_on"] == tiny["spec"]
    assert report["adapted"]["batches"] >= 1 and "adapted" in report["results"]
    adapted, config = load_scai(out / "scai_adapted.pt")
    trained, _ = load_scai(out / "scai.pt")
    assert config["adapted"]["target"] == folder
    assert not torch.equal(adapted.correction.head.weight, trained.correction.head.weight)
    with pytest.raises(ValueError, match="unknown SCAI options"):
        adapt_run(tiny, out, folder, colour=1)


def test_posekit_adapt_method_scai_runs_adapt(tiny, capsys):
    from posekit.cli import main
    out = tiny["root"] / "adapt_cli"
    assert main(["adapt", "--method", "scai", "--source", str(tiny["pose"]), "--target", tiny["spec"],
                 "--out", str(out), "--epochs", "1", "--batch-size", "8", "--workers", "0", "--max-iters", "1",
                 "--scai-kwargs", '{"width": 8, "modes": ["none", "correct"]}', "--val", tiny["spec"]]) == 0
    report = json.loads((out / "scai_eval.json").read_text())
    assert set(report["results"]) == {"none", "correct"}
    assert load_scai(out / "scai.pt")[1]["train"]["max_iters"] == 1
    printed = capsys.readouterr().out
    assert scai.format_results(report["results"]) in printed and f"wrote {out / 'scai_eval.json'}" in printed


def test_codec_soft_argmax_is_scai_s_and_the_codec_gaussians_differ_by_rounding():
    """SCAI reads the referee with the codecs' flat softmax + DSNT (bit for bit what it computed itself); its
    differentiable float32 Gaussians stay its own: the codecs' render_gaussians (float64 numpy, no gradient)
    agrees only to float32 rounding."""
    from posekit.codecs import render_gaussians
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 1, 16, 12, generator=g) * 3
    coords, prob = scai.soft_argmax(logits)
    reference = torch.softmax(logits.reshape(12, -1), dim=1).reshape(12, 1, 16, 12)  # SCAI's own formula
    xs, ys = torch.arange(12.0), torch.arange(16.0)
    assert torch.equal(prob, reference)
    assert torch.equal(coords, torch.stack([(reference.sum(dim=2)[:, 0] * xs).sum(dim=1),
                                            (reference.sum(dim=3)[:, 0] * ys).sum(dim=1)], dim=1))
    centres = torch.rand(20, 2, generator=g) * 15
    ours = render_gaussian(centres, (16, 16), 2.0)[:, 0]
    theirs = torch.from_numpy(np.stack([render_gaussians(c[None].numpy(), (16, 16), 2.0)[0] for c in centres]))
    assert torch.allclose(ours, theirs, atol=1e-7) and not torch.equal(ours, theirs)
