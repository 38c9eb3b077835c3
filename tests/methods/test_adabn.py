"""AdaBN with known answers: the running statistics become the plain average over the target batches, the
learned weights stay, and a checkpoint adapted from Python or `posekit adapt --method adabn` loads and predicts."""
import pytest
import torch

from posekit.cli import main as cli_main
from posekit.checkpoint import load_checkpoint
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer
from posekit.inference.predictor import Predictor
from posekit.methods.adabn import (adapt_batchnorm, adapt_batchnorm_checkpoint, align_conv_statistics, aligned_convs,
                                   source_conv_moments)


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


# -- folded BatchNorm (MoveNet): align_conv_statistics ---------------------------------------------------


def test_one_channel_alignment_by_hand():
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    source = torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)    # outputs 0, 2: mean 1, std 1
    target = torch.tensor([1.0, 5.0]).view(2, 1, 1, 1)    # outputs 1, 5: mean 3, std 2
    moments = source_conv_moments(conv, {"c": conv}, [source])
    assert moments["c"][0].item() == 1.0 and moments["c"][1].item() == 1.0
    folded = align_conv_statistics(conv, moments, target, {"c": conv})
    # y' = (y - 3) * 1 / 2 + 1 = 0.5 y - 0.5
    assert folded["c"][0].item() == pytest.approx(0.5) and folded["c"][1].item() == pytest.approx(-0.5)
    assert conv.weight.item() == pytest.approx(0.5) and conv.bias.item() == pytest.approx(-0.5)
    assert torch.allclose(conv(target).flatten(), torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("batch_size,mean,std", [(None, 3.0, 6.5 ** 0.5), (2, 3.0, 2.5 ** 0.5)])
def test_alignment_in_batches_pools_the_batch_moments_by_hand(batch_size, mean, std):
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    moments = {"c": (torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64))}
    # outputs 0, 2, 3, 7: all at once mean 3, variance 6.5; in two batches (mean 1, var 1) and (mean 5, var 4),
    # pooled as BatchNorm's averaged statistics: mean 3, variance 2.5
    target = torch.tensor([0.0, 2.0, 3.0, 7.0]).view(4, 1, 1, 1)
    folded = align_conv_statistics(conv, moments, target, {"c": conv}, batch_size=batch_size)
    scale = 2.0 / std
    assert folded["c"][0].item() == pytest.approx(scale) and folded["c"][1].item() == pytest.approx(1.0 - scale * mean)
    assert conv.weight.item() == pytest.approx(scale) and conv.bias.item() == pytest.approx(1.0 - scale * mean)


def test_a_constant_target_channel_keeps_its_scale():
    conv = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    moments = source_conv_moments(conv, {"c": conv}, [torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)])
    align_conv_statistics(conv, moments, torch.full((2, 1, 1, 1), 4.0), {"c": conv})
    assert conv.weight.item() == 1.0 and conv.bias.item() == pytest.approx(-3.0)  # mean 4 -> 1, no blow-up


def bn_net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4, eps=0.0),
                              torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 1, bias=False), torch.nn.BatchNorm2d(5, eps=0.0))
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
    return net.eval()


def set_population_stats(net, images):
    """The BatchNorm running statistics := the population moments of each conv output on ``images``, layer by
    layer (what AdaBN estimates, without the unbiased-variance correction)."""
    x = images
    for module in net:
        if isinstance(module, torch.nn.BatchNorm2d):
            y = x.transpose(0, 1).reshape(x.shape[1], -1)
            module.running_mean.copy_(y.mean(1))
            module.running_var.copy_(y.var(1, unbiased=False))
        x = module(x)


def fold(net):
    """conv (no bias) + BatchNorm -> one conv with a bias, as the MoveNet graphs ship it."""
    layers = []
    for conv, bn in ((net[0], net[1]), (net[3], net[4])):
        folded = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
        factor = bn.weight / bn.running_var.sqrt()
        folded.weight.data = conv.weight.data * factor.view(-1, 1, 1, 1)
        folded.bias.data = bn.bias.data - factor * bn.running_mean
        layers.append(folded)
    return torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1]).eval()


@torch.no_grad()
def test_alignment_of_a_folded_network_is_adabn():
    g = torch.Generator().manual_seed(1)
    source = torch.randn(6, 3, 8, 8, generator=g)
    target = 0.5 * torch.randn(6, 3, 8, 8, generator=g) + 0.7
    net = bn_net()
    set_population_stats(net, source)
    folded = fold(net)
    convs = aligned_convs(folded)
    assert list(convs) == ["0", "2"]
    moments = source_conv_moments(folded, convs, [source[:3], source[3:]])  # batches accumulate
    # on source images a folded conv's output has BatchNorm's beta as mean and |gamma| as std
    assert torch.allclose(moments["0"][0].float(), net[1].bias, atol=1e-5)
    assert torch.allclose(moments["2"][1].float(), net[4].weight, atol=1e-5)
    align_conv_statistics(folded, moments, target, convs)
    set_population_stats(net, target)  # AdaBN
    assert torch.allclose(folded(target), net(target), atol=1e-5)


def test_alignment_on_the_source_images_changes_nothing():
    from posekit.models import build_model
    torch.manual_seed(0)
    model = build_model("movenet_lightning", num_keypoints=17).eval()
    convs = aligned_convs(model)
    assert len(convs) == 60 and "heads.heatmap.1" not in convs  # the per-joint output conv is left alone
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        before = model(images)
    align_conv_statistics(model, source_conv_moments(model, convs, [images]), images, convs)
    with torch.no_grad():
        assert torch.allclose(model(images), before, atol=1e-5)


def test_alignment_refuses_a_conv_without_bias():
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    with pytest.raises(ValueError, match="conv c has no bias"):
        align_conv_statistics(conv, {}, torch.ones(1, 1, 1, 1), {"c": conv})


def test_folded_checkpoint_from_the_cli(tmp_path, tiny_data, capsys):
    """A MoveNet source (no BatchNorm): without --source-images the error says what to give; with the target's own
    images as the source's, the alignment changes (almost) nothing and the result deploys."""
    source = tmp_path / "movenet"
    build_trainer(TrainConfig(train=f"coco:{tiny_data}", out=str(source), model="movenet_lightning",
                              input_size=(64, 64), epochs=1, batch_size=4, workers=0, progress=False,
                              max_iters_per_epoch=1)).fit()
    args = ["adapt", "--method", "adabn", "--source", str(source / "model.pt"), "--target", f"coco:{tiny_data}",
            "--workers", "0", "--batch-size", "4"]
    assert cli_main(args + ["--out", str(tmp_path / "plain")]) == 2
    assert "--source-images" in capsys.readouterr().err
    assert cli_main(args + ["--out", str(tmp_path / "folded"), "--source-images", f"coco:{tiny_data}"]) == 0
    folded = load_checkpoint(tmp_path / "folded" / "model.pt")
    assert folded["config"]["adaptation"]["method"] == "adabn_folded"
    before = load_checkpoint(source / "model.pt")["model"]
    assert before.keys() == folded["model"].keys()
    assert all(torch.allclose(before[k].float(), folded["model"][k].float(), atol=1e-3, rtol=1e-3) for k in before)
    Predictor.from_checkpoint(tmp_path / "folded" / "model.pt")


def test_channel_moments_over_more_channels_than_one_copy_holds():
    from posekit.methods.adabn import MOMENT_CHANNELS, _channel_moments
    channels = 2 * MOMENT_CHANNELS + 3
    # channel c holds c, c + 1, c + 2, c + 3 (two samples x two pixels): mean c + 1.5, std sqrt(1.25)
    y = torch.arange(channels, dtype=torch.float32)[None, :, None, None] + torch.tensor([[0.0, 1.0], [2.0, 3.0]])[:, None, None, :]
    mean, std = _channel_moments(y)
    assert mean.dtype == torch.float64
    assert torch.equal(mean, torch.arange(channels, dtype=torch.float64) + 1.5)
    assert torch.allclose(std, torch.full((channels,), 1.25 ** 0.5, dtype=torch.float64), atol=1e-12)
