"""A training step with a non-finite loss or gradient changes nothing.

A forward pass in train mode updates BatchNorm running statistics before the loss can be looked at, so a
refused step must also undo those: take a :class:`BufferSnapshot` before the forward pass, then let
:func:`guarded_step` back-propagate, check and either step the optimisers or restore the snapshot. The
trainer, SFDA's source-protection step and AdvMix's generator probe all go through here.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from posekit.losses import check_finite

__all__ = ["BufferSnapshot", "all_finite", "guarded_step", "check_skipped_share", "check_finite_weights",
           "NAN_POLICIES"]

#: what to do with a non-finite step: stop the run, or skip the step (nothing changes) and go on
NAN_POLICIES = ("raise", "skip")


class BufferSnapshot:
    """Copies of every buffer (BatchNorm running statistics, counters) of ``modules``, taken now."""

    def __init__(self, modules: Iterable[torch.nn.Module]):
        self.saved = [(b, b.detach().clone()) for m in modules for b in m.buffers()]

    def restore(self) -> None:
        """Put every buffer back to its value when the snapshot was taken (in place)."""
        with torch.no_grad():
            for buffer, saved in self.saved:
                buffer.copy_(saved)


def all_finite(loss: torch.Tensor, grads: Iterable[torch.Tensor | None] = ()) -> bool:
    """True when ``loss`` and every given gradient (``None`` entries skipped) hold only finite values."""
    return bool(torch.isfinite(loss).all()) and all(bool(torch.isfinite(g).all()) for g in grads if g is not None)


def guarded_step(loss: torch.Tensor, optimizers: Sequence[torch.optim.Optimizer],
                 named_params: Sequence[tuple[str, torch.nn.Parameter]], snapshot: BufferSnapshot, *,
                 policy: str = "raise", where: str) -> str | None:
    """Back-propagate ``loss`` and step ``optimizers``, unless the loss or a gradient of ``named_params`` is
    not finite: then the step is refused (no weight moves, ``snapshot`` restored, gradients cleared) and a
    ``FloatingPointError`` naming ``where`` is raised (policy ``"raise"``), or its message returned (``"skip"``).
    Returns None when the optimisers stepped (their gradients are left in place)."""
    if policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {policy!r}")
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    try:
        check_finite(loss, where=where)
        loss.backward()
        # a finite loss can still have NaN/inf gradients (e.g. sqrt at 0): they must not reach the weights
        check_finite({name: p.grad for name, p in named_params if p.grad is not None}, where=where, what="gradient")
    except FloatingPointError as err:
        snapshot.restore()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if policy == "raise":
            raise
        return str(err)
    for optimizer in optimizers:
        optimizer.step()
    return None


def check_skipped_share(skipped: int, total_steps: int, max_share: float, last_reason: str) -> None:
    """FloatingPointError once more than ``max_share`` of a run's ``total_steps`` were skipped as non-finite.

    A few skipped steps are a bad batch; many are a diverging run, and skipping on leaves finite but exploded
    weights that exit 0 and fail later. The budget is a share of the whole run, so a run that goes bad early
    stops as soon as it is spent, not at the end.
    """
    if skipped > max_share * total_steps:
        raise FloatingPointError(
            f"stopped: {skipped} steps were skipped for non-finite values, more than {max_share:.0%} of the run's "
            f"{total_steps} steps (max_skipped_share); training diverges: lower the learning rate or check the data "
            f"(last: {last_reason})")


def check_finite_weights(state: dict, where: str) -> None:
    """FloatingPointError naming the tensors of a state dict that hold NaN or inf (a checkpoint must not)."""
    bad = [name for name, t in state.items() if torch.is_tensor(t) and t.is_floating_point()
           and not bool(torch.isfinite(t).all())]
    if bad:
        raise FloatingPointError(f"non-finite weights in {len(bad)} tensor(s) ({', '.join(bad[:3])}) at {where}")
