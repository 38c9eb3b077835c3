"""The data-format contract and its registry.

A format is an object registered in :data:`FORMATS` under its spec prefix (``coco`` in
``coco:ANN.json@val2017``). It reads a spec's path and split into ``list[Sample]``, and it answers the
questions other modules used to answer by comparing format names (``fmt == "coco"``): can this data be
split with ``@SPLIT``, is its annotation file OKS ground truth?
"""
from __future__ import annotations

from posekit.registry import Registry

__all__ = ["DataFormat", "FORMATS", "register_format"]

#: spec prefix -> :class:`DataFormat` instance
FORMATS = Registry("data format")


class DataFormat:
    """One annotation format: :meth:`read` plus the facts callers ask of it."""

    #: the spec prefix, also the registered name
    name: str = ""
    #: ``@SPLIT`` selects part of the data (LSP: train / val / all; COCO: the image folder ``../SPLIT/``)
    has_splits: bool = False
    #: the annotation file is COCO keypoints json, so OKS AP can be scored against it
    has_oks_ground_truth: bool = False

    def read(self, path, split: str | None = None, *, skip_invalid: bool = False, report: list | None = None):
        """Samples of ``path`` (a file or folder, already ``~``-expanded); ``split`` only when :attr:`has_splits`."""
        raise NotImplementedError

    def oks_ground_truth(self, path):
        """What OKS AP is scored against for data read from ``path`` (the path itself), or None."""
        return path if self.has_oks_ground_truth else None

    def __repr__(self) -> str:
        return f"<data format {self.name!r}>"


def register_format(cls: type[DataFormat]) -> type[DataFormat]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    FORMATS.register(cls(), name=cls.name)
    return cls
