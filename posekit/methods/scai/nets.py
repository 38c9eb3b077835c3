"""SCAI's three networks and the chain rows they read (see :mod:`posekit.methods.scai`): the prediction
network Φ, the self-referee Γ and the correction network C, shared by the six chains of a skeleton, and the
losses that train them on labels."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posekit.codecs import dsnt, flat_softmax

__all__ = ["PROXIMAL", "MIDDLE", "DISTAL", "chains_of", "distal_joints", "gather_chains", "render_gaussian",
           "soft_argmax", "hard_argmax", "referee_error", "ChainEncoder", "ChainMapNet", "CorrectionNet", "ChainNets",
           "SCAINets"]

PROXIMAL, MIDDLE, DISTAL = 0, (1, 2), 3


# -- chains ------------------------------------------------------------------------------------------
def chains_of(skeleton) -> np.ndarray:
    """(6, 4) int64: the skeleton's chains, proximal -> distal."""
    chains = np.asarray(skeleton.chains, dtype=np.int64)
    if chains.ndim != 2 or chains.shape[1] != 4:
        raise ValueError(f"skeleton {skeleton.name}: SCAI needs chains of four joints, got {skeleton.chains}")
    return chains


def distal_joints(chains) -> list[int]:
    """The joints SCAI corrects (distal slots), in chain order."""
    return [int(c[DISTAL]) for c in np.asarray(chains)]


def gather_chains(heatmaps: torch.Tensor, coords: torch.Tensor, scores: torch.Tensor, chains) -> dict:
    """Per-person arrays -> one row per (person, chain).

    heatmaps (N, K, h, w), coords (N, K, 2) in heatmap pixels, scores (N, K); chains (C, 4).
    Returns ``maps`` (N*C, 4, h, w), ``coords`` (N*C, 4, 2), ``scores`` (N*C, 4), ``chain`` (N*C,) chain ids;
    row ``i * C + c`` is person ``i``, chain ``c``.
    """
    idx = torch.as_tensor(np.asarray(chains), dtype=torch.long)
    n, c = heatmaps.shape[0], idx.shape[0]
    maps = heatmaps[:, idx]                                   # (N, C, 4, h, w)
    return {"maps": maps.reshape(n * c, 4, *heatmaps.shape[2:]),
            "coords": coords[:, idx].reshape(n * c, 4, 2),
            "scores": scores[:, idx].reshape(n * c, 4),
            "chain": torch.arange(c).repeat(n)}


# -- differentiable heatmap helpers ------------------------------------------------------------------
def render_gaussian(centers: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """centers (B, 2) heatmap px -> (B, 1, h, w) unnormalised Gaussians (peak 1), differentiable in the centres.

    The codecs' :func:`~posekit.codecs.render_gaussians` draws the same Gaussians for targets, in float64 numpy
    without gradients (they differ here by float32 rounding); the corrected joint needs the gradient."""
    w, h = size
    xs = torch.arange(w, dtype=centers.dtype, device=centers.device)
    ys = torch.arange(h, dtype=centers.dtype, device=centers.device)
    gx = torch.exp(-(xs[None, :] - centers[:, :1]) ** 2 / (2 * sigma ** 2))   # (B, w)
    gy = torch.exp(-(ys[None, :] - centers[:, 1:]) ** 2 / (2 * sigma ** 2))   # (B, h)
    return (gy[:, :, None] * gx[:, None, :])[:, None]


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, 1, h, w) -> (coords (B, 2) heatmap px, probabilities (B, 1, h, w)): the codecs' flat softmax
    and DSNT expectation (:mod:`posekit.codecs.integral`) in heatmap pixels."""
    prob = flat_softmax(logits.float())
    return dsnt(prob, normalized=False)[:, 0], prob


def hard_argmax(maps: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 2) integer peak (x, y) as float."""
    b, _, h, w = maps.shape
    flat = maps.reshape(b, -1).argmax(dim=1)
    return torch.stack([(flat % w).float(), (flat // w).float()], dim=1)


def referee_error(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The fitness (self-referential) error: Euclidean distance (B,) between the referee's proximal joint and
    the observed one, (B, 2) each, heatmap px. Zero exactly when they agree."""
    squared = ((predicted - observed) ** 2).sum(dim=-1)
    norm = torch.sqrt(squared.clamp(min=1e-12))  # finite gradient at 0
    return torch.where(squared > 0, norm, torch.zeros_like(norm))


# -- networks ----------------------------------------------------------------------------------------
def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True))


def _extra_planes(x: torch.Tensor, chain: torch.Tensor, num_chains: int) -> torch.Tensor:
    """Append ``num_chains`` one-hot chain planes and two coordinate planes in [-1, 1]."""
    b, _, h, w = x.shape
    onehot = F.one_hot(chain.to(x.device), num_chains).to(x.dtype)[:, :, None, None].expand(b, num_chains, h, w)
    ys = torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device)[None, None, :, None].expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device)[None, None, None, :].expand(b, 1, h, w)
    return torch.cat([x, onehot, xs, ys], dim=1)


class ChainEncoder(nn.Module):
    """Heatmaps of one chain (+ chain one-hot + coordinates) -> features at 1, 1/2 and 1/4 resolution."""

    def __init__(self, in_maps: int, num_chains: int, width: int):
        super().__init__()
        c = width
        self.num_chains = num_chains
        self.stem = _block(in_maps + num_chains + 2, c)
        self.down1 = _block(c, 2 * c, stride=2)
        self.down2 = _block(2 * c, 2 * c, stride=2)
        self.context = nn.Sequential(_block(2 * c, 2 * c, dilation=2), _block(2 * c, 2 * c, dilation=2))

    def forward(self, x: torch.Tensor, chain: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(_extra_planes(x, chain, self.num_chains))
        f1 = self.down1(f0)
        f2 = self.context(self.down2(f1))
        return [f0, f1, f2]


class ChainMapNet(nn.Module):
    """Encoder-decoder: (B, in_maps, h, w) heatmaps of a chain -> (B, 1, h, w) map of one joint.

    Used twice: the prediction network Φ (p, m1, m2 -> d heatmap) and the self-referee Γ (m1, m2, d ->
    p logits, read by soft-argmax).
    """

    def __init__(self, in_maps: int = 3, num_chains: int = 6, width: int = 16):
        super().__init__()
        c = width
        self.encoder = ChainEncoder(in_maps, num_chains, c)
        self.up1 = _block(4 * c, 2 * c)
        self.up0 = _block(3 * c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        f0, f1, f2 = self.encoder(x, chain)
        u1 = self.up1(torch.cat([F.interpolate(f2, size=f1.shape[2:], mode="bilinear", align_corners=False), f1], 1))
        u0 = self.up0(torch.cat([F.interpolate(u1, size=f0.shape[2:], mode="bilinear", align_corners=False), f0], 1))
        return self.head(u0)


#: scalar inputs of the correction network (see :meth:`SCAINets.correction_scalars`)
NUM_SCALARS = 17


class CorrectionNet(nn.Module):
    """C: (B, 6, h, w) maps [p, m1, m2, d, Φ(d), Γ(p | uncorrected d)] + (B, 17) scalars -> offset (B, 2) heatmap px.

    The offset is ``max_offset * tanh(z)`` and the last linear layer starts at zero: an untrained C changes
    nothing.
    """

    def __init__(self, num_chains: int = 6, width: int = 16, max_offset: float = 4.0):
        super().__init__()
        c = width
        self.max_offset = float(max_offset)
        self.encoder = ChainEncoder(6, num_chains, c)
        self.mlp = nn.Sequential(nn.Linear(4 * c + NUM_SCALARS, 2 * c), nn.ReLU(inplace=True),
                                 nn.Linear(2 * c, 2 * c), nn.ReLU(inplace=True))
        self.head = nn.Linear(2 * c, 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, maps: torch.Tensor, scalars: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        f2 = self.encoder(maps, chain)[-1]
        pooled = torch.cat([f2.mean(dim=(2, 3)), f2.amax(dim=(2, 3))], dim=1)
        return self.max_offset * torch.tanh(self.head(self.mlp(torch.cat([pooled, scalars], dim=1))))


class ChainNets(nn.Module):
    """What every design of SCAI's nets is built for: a pose model's heatmap frame (``heatmap_size`` (w, h),
    the codec's ``sigma``), its ``chains`` (C, 4), a ``width`` and ``max_offset``, C's largest correction in
    heatmap px (default a quarter of the heatmap side). ``config()`` / ``from_config`` round-trip them."""

    #: ``width`` of a config that names none
    default_width: int

    def __init__(self, heatmap_size, sigma: float, chains, width: int, max_offset: float | None = None):
        super().__init__()
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.chains = np.asarray(chains, dtype=np.int64).tolist()
        self.width = int(width)
        self.max_offset = float(max_offset if max_offset is not None else max(self.heatmap_size) / 4)

    def config(self) -> dict:
        return {"heatmap_size": list(self.heatmap_size), "sigma": self.sigma, "chains": self.chains,
                "width": self.width, "max_offset": self.max_offset}

    @classmethod
    def from_config(cls, cfg: dict) -> "ChainNets":
        return cls(cfg["heatmap_size"], cfg["sigma"], cfg["chains"], cfg.get("width", cls.default_width),
                   cfg.get("max_offset"))


class SCAINets(ChainNets):
    """The three SCAI networks of one pose model's heatmap frame, shared by the six chains.

    ``config``: ``heatmap_size`` (w, h), ``sigma`` (the codec's, for rendering the corrected joint), ``chains``
    (C, 4), ``width``, ``max_offset`` (heatmap px).
    """

    default_width = 16

    def __init__(self, heatmap_size, sigma: float, chains, width: int = 16, max_offset: float | None = None):
        super().__init__(heatmap_size, sigma, chains, width, max_offset)
        n = len(self.chains)
        self.prediction = ChainMapNet(3, n, width)
        self.referee = ChainMapNet(3, n, width)
        self.correction = CorrectionNet(n, width, self.max_offset)

    # -- pieces -----------------------------------------------------------------------------------
    def referee_coords(self, middle_maps: torch.Tensor, distal_xy: torch.Tensor, chain: torch.Tensor,
                       params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Γ: middle heatmaps (B, 2, h, w) + distal joint (B, 2) heatmap px -> proximal (coords (B, 2), map).

        ``params``: optional replacement parameters (``torch.func.functional_call``), e.g. detached ones so a
        loss through the referee trains only what feeds it.
        """
        x = torch.cat([middle_maps, render_gaussian(distal_xy, self.heatmap_size, self.sigma)], dim=1)
        if params is None:
            logits = self.referee(x, chain)
        else:
            logits = torch.func.functional_call(self.referee, params, (x, chain))
        return soft_argmax(logits)

    def fitness(self, rows: dict, distal_xy: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Self-referential error (B,) of a distal joint estimate: Γ's proximal joint vs the observed one."""
        predicted, _ = self.referee_coords(rows["maps"][:, 1:3], distal_xy, rows["chain"], params)
        return referee_error(predicted, rows["coords"][:, PROXIMAL])

    @torch.no_grad()
    def context(self, rows: dict, phi: torch.Tensor | None = None) -> dict:
        """What C is conditioned on and that does not depend on C: Φ's heatmap (computed unless given) and Γ's
        feedback on the uncorrected distal joint. No gradients."""
        maps, coords, chain = rows["maps"], rows["coords"], rows["chain"]
        phi = self.prediction(maps[:, :3], chain) if phi is None else phi.detach()
        ref_xy, ref_map = self.referee_coords(maps[:, 1:3], coords[:, DISTAL], chain)
        error = referee_error(ref_xy, coords[:, PROXIMAL])
        return {"phi": phi, "phi_xy": hard_argmax(phi), "ref_xy": ref_xy, "ref_map": ref_map, "error": error}

    def correction_scalars(self, rows: dict, ctx: dict) -> torch.Tensor:
        """(B, 17): joints relative to the observed distal joint, its absolute position, Φ's peak relative to
        it, Γ's feedback vector and error, the four peak scores; lengths over the heatmap side."""
        w, h = self.heatmap_size
        side = float(max(w, h))
        coords = rows["coords"]
        d = coords[:, DISTAL]
        rel = (coords[:, :3] - d[:, None]).reshape(len(d), 6) / side
        absolute = d / torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=d.dtype) * 2 - 1
        phi_rel = (ctx["phi_xy"] - d) / side
        feedback = (ctx["ref_xy"] - coords[:, PROXIMAL]) / side
        return torch.cat([rel, absolute, phi_rel, feedback, ctx["error"][:, None] / side,
                          rows["scores"].clamp(-1, 2)], dim=1)

    def offsets(self, rows: dict, ctx: dict) -> torch.Tensor:
        """C's correction (B, 2) of the distal joint, heatmap px (differentiable in C's parameters)."""
        maps = torch.cat([rows["maps"], ctx["phi"], ctx["ref_map"]], dim=1)
        return self.correction(maps, self.correction_scalars(rows, ctx), rows["chain"])

    # -- training on labels ------------------------------------------------------------------------
    def losses(self, rows: dict, gt_xy: torch.Tensor, gt_vis: torch.Tensor, gt_maps: torch.Tensor,
               feedback_weight: float = 0.1) -> dict:
        """Supervised SCAI losses of one batch of chain rows.

        gt_xy (B, 4, 2) heatmap px, gt_vis (B, 4) {0, 1}, gt_maps (B, 4, h, w) Gaussian targets of the chain.
        Returns ``loss`` (sum) and detached parts ``loss_pred``, ``loss_ref``, ``loss_corr``, ``loss_fb``
        plus ``distal_err`` / ``corrected_err`` (mean px over labelled distal joints) and the uncorrected
        fitness error ``fitness`` (B,) with the distal error ``true_err`` (B,) for correlation logging.
        """
        maps, coords, chain = rows["maps"], rows["coords"], rows["chain"]
        vd, vp = gt_vis[:, DISTAL], gt_vis[:, PROXIMAL]
        # Φ: heatmap MSE to the Gaussian of the true distal joint
        phi = self.prediction(maps[:, :3], chain)
        per_row = ((phi[:, 0] - gt_maps[:, DISTAL]) ** 2).mean(dim=(1, 2))
        loss_pred = (per_row * vd).sum() / vd.sum().clamp(min=1) * 1000.0
        # Γ: proximal joint from the observed middle joints and the TRUE distal joint
        distal_in = torch.where(vd[:, None] > 0, gt_xy[:, DISTAL], coords[:, DISTAL])
        ref_xy, _ = self.referee_coords(maps[:, 1:3], distal_in, chain)
        wr = vd * vp
        loss_ref = (referee_error(ref_xy, gt_xy[:, PROXIMAL]) * wr).sum() / wr.sum().clamp(min=1)
        # C: toward the truth, and toward a low fitness error with the referee held fixed
        return correction_losses(self, rows, self.context(rows, phi), gt_xy, vd, loss_pred, loss_ref, feedback_weight)


def correction_losses(nets, rows: dict, ctx: dict, gt_xy: torch.Tensor, vd: torch.Tensor, loss_pred: torch.Tensor,
                      loss_ref: torch.Tensor, feedback_weight: float) -> dict:
    """C's losses on top of Φ's and Γ's, and the logs, as both designs' ``losses`` return them.

    C: smooth-L1 (px) of the corrected distal joint to the truth, plus ``feedback_weight`` x its fitness error
    with the referee held fixed. ``vd`` (B,) marks the labelled distal joints.
    """
    coords = rows["coords"]
    n = vd.sum().clamp(min=1)
    corrected = coords[:, DISTAL] + nets.offsets(rows, ctx)
    loss_corr = (F.smooth_l1_loss(corrected, gt_xy[:, DISTAL], reduction="none").sum(dim=1) * vd).sum() / n
    frozen = {k: v.detach() for k, v in nets.referee.named_parameters()}
    loss_fb = nets.fitness(rows, corrected, params=frozen).mean()
    with torch.no_grad():
        true_err = torch.linalg.norm(coords[:, DISTAL] - gt_xy[:, DISTAL], dim=1)
        corr_err = torch.linalg.norm(corrected - gt_xy[:, DISTAL], dim=1)
        logs = {"distal_err": (true_err * vd).sum() / n, "corrected_err": (corr_err * vd).sum() / n}
    return {"loss": loss_pred + loss_ref + loss_corr + feedback_weight * loss_fb, "loss_pred": loss_pred.detach(),
            "loss_ref": loss_ref.detach(), "loss_corr": loss_corr.detach(), "loss_fb": loss_fb.detach(), **logs,
            "fitness": ctx["error"], "true_err": true_err, "visible": vd}
