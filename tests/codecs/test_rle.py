import math

import pytest
import torch
import torch.nn as nn

from posekit.codecs import RealNVP, RLELoss, rle_sigma


def make_identity(flow: RealNVP) -> RealNVP:
    """Zero every output layer: log-scale = tanh(0) = 0 and shift = 0, so the flow is exactly the identity."""
    with torch.no_grad():
        for net in list(flow.scale_nets) + list(flow.shift_nets):
            last = [m for m in net if isinstance(m, nn.Linear)][-1]
            last.weight.zero_()
            last.bias.zero_()
    return flow


def test_untrained_flow_is_nearly_standard_normal():
    torch.manual_seed(0)
    flow = RealNVP()
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1)) * 2
    standard = -0.5 * (x ** 2).sum(-1) - math.log(2 * math.pi)
    assert (flow.log_prob(x) - standard).abs().max() < 0.05
    torch.testing.assert_close(make_identity(flow).log_prob(x), standard)


def test_flow_density_integrates_to_one_and_inverts():
    torch.manual_seed(0)
    flow = RealNVP(num_layers=4, hidden=16)
    with torch.no_grad():  # a clearly non-trivial transformation
        for net in list(flow.scale_nets) + list(flow.shift_nets):
            for layer in net:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=0.4)
    step = 0.1
    axis = torch.arange(-10, 10, step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    flow = flow.double()
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * step ** 2
        z = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        x = flow.forward_transform(z)
        back, _ = flow.inverse(x)
    assert mass == pytest.approx(1.0, abs=1e-2)
    torch.testing.assert_close(back, z)
    assert (x - z).abs().max() > 0.1


def test_loss_by_hand_with_identity_flow():
    loss_fn = RLELoss()
    make_identity(loss_fn.flow)
    target = torch.tensor([[[0.1, -0.2]]])
    mu = torch.tensor([[[0.2, -0.4]]])
    raw = torch.zeros(1, 1, 2)
    sigma = 1e-4 + (1 - 1e-4) * 0.5
    bar = torch.tensor([-0.1, 0.2]) / sigma
    # -log Q (standard Laplace) - log G (standard normal) + log sigma_x + log sigma_y
    expected = (2 * math.log(2) + bar.abs().sum() + 0.5 * (bar ** 2).sum() + math.log(2 * math.pi)
                + 2 * math.log(sigma))
    assert loss_fn(mu, raw, target).item() == pytest.approx(expected.item(), rel=1e-5)
    perfect = loss_fn(target, raw, target).item()
    assert perfect == pytest.approx(2 * math.log(2) + math.log(2 * math.pi) + 2 * math.log(sigma), rel=1e-6)


def test_better_mu_gives_lower_loss():
    torch.manual_seed(0)
    loss_fn = RLELoss()
    target = torch.rand(4, 17, 2) - 0.5
    raw = torch.full((4, 17, 2), -2.0)
    losses = [loss_fn(target + offset, raw, target).item() for offset in (0.0, 0.01, 0.05, 0.2)]
    assert losses == sorted(losses) and losses[0] < losses[-1]


@pytest.mark.parametrize("q", ["laplace", "gaussian"])
@pytest.mark.parametrize("case", ["sigma to zero", "sigma to one", "huge residual", "mu far away"])
def test_extreme_inputs_give_finite_loss_and_gradients(q, case):
    torch.manual_seed(0)
    loss_fn = RLELoss(q_distribution=q)
    target = torch.rand(2, 5, 2) - 0.5
    mu = target.clone()
    raw = torch.zeros(2, 5, 2)
    if case == "sigma to zero":
        raw[:] = -1e4
        mu = mu + 0.3
    elif case == "sigma to one":
        raw[:] = 1e4
    elif case == "huge residual":
        raw[:] = -30.0
        mu = mu + 1e3
    else:
        mu = mu - 1e6
    mu.requires_grad_(True)
    raw.requires_grad_(True)
    loss = loss_fn(mu, raw, target, torch.ones(2, 5))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(mu.grad).all() and torch.isfinite(raw.grad).all()
    for p in loss_fn.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_weights_mask_joints_and_loss_is_divided_by_batch():
    torch.manual_seed(0)
    loss_fn = RLELoss()
    target = torch.zeros(2, 3, 2)
    mu = torch.rand(2, 3, 2)
    raw = torch.zeros(2, 3, 2)
    per_joint = loss_fn.per_joint(mu, raw, target)
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    expected = (per_joint * weight).sum() / 2
    torch.testing.assert_close(loss_fn(mu, raw, target, weight), expected)
    with pytest.raises(ValueError, match="weight"):
        loss_fn(mu, raw, target, torch.ones(2, 2))


def test_rle_sigma_range():
    s = rle_sigma(torch.tensor([-1e4, 0.0, 1e4]))
    assert s[0].item() == pytest.approx(1e-4) and s[1].item() == pytest.approx(0.5, abs=1e-4)
    assert s[2].item() == pytest.approx(1.0)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        RLELoss(q_distribution="cauchy")
    with pytest.raises(ValueError, match="shape"):
        RLELoss()(torch.zeros(1, 2, 2), torch.zeros(1, 3, 2), torch.zeros(1, 2, 2))
