"""Training with every head type, end to end: 2 iterations -> checkpoint -> Predictor -> finite keypoints;
loss parameters (RLE flow, AWL weights) train and resume; config validation; the `posekit train` flags."""
import json

import numpy as np
import pytest
import torch

from posekit.codecs import HeatmapCodec, IntegralCodec, RegressionCodec
from posekit.data.formats import load_samples
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer as Trainer
from posekit.inference.predictor import Predictor
from posekit.losses import AutomaticWeightedLoss, RLELoss
from posekit.models.base import CoordinateModel
from posekit.skeletons import LSP

SMALL = {"width": 0.25, "deconv_channels": 32}


def config(tmp_path, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(tmp_path / "run"), model="simplebaseline_r18",
                model_kwargs=SMALL, input_size=(64, 64), epochs=1, batch_size=8, lr=1e-3, warmup_iters=2, workers=0,
                seed=7, progress=False, max_iters_per_epoch=2)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("head,loss,codec_type", [
    ("heatmap", {}, HeatmapCodec),
    ("dsnt", {}, IntegralCodec),
    ("regression", {"coord": "l2"}, RegressionCodec),
    ("rle", {}, RegressionCodec),
])
def test_two_iterations_of_each_head_give_a_checkpoint_the_predictor_uses(tmp_path, tiny_data, head, loss,
                                                                          codec_type):
    trainer = Trainer(config(tmp_path, tiny_data, head=head, loss=loss))
    assert isinstance(trainer.codec, codec_type)
    result = trainer.fit()
    assert trainer.step == 2 and np.isfinite(result["loss"])
    payload = load_checkpoint(tmp_path / "run" / "model.pt")
    assert payload["config"]["codec"]["type"] == codec_type.__name__
    assert payload["config"]["train"]["head"] == head
    assert ("head" in payload["config"]) == (head != "heatmap")
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "model.pt")  # no extra arguments
    assert isinstance(predictor.codec, codec_type)
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    keypoints = predictor.predict(image, [[10, 5, 60, 80], [0, 0, 96, 96]])
    assert keypoints.shape == (2, 14, 3) and np.isfinite(keypoints).all()
    # the trained network is the one the predictor rebuilt
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(predictor.model(x), trainer.model.eval()(x))


def test_intermediate_supervision_with_dsnt_on_a_stacked_hourglass(tmp_path, tiny_data):
    trainer = Trainer(config(tmp_path, tiny_data, model="lite_hourglass_2x32", model_kwargs={}, head="dsnt",
                             val=f"coco:{tiny_data}"))
    batch = next(iter(trainer.loader(0)))
    stages = trainer.model.forward_all(batch["image"])
    assert len(stages) == 2
    one = trainer.head_loss(stages[-1:], batch)["loss"]
    both = trainer.head_loss(stages, batch)["loss"]
    assert both.item() > one.item() > 0  # every stage is supervised
    result = trainer.fit()
    # the reported val PCK is PCK@0.2 (torso) of the final model, computed here by hand from its predictions:
    # a joint counts when it and both torso joints (left shoulder, right hip) are labelled, and is correct
    # within 0.2 x ||left shoulder - right hip|| of the ground truth
    samples = load_samples(f"coco:{tiny_data}")
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "model.pt")  # flip test, as validation runs
    pred = np.stack([keypoints for _, keypoints in predictor.predict_samples(samples)])[..., :2]
    gt = np.stack([s.keypoints for s in samples]).astype(np.float64)
    ls, rh = LSP.torso
    torso = np.linalg.norm(gt[:, ls, :2] - gt[:, rh, :2], axis=1)
    counted = (gt[..., 2] > 0) & ((gt[:, ls, 2] > 0) & (gt[:, rh, 2] > 0))[:, None]
    correct = np.linalg.norm(pred - gt[..., :2], axis=-1) <= 0.2 * torso[:, None]
    assert counted.sum() > 100
    assert result["val"]["pck@0.2_torso"] == pytest.approx(correct[counted].sum() / counted.sum(), abs=1e-12)


def test_loss_parameters_are_trained_and_resumed(tmp_path, tiny_data):
    loss = {"coord": "l1", "bone_loss": "limbs", "awl": True}
    trainer = Trainer(config(tmp_path, tiny_data, head="regression", loss=loss))
    assert isinstance(trainer.head_loss.awl, AutomaticWeightedLoss)
    assert trainer.head_loss in trainer.method.trainable_modules()
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(trainer.head_loss.awl.params) in optimised
    assert trainer.optimizer.param_groups[1]["weight_decay"] == 0.0  # loss weights: no decay
    before = trainer.head_loss.awl.params.detach().clone()
    trainer.fit()
    assert not torch.equal(trainer.head_loss.awl.params.detach(), before)
    assert "awl_weight_bone" in trainer.history[-1] and "loss_bone" in trainer.history[-1]

    # exact resume includes the loss's own parameters
    straight = Trainer(config(tmp_path / "a", tiny_data, head="regression", loss=loss, epochs=2))
    straight.fit()
    Trainer(config(tmp_path / "b", tiny_data, head="regression", loss=loss, epochs=1)).fit()
    resumed = Trainer(config(tmp_path / "b", tiny_data, head="regression", loss=loss, epochs=2), resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    torch.testing.assert_close(resumed.head_loss.awl.params, straight.head_loss.awl.params, atol=0, rtol=0)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_rle_flow_is_optimised(tmp_path, tiny_data):
    trainer = Trainer(config(tmp_path, tiny_data, head="rle"))
    assert isinstance(trainer.head_loss.rle, RLELoss) and isinstance(trainer.model, CoordinateModel)
    flow = [p for p in trainer.head_loss.rle.flow.parameters()]
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in flow)
    before = [p.detach().clone() for p in flow]
    trainer.fit()
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, flow))


def test_init_from_a_heatmap_checkpoint_transfers_the_backbone(tmp_path, tiny_data):
    Trainer(config(tmp_path / "hm", tiny_data)).fit()
    source = load_checkpoint(tmp_path / "hm" / "run" / "model.pt")["model"]
    trainer = Trainer(config(tmp_path, tiny_data, head="regression", init=str(tmp_path / "hm" / "run" / "model.pt")))
    own = trainer.model.state_dict()
    assert torch.equal(own["backbone.trunk.0.0.weight"], source["trunk.0.0.weight"])


def test_head_and_loss_options_are_validated(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="unknown head"):
        Trainer(config(tmp_path, tiny_data, head="heatmaps"))
    with pytest.raises(ValueError, match="do not apply to the heatmap head"):
        Trainer(config(tmp_path, tiny_data, loss={"bone_loss": "all"}))
    with pytest.raises(ValueError, match="normalised coordinates"):
        Trainer(config(tmp_path, tiny_data, head="rle", codec_kwargs={"normalized": False}))
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"train": "x", "bone_loss": "all"})


def test_pixel_unit_regression_targets(tmp_path, tiny_data):
    trainer = Trainer(config(tmp_path, tiny_data, head="regression", codec_kwargs={"normalized": False}))
    item = trainer.dataset[0]
    visible = item["weights"] > 0
    np.testing.assert_allclose(item["coords"][visible].numpy(), item["keypoints"][visible, :2].numpy(), atol=1e-4)
    trainer.fit()
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "model.pt")
    assert predictor.codec.normalized is False


def test_cli_train_flags(tmp_path, tiny_data):
    from posekit.cli import build_parser, train_config_from_args
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"train": f"coco:{tiny_data}", "loss": {"coord": "l2", "bone_weight": 0.2}}))
    args = build_parser().parse_args(["train", "--config", str(cfg_file), "--head", "dsnt", "--loss",
                                      '{"bone_loss": "limbs", "awl": true}', "--codec-kwargs", '{"beta": 2.0}'])
    cfg = train_config_from_args(args)
    assert cfg.head == "dsnt" and cfg.codec_kwargs == {"beta": 2.0}
    assert cfg.loss == {"coord": "l2", "bone_weight": 0.2, "bone_loss": "limbs", "awl": True}
    args = build_parser().parse_args(["train", "--data", "x", "--head", "rle", "--head-kwargs", '{"init_std": 0.02}'])
    assert train_config_from_args(args).head_kwargs == {"init_std": 0.02}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "x", "--head", "gaussian"])


def test_cli_amp_and_crop_cache_flags():
    from posekit.cli import build_parser, train_config_from_args
    parse = lambda *flags: train_config_from_args(build_parser().parse_args(["train", "--data", "x", *flags]))
    default = parse()
    assert default.amp is False and default.crop_cache is True and default.cache_dir is None
    cfg = parse("--amp", "--no-crop-cache", "--cache-dir", "/tmp/crops")
    assert cfg.amp is True and cfg.crop_cache is False and cfg.cache_dir == "/tmp/crops"
    assert parse("--crop-cache").crop_cache is True


def test_cli_loader_threads_flag():
    from posekit.cli import build_parser, train_config_from_args
    from posekit.engine.train_config import TrainOptionError
    parse = lambda *flags: train_config_from_args(build_parser().parse_args(["train", "--data", "x", *flags]))
    assert parse().loader_threads is None
    assert parse("--loader-threads", "1").loader_threads == 1
    with pytest.raises((ValueError, TrainOptionError), match="loader_threads"):
        parse("--loader-threads", "0")
