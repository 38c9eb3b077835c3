"""The guarded step with known answers: a refused step (NaN loss, or a finite loss with a NaN gradient) leaves
every weight, BatchNorm buffer and optimiser state bit-identical; a finite step moves the weights."""
import pytest
import torch

from posekit.training.guard import BufferSnapshot, all_finite, guarded_step


def net_and_optimizer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    return net, optimizer


def frozen_copy(net, optimizer):
    return {k: v.clone() for k, v in net.state_dict().items()}


def assert_unchanged(net, optimizer, weights):
    for name, value in net.state_dict().items():
        assert torch.equal(value, weights[name]), name  # weights and BatchNorm buffers, bit for bit
    assert not optimizer.state  # the optimiser never stepped (no Adam moments)
    assert all(p.grad is None for p in net.parameters())


def step(net, optimizer, make_loss, policy):
    snapshot = BufferSnapshot([net])
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0], [0.0, 1.0, -2.0]])
    loss = make_loss(net(x))  # the train-mode forward pass has already updated the BatchNorm statistics
    return guarded_step(loss, [optimizer], list(net.named_parameters()), snapshot, policy=policy, where="test step 3")


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_a_nan_loss_changes_nothing(policy):
    net, optimizer = net_and_optimizer()
    before = frozen_copy(net, optimizer)
    nan_loss = lambda out: out.sum() * float("nan")  # noqa: E731
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="non-finite loss at test step 3"):
            step(net, optimizer, nan_loss, policy)
    else:
        assert step(net, optimizer, nan_loss, policy) == "non-finite loss at test step 3"
    assert_unchanged(net, optimizer, before)
    assert net[1].num_batches_tracked.item() == 0  # the forward pass's BatchNorm update was undone


def test_a_nan_gradient_under_a_finite_loss_changes_nothing():
    net, optimizer = net_and_optimizer()
    before = frozen_copy(net, optimizer)
    weight = net[0].weight
    # sqrt(|w - w|) is exactly 0, its gradient inf * 0 = NaN
    refused = step(net, optimizer, lambda out: out.sum() + torch.sqrt((weight - weight.detach()).abs().sum()), "skip")
    assert refused == "non-finite gradient at test step 3 (first in 0.weight)"
    assert_unchanged(net, optimizer, before)


def test_a_finite_step_moves_the_weights_and_keeps_the_statistics():
    net, optimizer = net_and_optimizer()
    weight = net[0].weight.detach().clone()
    assert step(net, optimizer, lambda out: out.sum(), "raise") is None
    assert not torch.equal(net[0].weight, weight)
    assert net[1].num_batches_tracked.item() == 1
    with pytest.raises(ValueError, match="nan_policy"):
        step(net, optimizer, lambda out: out.sum(), "ignore")


def test_snapshot_restores_buffers_in_place_and_all_finite():
    norm = torch.nn.BatchNorm1d(2)
    mean = norm.running_mean
    snapshot = BufferSnapshot([norm])
    norm(torch.tensor([[1.0, 5.0], [3.0, 7.0]]))
    assert torch.allclose(norm.running_mean, torch.tensor([0.2, 0.6]))  # momentum 0.1 towards the batch mean (2, 6)
    snapshot.restore()
    assert norm.running_mean is mean and torch.equal(mean, torch.zeros(2)) and norm.num_batches_tracked.item() == 0
    assert all_finite(torch.tensor(1.0), [torch.ones(2), None])
    assert not all_finite(torch.tensor(1.0), [torch.tensor([1.0, float("inf")])])
    assert not all_finite(torch.tensor(float("nan")))
