"""See and reclaim the crop caches of :mod:`posekit.data.crop_cache`: list what a cache dir holds, prune what
nothing can use any more (another cache version, an unreadable ``meta.json``, a killed build's temporary
folder) and, when asked, what has not been used for some days.

What counts as posekit's: a direct child of the cache dir that is a folder (not a symbolic link), named like a
cache key (:data:`~posekit.data.crop_cache.KEY_CHARS` hex digits) or like the temporary folder a build makes
next to it (``.KEY.`` and tempfile's random suffix), holding nothing but regular files named ``crops.u8``,
``index.npz`` or ``meta.json``. Everything else is listed as not a posekit cache and never touched. A removal
opens the folder without following symbolic links and unlinks only those three names, so a folder swapped for
a link, or given a foreign file, between listing and removal is an error, not a deletion.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from posekit.data.crop_cache import CACHE_VERSION, KEY_CHARS, resolve_cache_dir

__all__ = ["CacheEntry", "PruneReport", "list_caches", "prune_caches", "prune_reason", "is_leftover_build",
           "CACHE_FILES", "BUILD_GRACE_SECONDS"]

#: the files a cache (or its temporary build folder) holds
CACHE_FILES = frozenset({"crops.u8", "index.npz", "meta.json"})
#: a temporary folder modified more recently than this may belong to a build still running: left alone
BUILD_GRACE_SECONDS = 3600.0
_DAY_SECONDS = 86400.0
_CACHE_NAME = re.compile(rf"[0-9a-f]{{{KEY_CHARS}}}")
_BUILD_NAME = re.compile(rf"\.[0-9a-f]{{{KEY_CHARS}}}\.[a-z0-9_]+")  # tempfile.mkdtemp(prefix=".KEY.")


@dataclass(frozen=True)
class CacheEntry:
    """One direct child of a cache dir. ``kind``: "cache", "temporary" (a build's folder) or "other" (not a
    posekit cache, never touched). ``version`` is None when ``meta.json`` is unreadable (``problem`` says why)
    and for the other kinds; ``size_bytes`` sums the sizes of the files (0 for "other"); ``last_used`` (seconds
    since the epoch) is the latest mtime of the folder and its files and the atime of ``crops.u8``, which
    opening the memory map sets (at most daily on relatime mounts); ``settings`` and ``data`` are
    ``meta.json``'s (``data`` is None for caches built before it was recorded)."""

    name: str
    path: Path
    kind: str
    version: int | None = None
    size_bytes: int = 0
    samples: int | None = None
    settings: dict | None = None
    data: dict | None = None
    last_used: float | None = None
    problem: str = ""

    @property
    def unreadable(self) -> bool:
        return self.kind == "cache" and self.version is None


@dataclass
class PruneReport:
    """What :func:`prune_caches` removed (or, with ``dry_run``, would remove) with the reason for each, what it
    kept (including what is not a posekit cache), and what it failed to remove with the error."""

    cache_dir: Path
    dry_run: bool
    removed: list[tuple[CacheEntry, str]] = field(default_factory=list)
    kept: list[CacheEntry] = field(default_factory=list)
    failed: list[tuple[CacheEntry, str]] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(entry.size_bytes for entry, _ in self.removed)


def _posekit_files(folder: Path) -> tuple[dict[str, os.stat_result], str]:
    """({name: lstat} of the folder's files, "") when it holds only posekit's regular files, else ({}, why not)."""
    files = {}
    try:
        with os.scandir(folder) as children:
            for child in children:
                st = child.stat(follow_symlinks=False)
                if child.name not in CACHE_FILES or not stat.S_ISREG(st.st_mode):
                    return {}, f"holds {child.name!r}, which posekit does not write"
                files[child.name] = st
    except OSError as err:
        return {}, f"cannot be read ({err.strerror or err})"
    return files, ""


def _read_meta(folder: Path) -> tuple[dict | None, str]:
    """(meta.json's dict with an int "version", "") or (None, why it cannot be used)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError:
        return None, "no meta.json"
    except (OSError, ValueError) as err:
        return None, f"meta.json cannot be read ({type(err).__name__})"
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), int):
        return None, "meta.json records no version"
    return meta, ""


def _other(path: Path, why: str) -> CacheEntry:
    return CacheEntry(path.name, path, "other", problem=why)


def describe(path: Path) -> CacheEntry:
    """The :class:`CacheEntry` of ``path``, a direct child of a cache dir (nothing followed through a link)."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return _other(path, f"a symbolic link (to {os.readlink(path)}), not followed")
    if not stat.S_ISDIR(st.st_mode):
        return _other(path, "a file")
    kind = "cache" if _CACHE_NAME.fullmatch(path.name) else "temporary" if _BUILD_NAME.fullmatch(path.name) else None
    if kind is None:
        return _other(path, "a folder not named like a cache")
    files, why = _posekit_files(path)
    if why:
        return _other(path, f"a folder that {why}")
    if kind == "cache" and not files:
        return _other(path, "an empty folder")
    last_used = max([st.st_mtime, *(f.st_mtime for f in files.values())]
                    + ([files["crops.u8"].st_atime] if "crops.u8" in files else []))
    size = sum(f.st_size for f in files.values())
    if kind == "temporary":
        return CacheEntry(path.name, path, kind, size_bytes=size, last_used=last_used)
    meta, problem = _read_meta(path)
    if meta is not None and meta["version"] == CACHE_VERSION and not {"crops.u8", "index.npz"} <= set(files):
        meta, problem = None, "incomplete: " + ", ".join(sorted({"crops.u8", "index.npz"} - set(files))) + " missing"
    if meta is None:
        return CacheEntry(path.name, path, kind, size_bytes=size, last_used=last_used, problem=problem)
    samples = meta.get("samples")
    return CacheEntry(path.name, path, kind, version=meta["version"], size_bytes=size,
                      samples=samples if isinstance(samples, int) else None, settings=meta.get("settings"),
                      data=meta.get("data"), last_used=last_used)


def _cache_dir(cache_dir) -> Path:
    """The cache dir, its own symbolic links resolved (pointing it elsewhere is the user's choice)."""
    return resolve_cache_dir(cache_dir).expanduser().resolve()


def list_caches(cache_dir=None) -> list[CacheEntry]:
    """Every direct child of ``cache_dir`` (default :func:`~posekit.data.crop_cache.default_cache_dir`) as a
    :class:`CacheEntry`, by name; [] when the folder does not exist. OSError (naming it) when it cannot be read."""
    root = _cache_dir(cache_dir)
    if not root.exists():
        return []
    try:
        names = sorted(os.listdir(root))
    except OSError as err:
        raise OSError(f"cannot read the cache dir {root}: {err.strerror or err}") from None
    entries = []
    for name in names:
        try:
            entries.append(describe(root / name))
        except FileNotFoundError:  # gone since the listing: a finished build renamed into place, say
            continue
    return entries


def is_leftover_build(entry: CacheEntry, now: float) -> bool:
    """True for a temporary folder untouched for :data:`BUILD_GRACE_SECONDS`: its build was killed."""
    return entry.kind == "temporary" and now - entry.last_used > BUILD_GRACE_SECONDS


def prune_reason(entry: CacheEntry, now: float, older_than_days: float | None = None) -> str | None:
    """Why ``entry`` should go, or None when it stays: another cache version, unreadable, a leftover build folder,
    or (only with ``older_than_days``) not used for more than that many days at ``now`` (seconds since the epoch)."""
    if entry.kind == "other":
        return None
    if entry.kind == "temporary":
        return "a killed build's temporary folder" if is_leftover_build(entry, now) else None
    if entry.unreadable:
        return f"unreadable: {entry.problem}"
    if entry.version != CACHE_VERSION:
        return f"cache version {entry.version}, posekit reads {CACHE_VERSION}"
    idle_days = (now - entry.last_used) / _DAY_SECONDS
    if older_than_days is not None and idle_days > older_than_days:
        return f"not used for {idle_days:.1f} days"
    return None


def _remove_folder(root_fd: int, name: str) -> None:
    """Remove the folder ``name`` of the directory open as ``root_fd``, without following a symbolic link; OSError,
    before anything is removed, unless it is a folder holding only posekit's regular files."""
    if "/" in name or name in (".", ".."):
        raise OSError(f"{name!r} is not a direct child of the cache dir")
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    try:
        children = os.listdir(fd)
        for child in children:
            if child not in CACHE_FILES or not stat.S_ISREG(os.stat(child, dir_fd=fd, follow_symlinks=False).st_mode):
                raise OSError(f"{name} now holds {child!r}: left alone")
        for child in children:
            os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=root_fd)


def prune_caches(cache_dir=None, *, older_than_days: float | None = None, dry_run: bool = False,
                 now: float | None = None) -> PruneReport:
    """Remove from ``cache_dir`` (default :func:`~posekit.data.crop_cache.default_cache_dir`) the entries
    :func:`prune_reason` names (``now`` defaults to the clock); with ``dry_run``, remove nothing and report what
    would go. A missing cache dir is an empty report."""
    if older_than_days is not None and not (math.isfinite(older_than_days) and older_than_days >= 0):
        raise ValueError(f"older_than_days must be a number of days >= 0, got {older_than_days}")
    now = time.time() if now is None else now
    root = _cache_dir(cache_dir)
    report = PruneReport(root, dry_run)
    entries = list_caches(root)
    doomed = [(e, prune_reason(e, now, older_than_days)) for e in entries]
    report.kept = [e for e, why in doomed if why is None]
    doomed = [(e, why) for e, why in doomed if why is not None]
    if dry_run or not doomed:
        report.removed = doomed
        return report
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for entry, why in doomed:
            try:
                _remove_folder(root_fd, entry.name)
                report.removed.append((entry, why))
            except OSError as err:
                report.failed.append((entry, str(err)))
    finally:
        os.close(root_fd)
    return report
