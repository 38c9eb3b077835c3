"""One small registry for everything posekit builds by name: models, heads, codecs, data formats, methods.

>>> CODECS = Registry("codec")
>>> @CODECS.register("HeatmapCodec")
... class HeatmapCodec: ...
>>> CODECS.get("HeatmapCodec") is HeatmapCodec
True

Registering a name twice is an error (two modules must not silently shadow each other); an unknown name
is a ``ValueError`` that lists the known ones.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Callable, Iterator

__all__ = ["Registry"]


class Registry:
    """Name -> object (a class or a builder function) for one kind of thing."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, obj: Any = None, *, name: str | None = None):
        """Decorator: ``@reg.register`` (the object's ``__name__``), ``@reg.register("name")`` or
        ``@reg.register(name="name")``; also ``reg.register(obj, name=...)`` as a plain call."""
        if isinstance(obj, str):  # @reg.register("name")
            obj, name = None, obj

        def add(entry: Any) -> Any:
            key = name or entry.__name__
            if key in self._entries and self._entries[key] is not entry:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = entry
            return entry

        return add(obj) if obj is not None else add

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._entries[name]

    def build(self, name: str, *args, **kwargs) -> Any:
        """``get(name)(*args, **kwargs)``."""
        return self.get(name)(*args, **kwargs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style ``pattern`` (``'hourglass_*'``)."""
        names = sorted(self._entries)
        return fnmatch.filter(names, pattern) if pattern else names

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


BuilderFn = Callable[..., Any]
