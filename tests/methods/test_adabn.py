"""AdaBN with known answers: the running statistics become the plain average over the target batches, the
learned weights stay, and a checkpoint adapted from Python or `posekit adapt --method adabn` loads and predicts."""
import pytest
import torch

from posekit.cli import main as cli_main
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer
from posekit.inference.predictor import Predictor
from posekit.methods.adabn import adapt_batchnorm, adapt_batchnorm_checkpoint


def test_statistics_are_the_average_over_target_batches():
    norm = torch.nn.BatchNorm2d(2, momentum=0.1)
    with torch.no_grad():
        norm.weight.fill_(2.0)
    a = torch.stack([torch.full((3, 3), 1.0), torch.tensor([[0.0, 2.0, 0.0]] * 3)]).expand(2, 2, 3, 3)
    b = torch.stack([torch.full((3, 3), 3.0), torch.tensor([[4.0, 4.0, 4.0]] * 3)]).expand(2, 2, 3, 3)
    assert adapt_batchnorm(norm, [a, b]) == 4
    # channel 0: batch means 1 and 3, variances 0 -> mean 2, var 0
    # channel 1: batch a holds 12 zeros and 6 twos (mean 2/3, unbiased variance 16/17), batch b is all 4s
    var_a = torch.tensor(16 / 17)
    assert torch.allclose(a[:, 1].flatten().var(unbiased=True), var_a)
    assert torch.allclose(norm.running_mean, torch.tensor([2.0, (2 / 3 + 4) / 2]))
    assert torch.allclose(norm.running_var, torch.tensor([0.0, var_a / 2]))
    assert norm.momentum == 0.1 and not norm.training  # restored, ready for inference
    assert torch.equal(norm.weight, torch.full((2,), 2.0))  # learned affine weights untouched


def test_no_batchnorm_or_no_images_is_an_error():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt_batchnorm(torch.nn.Conv2d(3, 3, 1), [torch.zeros(1, 3, 4, 4)])
    with pytest.raises(ValueError, match="no target images"):
        adapt_batchnorm(torch.nn.BatchNorm2d(3), [])


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("source")
    build_trainer(TrainConfig(train=f"coco:{tiny_data}", out=str(out), model="simplebaseline_r18",
                        model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=1,
                        batch_size=8, workers=0, progress=False, max_iters_per_epoch=1)).fit()
    return out / "model.pt"


def test_checkpoint_keeps_weights_changes_statistics_and_predicts(tmp_path, tiny_data, source):
    result = adapt_batchnorm_checkpoint(source, f"coco:{tiny_data}", tmp_path / "adabn.pt", batch_size=4)
    assert result["images"] > 0
    before, after = load_checkpoint(source)["model"], load_checkpoint(tmp_path / "adabn.pt")["model"]
    assert before.keys() == after.keys()
    stats = [k for k in before if k.endswith("running_mean")]
    weights = [k for k in before if k.endswith(".weight")]
    assert stats and all(torch.equal(before[k], after[k]) for k in weights)
    assert any(not torch.allclose(before[k], after[k]) for k in stats)
    assert load_checkpoint(tmp_path / "adabn.pt")["config"]["adaptation"]["method"] == "adabn"
    Predictor.from_checkpoint(tmp_path / "adabn.pt")  # deployable as is

    assert cli_main(["adapt", "--method", "adabn", "--source", str(source), "--target", f"coco:{tiny_data}",
                     "--out", str(tmp_path / "cli"), "--workers", "0", "--batch-size", "4"]) == 0
    cli = load_checkpoint(tmp_path / "cli" / "model.pt")["model"]
    assert all(torch.equal(cli[k], after[k]) for k in stats)  # same data, same batches: same statistics
