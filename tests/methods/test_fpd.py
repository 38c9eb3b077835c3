"""FPD with known answers: alpha = 0 is plain supervised training, a teacher identical to the student gives no
distillation loss, the unlabeled stream never sees a label, and a run with a teacher checkpoint (and unlabeled
images) trains, saves a deployable model and resumes exactly -- from Python and from `posekit train`."""
import json

import numpy as np
import pytest
import torch

from posekit.cli import main as cli_main
from posekit.checkpoint import load_checkpoint, save_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.inference.predictor import Predictor
from posekit.methods import build_method, build_trainer
from posekit.methods.fpd import FPD
from posekit.methods.supervised import Supervised
from posekit.models import build_model

STUDENT_KWARGS = {"width": 0.25, "deconv_channels": 32}


def config(out, ann, **kw):
    base = dict(train=f"coco:{ann}", val=None, out=str(out), model="simplebaseline_r18", model_kwargs=STUDENT_KWARGS,
                input_size=(64, 64), epochs=2, batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=3,
                progress=False, max_iters_per_epoch=1)
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, tiny_data):
    """A (wider) supervised teacher, trained for one iteration: a real posekit checkpoint."""
    out = tmp_path_factory.mktemp("teacher")
    build_trainer(config(out, tiny_data, epochs=1, model_kwargs={"width": 0.5, "deconv_channels": 32})).fit()
    return out / "model.pt"


def student():
    torch.manual_seed(0)
    return build_model("simplebaseline_r18", num_keypoints=14, **STUDENT_KWARGS)


def fake_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    heatmaps = torch.zeros(n, 14, 16, 16)
    heatmaps[:, :, 6:9, 6:9] = 1.0
    weights = torch.ones(n, 14)
    weights[0, 3] = 0.0  # one unlabelled joint
    return {"image": torch.randn(n, 3, 64, 64, generator=g), "heatmaps": heatmaps, "weights": weights,
            "index": torch.arange(n)}


def test_alpha_zero_is_the_plain_supervised_loss(teacher_ckpt):
    model, batch = student(), fake_batch()
    fpd = FPD(teacher=str(teacher_ckpt), alpha=0.0).bind_model(model)
    plain = Supervised().bind_model(model)
    with torch.no_grad():
        out = fpd.training_step(batch)
        reference = plain.training_step(batch)["loss"]
    assert out["loss_pd"] > 0  # the teacher disagrees ...
    assert torch.equal(out["loss"], reference)  # ... and counts for nothing
    assert torch.equal(out["loss_gt"], reference)


def test_alpha_one_with_the_student_as_teacher_distils_nothing(tmp_path, teacher_ckpt):
    model = student().eval()  # eval: the teacher runs with running statistics, so must the student
    config_ = load_checkpoint(teacher_ckpt)["config"]
    save_checkpoint(tmp_path / "self.pt", {"model": model.state_dict(), "config": config_ | {
        "model": {"name": "simplebaseline_r18", "kwargs": {"num_keypoints": 14, **STUDENT_KWARGS}}}})
    fpd = FPD(teacher=str(tmp_path / "self.pt"), alpha=1.0).bind_model(model)
    with torch.no_grad():
        out = fpd.training_step(fake_batch())
    assert out["loss_gt"] > 0
    assert out["loss_pd"] == 0
    assert out["loss"] == 0


def test_bad_alpha_and_an_incompatible_teacher_are_refused(tmp_path, tiny_data, teacher_ckpt):
    with pytest.raises(ValueError, match="alpha"):
        FPD(teacher=str(teacher_ckpt), alpha=1.5)
    with pytest.raises(ValueError, match="aspect ratio"):  # the crops would cover different boxes
        build_trainer(config(tmp_path, tiny_data, input_size=(64, 96), method="fpd",
                       method_kwargs={"teacher": str(teacher_ckpt)}))


def test_the_unlabeled_stream_never_sees_labels(tmp_path, tiny_data, teacher_ckpt):
    # the unlabeled spec is the LABELLED training set itself: its labels must still be withheld
    trainer = build_trainer(config(tmp_path, tiny_data, method="fpd", batch_size=4,
                             method_kwargs={"teacher": str(teacher_ckpt), "unlabeled": f"coco:{tiny_data}"}))
    stream = trainer.method.unlabeled_batches
    assert all(s.keypoints.shape == (14, 3) and not s.keypoints.any() for s in stream.dataset.samples)
    assert any(s.keypoints[:, 2].any() for s in trainer.train_samples)  # the labelled data keeps its labels
    for _ in range(stream.batches_per_epoch + 1):  # a whole epoch of the stream and one more batch
        batch = next(stream)
        assert batch["image"].shape == (4, 3, 64, 64)
        assert not batch["weights"].any() and not batch["heatmaps"].any()
        assert not batch["keypoints"][..., 2].any()
    # a folder of images (17 placeholder joints) feeds a 14-joint student
    folder = build_trainer(config(tmp_path / "f", tiny_data, method="fpd", method_kwargs={
        "teacher": str(teacher_ckpt), "unlabeled": f"folder:{tiny_data.parent / 'images'}", "unlabeled_ratio": 0.5}))
    batch = next(folder.method.unlabeled_batches)
    assert batch["image"].shape[0] == 4 and not batch["weights"].any()
    assert batch["heatmaps"].shape[1] == 14
    # a union of specs: both data sets' people, labels withheld
    union = build_trainer(config(tmp_path / "u", tiny_data, method="fpd", method_kwargs={
        "teacher": str(teacher_ckpt), "unlabeled": f"coco:{tiny_data}+folder:{tiny_data.parent / 'images'}"}))
    people = len(stream.dataset.samples) + len(folder.method.unlabeled_batches.dataset.samples)
    assert len(union.method.unlabeled_batches.dataset.samples) == people
    assert not any(s.keypoints.any() for s in union.method.unlabeled_batches.dataset.samples)


def test_unlabeled_stream_replays_from_its_position(tmp_path, tiny_data, teacher_ckpt):
    kw = {"teacher": str(teacher_ckpt), "unlabeled": f"coco:{tiny_data}"}
    a = build_trainer(config(tmp_path / "a", tiny_data, method="fpd", method_kwargs=kw)).method
    b = build_trainer(config(tmp_path / "b", tiny_data, method="fpd", method_kwargs=kw)).method
    first = [next(a.unlabeled_batches)["image"] for _ in range(4)]
    b.load_state_dict({"unlabeled_position": 2})
    assert torch.equal(next(b.unlabeled_batches)["image"], first[2])
    assert a.state_dict() == {"unlabeled_position": 4}


def test_two_iterations_with_a_teacher_train_save_and_resume_exactly(tmp_path, tiny_data, teacher_ckpt):
    kw = {"teacher": str(teacher_ckpt), "alpha": 0.5, "unlabeled": f"folder:{tiny_data.parent / 'images'}"}
    straight = build_trainer(config(tmp_path / "a", tiny_data, method="fpd", method_kwargs=kw))
    before = {k: v.clone() for k, v in straight.model.state_dict().items()}
    result = straight.fit()
    assert result["loss_unlabeled"] > 0 and result["loss_pd"] > 0
    assert any(not torch.equal(before[k], v) for k, v in straight.model.state_dict().items())
    first = build_trainer(config(tmp_path / "b", tiny_data, method="fpd", method_kwargs=kw, epochs=1))
    first.fit()
    resumed = build_trainer(config(tmp_path / "b", tiny_data, method="fpd", method_kwargs=kw), resume=True)
    assert resumed.epoch == 1 and resumed.method.unlabeled_batches.position == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    predictor = Predictor.from_checkpoint(tmp_path / "b" / "model.pt")
    assert sum(p.numel() for p in predictor.model.parameters()) == sum(p.numel() for p in straight.model.parameters())
    keypoints = predictor.predict(np.zeros((96, 96, 3), np.uint8), np.array([[0, 0, 96, 96]], np.float32))
    assert keypoints.shape == (1, 14, 3)


def test_posekit_train_cli_runs_fpd(tmp_path, tiny_data, teacher_ckpt, capsys):
    out = tmp_path / "cli"
    code = cli_main(["train", "--data", f"coco:{tiny_data}", "--out", str(out), "--model", "simplebaseline_r18",
                     "--model-kwargs", json.dumps(STUDENT_KWARGS), "--input-size", "64", "--epochs", "1",
                     "--batch-size", "8", "--workers", "0", "--max-iters", "1", "--no-progress",
                     "--method", "fpd", "--teacher", str(teacher_ckpt), "--alpha", "0.5",
                     "--unlabeled", f"folder:{tiny_data.parent / 'images'}"])
    assert code == 0
    assert "loss_unlabeled" in json.loads(capsys.readouterr().out)
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "fpd" and saved["method_kwargs"]["alpha"] == 0.5
    assert (out / "model.pt").exists()


def test_fpd_is_registered():
    with pytest.raises(TypeError):  # the teacher is required
        build_method("fpd")
    with pytest.raises(ValueError, match="unexpected keyword argument 'teachr'"):  # and a typo is an error
        build_method("fpd", teachr="t.pt")
