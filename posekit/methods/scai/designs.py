"""The two designs of SCAI's networks, chosen by name (``design`` in :func:`~posekit.methods.scai.train_scai`
and in a SCAI checkpoint's ``config["nets"]``):

* ``"heatmap"`` (:class:`~posekit.methods.scai.nets.SCAINets`): small encoder-decoders on the chain's heatmaps;
* ``"coords"`` (:class:`~posekit.methods.scai.coord_nets.CoordSCAINets`): MLPs on the chain's joint coordinates
  and confidences.

Checkpoints without a ``design`` key are heatmap nets (written before the coordinate design existed).
"""
from __future__ import annotations

from posekit.methods.scai.coord_nets import CoordSCAINets
from posekit.methods.scai.nets import SCAINets

__all__ = ["DESIGNS", "DEFAULT_WIDTH", "build_nets", "nets_from_config", "design_of"]

DESIGNS = {"heatmap": SCAINets, "coords": CoordSCAINets}
#: default ``width`` per design: feature channels (heatmap), hidden units (coords)
DEFAULT_WIDTH = {name: cls.default_width for name, cls in DESIGNS.items()}


def _check(design: str) -> str:
    if design not in DESIGNS:
        raise ValueError(f"SCAI design must be one of {sorted(DESIGNS)}, got {design!r}")
    return design


def build_nets(heatmap_size, sigma: float, chains, *, design: str = "heatmap", width: int | None = None,
               max_offset: float | None = None):
    """Fresh nets of ``design`` for a pose model's heatmap frame (``heatmap_size`` (w, h), codec ``sigma``) and
    its ``chains`` (C, 4)."""
    cls = DESIGNS[_check(design)]
    return cls(heatmap_size, sigma, chains, DEFAULT_WIDTH[design] if width is None else int(width), max_offset)


def design_of(nets_config: dict) -> str:
    return _check(nets_config.get("design", "heatmap"))


def nets_from_config(nets_config: dict):
    """The nets a checkpoint's ``config["nets"]`` describes (weights not loaded)."""
    return DESIGNS[design_of(nets_config)].from_config(nets_config)
