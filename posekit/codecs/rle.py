"""Residual Log-likelihood Estimation (Li et al., "Human Pose Regression with Residual Log-likelihood
Estimation", ICCV 2021).

A regression head predicts, per joint, a location ``mu`` and a scale ``sigma`` (normalised coordinates,
see :class:`~posekit.codecs.regression.RegressionCodec`). The error ``bar_mu = (gt - mu) / sigma`` is
scored under ``Q(bar_mu) * G(bar_mu)``: a fixed Laplace (or Gaussian) ``Q`` times a learned 2-D RealNVP
density ``G`` (the residual). The per-joint loss is the paper's

    L = -log Q(bar_mu) - log G(bar_mu) + log sigma_x + log sigma_y

(``Q`` standard Laplace per axis, ``-log Q = sum_d log 2 + |bar_mu_d|``). The reference code counts
``log sigma`` and ``-log G`` once per axis (twice per joint); this module follows the paper.

Numerical guards (the reference's NaN failure: a sigmoid that underflows to 0 makes ``log sigma = -inf``
and ``bar_mu`` explode through the flow): ``sigma = eps + (1 - eps) sigmoid(raw)`` never reaches 0 and
keeps a gradient; the flow sees ``bar_mu`` clamped to ``[-max_error, max_error]`` (the Laplace term keeps
the unclamped, linear penalty); the flow's log-density goes through ``nan_to_num``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["RealNVP", "RLELoss", "rle_sigma"]

_LOG_2PI = math.log(2 * math.pi)


def rle_sigma(raw: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Head output -> predicted standard deviation in ``(eps, 1)`` (normalised units).

    ``eps + (1 - eps) * sigmoid(raw)``: RLE's sigmoid with a floor, so ``log sigma`` stays finite.
    Use it at inference too (``RegressionCodec.decode(coords, sigma=rle_sigma(raw))``).
    """
    return eps + (1.0 - eps) * torch.sigmoid(raw)


def _mlp(hidden: int, final: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                               nn.Linear(hidden, 2)]
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """2-D RealNVP density (Dinh et al. 2017) with affine coupling layers whose masks alternate
    ``[0, 1]`` / ``[1, 0]``, a standard normal prior and small MLPs, as in RLE (6 layers, 64 hidden units,
    ``tanh`` on the log-scale, Xavier-uniform weights with gain 0.01).

    The output biases start at zero as well, so the untrained flow is (almost exactly) the identity and
    ``log_prob`` starts as the standard normal log-density.
    """

    def __init__(self, num_layers: int = 6, hidden: int = 64):
        super().__init__()
        if num_layers < 1 or hidden < 1:
            raise ValueError(f"num_layers and hidden must be positive, got {num_layers}, {hidden}")
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(num_layers, 1)[:num_layers]
        self.register_buffer("masks", masks)
        self.scale_nets = nn.ModuleList([_mlp(hidden, nn.Tanh()) for _ in range(num_layers)])
        self.shift_nets = nn.ModuleList([_mlp(hidden, None) for _ in range(num_layers)])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for net in list(self.scale_nets) + list(self.shift_nets):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for layer in linears:
                nn.init.xavier_uniform_(layer.weight, gain=0.01)
            nn.init.zeros_(linears[-1].bias)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent. x: (..., 2). Returns ``z (..., 2)`` and ``log |det dz/dx| (...)``."""
        z = x
        log_det = x.new_zeros(x.shape[:-1])
        for i in reversed(range(len(self.masks))):
            keep = self.masks[i]
            frozen = z * keep
            log_scale = self.scale_nets[i](frozen) * (1 - keep)
            shift = self.shift_nets[i](frozen) * (1 - keep)
            z = frozen + (1 - keep) * (z - shift) * torch.exp(-log_scale)
            log_det = log_det - log_scale.sum(dim=-1)
        return z, log_det

    def forward_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> data (the inverse of :meth:`inverse`). z: (..., 2)."""
        x = z
        for i in range(len(self.masks)):
            keep = self.masks[i]
            frozen = x * keep
            log_scale = self.scale_nets[i](frozen) * (1 - keep)
            shift = self.shift_nets[i](frozen) * (1 - keep)
            x = frozen + (1 - keep) * (x * torch.exp(log_scale) + shift)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 2) points -> (...) log-density."""
        if x.shape[-1] != 2:
            raise ValueError(f"RealNVP models 2-D points, got shape {tuple(x.shape)}")
        z, log_det = self.inverse(x)
        return -0.5 * (z ** 2).sum(dim=-1) - _LOG_2PI + log_det

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)


class RLELoss(nn.Module):
    """Residual log-likelihood loss with its own flow (the flow's parameters train with the model).

    Args:
        q_distribution: ``"laplace"`` (default, best in the paper) or ``"gaussian"``.
        residual: ``True`` -- density ``Q * G`` (RLE); ``False`` -- the flow alone.
        sigma_eps: floor of sigma (see :func:`rle_sigma`). max_error: clamp of ``|bar_mu|`` fed to the flow.
        num_layers, hidden: RealNVP size.

    forward(pred_mu (N, K, 2), pred_sigma (N, K, 2) RAW head outputs (the sigmoid is applied here),
    target (N, K, 2), weight (N, K) or None) -> scalar: the weighted per-joint losses summed over joints
    and divided by N (the reference's ``size_average``). Can be negative: it is a negative log-density.
    """

    def __init__(self, q_distribution: str = "laplace", residual: bool = True, sigma_eps: float = 1e-4,
                 max_error: float = 100.0, num_layers: int = 6, hidden: int = 64):
        super().__init__()
        if q_distribution not in ("laplace", "gaussian"):
            raise ValueError(f"q_distribution must be 'laplace' or 'gaussian', got {q_distribution!r}")
        if not 0 < sigma_eps < 1:
            raise ValueError(f"sigma_eps must be in (0, 1), got {sigma_eps!r}")
        self.q_distribution = q_distribution
        self.residual = bool(residual)
        self.sigma_eps = float(sigma_eps)
        self.max_error = float(max_error)
        self.flow = RealNVP(num_layers=num_layers, hidden=hidden)

    def per_joint(self, pred_mu: torch.Tensor, pred_sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted (N, K) negative log-likelihoods."""
        for name, value in (("pred_mu", pred_mu), ("pred_sigma", pred_sigma), ("target", target)):
            if value.dim() != 3 or value.shape[-1] != 2:
                raise ValueError(f"{name} must be (N, K, 2), got shape {tuple(value.shape)}")
        if not pred_mu.shape == pred_sigma.shape == target.shape:
            raise ValueError(f"shape mismatch: pred_mu {tuple(pred_mu.shape)}, pred_sigma "
                             f"{tuple(pred_sigma.shape)}, target {tuple(target.shape)}")
        sigma = rle_sigma(pred_sigma, self.sigma_eps)
        error = (target - pred_mu) / sigma  # bar_mu
        flow_input = error.clamp(-self.max_error, self.max_error)
        log_g = torch.nan_to_num(self.flow.log_prob(flow_input), nan=0.0, posinf=0.0, neginf=-1e4)
        loss = torch.log(sigma).sum(dim=-1) - log_g
        if self.residual:
            if self.q_distribution == "laplace":
                loss = loss + (math.log(2.0) + error.abs()).sum(dim=-1)
            else:
                loss = loss + (0.5 * _LOG_2PI + 0.5 * error ** 2).sum(dim=-1)
        return loss

    def forward(self, pred_mu: torch.Tensor, pred_sigma: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        loss = self.per_joint(pred_mu, pred_sigma, target)
        if weight is not None:
            if weight.shape != loss.shape:
                raise ValueError(f"weight must be {tuple(loss.shape)}, got {tuple(weight.shape)}")
            loss = loss * weight
        return loss.sum() / max(loss.shape[0], 1)
