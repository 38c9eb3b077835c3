"""SCAI's three networks on joint *coordinates and confidences* instead of heatmaps (design ``"coords"``).

The SCAI reading note ends by asking whether heatmaps are needed at all: a chain's high-confidence joints
could predict the next joint's position from coordinates alone, with a two-layer MLP. This module is that
design, with the same interface as the heatmap design (:class:`~posekit.methods.scai.nets.SCAINets`), so the
corrector, test-time training, training loop and checkpoints serve both:

* **prediction** Φ: the base joints ``p, m1, m2`` (coordinates relative to ``m2``, ``m2``'s absolute position,
  the three peak scores) -> the distal joint ``d`` as an offset from ``m2``;
* **self-referee** Γ: ``m1, m2`` and a distal joint ``d`` (relative to ``m1``, ``m1``'s absolute position, the
  two middle scores) -> the proximal joint ``p`` as an offset from ``m1``; the fitness error is
  ``|| Γ(m1, m2, d') - p_observed ||`` (heatmap px), as in the heatmap design;
* **correction** C: the four observed joints relative to the observed ``d``, ``d``'s absolute position, the four
  scores, Φ's opinion relative to ``d``, Γ's feedback vector and error (the heatmap design's 17 scalar inputs),
  plus the one thing read from a heatmap: the distal map's runner-up peak (farther than 2 sigma from ``d``)
  relative to ``d`` and its value -- the pose network's second choice, which a wrong first choice often
  is not -> an offset of ``d``, ``max_offset * tanh(.)``, last layer zero (a fresh C changes nothing).

Each network is an MLP with two hidden layers of ``width`` units shared by the six chains, told apart by a
one-hot chain code appended to the input. Lengths are in heatmap pixels divided by the heatmap side,
absolute positions in [-1, 1]. The rows are those of :func:`~posekit.methods.scai.nets.gather_chains`; of
their heatmaps only the distal joint's is read, for its runner-up peak.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posekit.methods.scai.nets import DISTAL, PROXIMAL, ChainNets, correction_losses, referee_error

__all__ = ["M1", "M2", "ChainMLP", "CoordSCAINets", "prediction_inputs", "referee_inputs", "correction_inputs",
           "to_unit", "second_peak", "NUM_PREDICTION_INPUTS", "NUM_REFEREE_INPUTS", "NUM_CORRECTION_INPUTS"]

M1, M2 = 1, 2  # the middle slots of a chain (p, m1, m2, d)
NUM_PREDICTION_INPUTS, NUM_REFEREE_INPUTS, NUM_CORRECTION_INPUTS = 9, 8, 20


def to_unit(xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 2) heatmap px -> [-1, 1] over the heatmap (0 -> -1, side - 1 -> 1)."""
    w, h = size
    return xy / torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=xy.dtype, device=xy.device) * 2 - 1


def prediction_inputs(coords: torch.Tensor, scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Φ's input (B, 9): ``(p - m2) / side``, ``(m1 - m2) / side``, ``m2`` in [-1, 1], scores of p, m1, m2.

    coords (B, 4, 2) heatmap px (chain order p, m1, m2, d), scores (B, 4); ``size`` (w, h) of the heatmap."""
    side = float(max(size))
    origin = coords[:, M2]
    return torch.cat([(coords[:, PROXIMAL] - origin) / side, (coords[:, M1] - origin) / side,
                      to_unit(origin, size), scores[:, :3].clamp(-1, 2)], dim=1)


def referee_inputs(coords: torch.Tensor, scores: torch.Tensor, distal_xy: torch.Tensor,
                   size: tuple[int, int]) -> torch.Tensor:
    """Γ's input (B, 8): ``(m2 - m1) / side``, ``(d - m1) / side``, ``m1`` in [-1, 1], scores of m1, m2.

    ``distal_xy`` (B, 2) heatmap px: the distal joint to verify (ground truth in training, the corrected one
    at test time); the observed middle joints come from ``coords`` (B, 4, 2)."""
    side = float(max(size))
    origin = coords[:, M1]
    return torch.cat([(coords[:, M2] - origin) / side, (distal_xy - origin) / side, to_unit(origin, size),
                      scores[:, M1:M2 + 1].clamp(-1, 2)], dim=1)


def second_peak(distal_maps: torch.Tensor, distal_xy: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The distal heatmap's best candidate away from the decoded joint: distal_maps (B, h, w), distal_xy (B, 2)
    heatmap px -> (xy (B, 2) of the highest pixel farther than ``radius`` px from ``distal_xy``, its value (B,)).
    The pose network's runner-up for the joint (e.g. the other wrist, or the true one when it chose wrong)."""
    b, h, w = distal_maps.shape
    ys = torch.arange(h, dtype=distal_xy.dtype, device=distal_xy.device)[None, :, None]
    xs = torch.arange(w, dtype=distal_xy.dtype, device=distal_xy.device)[None, None, :]
    near = (xs - distal_xy[:, 0, None, None]) ** 2 + (ys - distal_xy[:, 1, None, None]) ** 2 <= radius ** 2
    masked = distal_maps.masked_fill(near, float("-inf")).reshape(b, -1)
    value, flat = masked.max(dim=1)
    xy = torch.stack([(flat % w).to(distal_xy.dtype), (flat // w).to(distal_xy.dtype)], dim=1)
    return xy, torch.where(torch.isfinite(value), value, torch.zeros_like(value))


def correction_inputs(coords: torch.Tensor, scores: torch.Tensor, ctx: dict, size: tuple[int, int]) -> torch.Tensor:
    """C's input (B, 20): ``p, m1, m2`` relative to the observed ``d`` (6), ``d`` in [-1, 1] (2), the four scores
    (4), Φ's distal joint relative to ``d`` (2), Γ's feedback vector ``Γ(p | d) - p`` (2) and error (1), the distal
    heatmap's runner-up relative to ``d`` (2) and its value (1); lengths over the heatmap side. ``ctx``:
    ``phi_xy`` (B, 2), ``ref_xy`` (B, 2), ``error`` (B,), ``peak2_xy`` (B, 2), ``peak2_score`` (B,) from
    :meth:`CoordSCAINets.context`."""
    side = float(max(size))
    d = coords[:, DISTAL]
    rel = (coords[:, :3] - d[:, None]).reshape(len(d), 6) / side
    return torch.cat([rel, to_unit(d, size), scores.clamp(-1, 2), (ctx["phi_xy"] - d) / side,
                      (ctx["ref_xy"] - coords[:, PROXIMAL]) / side, ctx["error"][:, None] / side,
                      (ctx["peak2_xy"] - d) / side, ctx["peak2_score"][:, None].clamp(-1, 2)], dim=1)


class ChainMLP(nn.Module):
    """(B, in_features) + chain ids (B,) -> (B, out): two hidden ReLU layers of ``width``, a one-hot chain code
    appended to the input. ``zero_head``: the last layer starts at zero (the output is 0 until trained)."""

    def __init__(self, in_features: int, num_chains: int, width: int = 64, out: int = 2, zero_head: bool = False):
        super().__init__()
        self.num_chains = num_chains
        self.body = nn.Sequential(nn.Linear(in_features + num_chains, width), nn.ReLU(inplace=True),
                                  nn.Linear(width, width), nn.ReLU(inplace=True))
        self.head = nn.Linear(width, out)
        if zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(chain.to(x.device), self.num_chains).to(x.dtype)
        return self.head(self.body(torch.cat([x, onehot], dim=1)))


class CoordSCAINets(ChainNets):
    """Φ, Γ and C on chain coordinates (see the module doc), shared by the chains of one pose model's frame.

    ``heatmap_size`` (w, h) and ``sigma`` are the pose codec's (coordinates are in its heatmap pixels; sigma is
    recorded for the checkpoint's compatibility checks only), ``chains`` (C, 4), ``width`` the MLPs' hidden
    units, ``max_offset`` C's largest correction in heatmap px (default a quarter of the heatmap side).
    """

    design = "coords"
    default_width = 64

    def __init__(self, heatmap_size, sigma: float, chains, width: int = 64, max_offset: float | None = None):
        super().__init__(heatmap_size, sigma, chains, width, max_offset)
        n = len(self.chains)
        self.prediction = ChainMLP(NUM_PREDICTION_INPUTS, n, width)
        self.referee = ChainMLP(NUM_REFEREE_INPUTS, n, width)
        self.correction = ChainMLP(NUM_CORRECTION_INPUTS, n, width, zero_head=True)

    @property
    def side(self) -> float:
        return float(max(self.heatmap_size))

    def config(self) -> dict:
        return {"design": self.design, **super().config()}  # heatmap nets' configs predate the key

    # -- pieces -----------------------------------------------------------------------------------
    def predict_distal(self, rows: dict) -> torch.Tensor:
        """Φ: (B, 2) distal joint, heatmap px, from the observed base joints."""
        coords = rows["coords"]
        out = self.prediction(prediction_inputs(coords, rows["scores"], self.heatmap_size), rows["chain"])
        return coords[:, M2] + self.side * out

    def referee_coords(self, rows: dict, distal_xy: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Γ: (B, 2) proximal joint, heatmap px, from the observed middle joints and ``distal_xy`` (B, 2).
        ``params``: optional replacement parameters (e.g. detached, so a loss through Γ trains only its input)."""
        x = referee_inputs(rows["coords"], rows["scores"], distal_xy, self.heatmap_size)
        out = self.referee(x, rows["chain"]) if params is None else \
            torch.func.functional_call(self.referee, params, (x, rows["chain"]))
        return rows["coords"][:, M1] + self.side * out

    def fitness(self, rows: dict, distal_xy: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Self-referential error (B,) of a distal joint estimate: Γ's proximal joint vs the observed one, px."""
        return referee_error(self.referee_coords(rows, distal_xy, params), rows["coords"][:, PROXIMAL])

    @torch.no_grad()
    def context(self, rows: dict) -> dict:
        """What C is conditioned on that does not depend on C (no gradients): Φ's distal joint ``phi_xy``,
        Γ's proximal joint ``ref_xy`` given the uncorrected distal joint, its fitness ``error``, and the distal
        heatmap's runner-up ``peak2_xy`` / ``peak2_score`` (farther than 2 sigma from the decoded joint)."""
        distal = rows["coords"][:, DISTAL]
        ref_xy = self.referee_coords(rows, distal)
        peak2_xy, peak2_score = second_peak(rows["maps"][:, DISTAL], distal, 2 * self.sigma)
        return {"phi_xy": self.predict_distal(rows), "ref_xy": ref_xy,
                "error": referee_error(ref_xy, rows["coords"][:, PROXIMAL]), "peak2_xy": peak2_xy,
                "peak2_score": peak2_score}

    def offsets(self, rows: dict, ctx: dict) -> torch.Tensor:
        """C's correction (B, 2) of the distal joint, heatmap px (differentiable in C's parameters)."""
        x = correction_inputs(rows["coords"], rows["scores"], ctx, self.heatmap_size)
        return self.max_offset * torch.tanh(self.correction(x, rows["chain"]))

    # -- training on labels ------------------------------------------------------------------------
    def losses(self, rows: dict, gt_xy: torch.Tensor, gt_vis: torch.Tensor, gt_maps: torch.Tensor | None = None,
               feedback_weight: float = 0.1) -> dict:
        """Supervised losses of one batch of chain rows; the same keys as the heatmap design's
        (:meth:`SCAINets.losses`). gt_xy (B, 4, 2) heatmap px, gt_vis (B, 4) {0, 1}; ``gt_maps`` is not used.

        Φ: smooth-L1 (px) of its distal joint to the truth; Γ: Euclidean error of its proximal joint, fed the
        *true* distal joint; C: smooth-L1 of the corrected distal joint to the truth plus ``feedback_weight`` x
        the fitness error of the corrected joint with Γ held fixed.
        """
        coords = rows["coords"]
        vd, vp = gt_vis[:, DISTAL], gt_vis[:, PROXIMAL]
        nd = vd.sum().clamp(min=1)
        phi_xy = self.predict_distal(rows)
        loss_pred = (F.smooth_l1_loss(phi_xy, gt_xy[:, DISTAL], reduction="none").sum(dim=1) * vd).sum() / nd
        distal_in = torch.where(vd[:, None] > 0, gt_xy[:, DISTAL], coords[:, DISTAL])
        wr = vd * vp
        loss_ref = (referee_error(self.referee_coords(rows, distal_in), gt_xy[:, PROXIMAL]) * wr).sum() \
            / wr.sum().clamp(min=1)
        return correction_losses(self, rows, self.context(rows), gt_xy, vd, loss_pred, loss_ref, feedback_weight)
