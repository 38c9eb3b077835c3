"""`posekit cache`: list the crop caches (posekit.data.crop_cache) and prune the ones nothing can use."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time


def days_arg(text: str) -> float:
    """'7' or '0.5' -> days, a number >= 0."""
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise argparse.ArgumentTypeError(f"days must be a number >= 0, got {text!r}")
    return days


def add_parser(sub) -> None:
    c = sub.add_parser("cache", help="list the crop caches, or prune the ones nothing uses (prune)")
    actions = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    dir_help = "the cache dir (default $POSEKIT_CACHE, else ~/.cache/posekit/crops)"
    ls = actions.add_parser("list", help="every cache: key, version, size, samples, input size, age, data")
    ls.add_argument("--cache-dir", metavar="DIR", help=dir_help)
    pr = actions.add_parser("prune", help="remove caches of another version, unreadable ones and killed builds' "
                                          "temporary folders [and caches unused for DAYS]")
    pr.add_argument("--cache-dir", metavar="DIR", help=dir_help)
    pr.add_argument("--older-than", type=days_arg, metavar="DAYS", help="also remove caches not used for DAYS days")
    pr.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    c.set_defaults(func=run)


def format_bytes(n: int) -> str:
    """Bytes in MB below a GB, else in GB (decimal units)."""
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def format_age(seconds: float) -> str:
    """'12 min', '5 h' (below two days) or '3 d'."""
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))} min"
    return f"{int(seconds // 3600)} h" if seconds < 2 * 86400 else f"{int(seconds // 86400)} d"


def version_cell(entry, now: float) -> str:
    from posekit.data.cache_admin import is_leftover_build
    from posekit.data.crop_cache import CACHE_VERSION
    if entry.kind == "temporary":
        return "leftover build" if is_leftover_build(entry, now) else "building"
    if entry.unreadable:
        return "unreadable"
    return str(entry.version) if entry.version == CACHE_VERSION else f"{entry.version} (old)"


def input_cell(entry) -> str:
    size = (entry.settings or {}).get("input_size")
    return f"{size[0]}x{size[1]}" if isinstance(size, (list, tuple)) and len(size) == 2 else "-"


def data_cell(entry) -> str:
    """'N images in FOLDER' (the first image's folder), or '-' when meta.json does not say."""
    data = entry.data if isinstance(entry.data, dict) else {}
    if entry.unreadable:
        return entry.problem
    if not data.get("first_image"):
        return "-"
    return f"{data.get('images', '?')} images in {os.path.dirname(data['first_image'])}"


def table(rows: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns (the last one unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]).rstrip() for row in rows)


def print_others(others) -> None:
    for entry in others:
        print(f"not a posekit cache, left alone: {entry.name} ({entry.problem})")


def run_list(cache_dir) -> int:
    from posekit.data.cache_admin import list_caches, prune_reason
    entries = list_caches(cache_dir)
    ours = [e for e in entries if e.kind != "other"]
    if not ours:
        print(f"no caches in {cache_dir}")
        print_others([e for e in entries if e.kind == "other"])
        return 0
    now = time.time()
    rows = [["key", "version", "size", "samples", "input", "age", "data"]]
    rows += [[e.name, version_cell(e, now), format_bytes(e.size_bytes), "-" if e.samples is None else str(e.samples),
              input_cell(e), format_age(now - e.last_used), data_cell(e) if e.kind == "cache" else "-"] for e in ours]
    print(table(rows))
    prunable = [e for e in ours if prune_reason(e, now)]
    print(f"total: {len(ours)} in {cache_dir}, {format_bytes(sum(e.size_bytes for e in ours))}; "
          f"posekit cache prune would remove {len(prunable)}, {format_bytes(sum(e.size_bytes for e in prunable))}")
    print_others([e for e in entries if e.kind == "other"])
    return 0


def run_prune(cache_dir, older_than: float | None, dry_run: bool) -> int:
    from posekit.data.cache_admin import is_leftover_build, prune_caches
    now = time.time()
    report = prune_caches(cache_dir, older_than_days=older_than, dry_run=dry_run, now=now)
    others = [e for e in report.kept if e.kind == "other"]
    if not report.removed and len(others) == len(report.kept):
        print(f"no caches in {cache_dir}")
        print_others(others)
        return 0
    verb = "would remove" if dry_run else "removed"
    for entry, why in report.removed:
        print(f"{verb} {entry.name}  {format_bytes(entry.size_bytes)}  ({why})")
    for entry in report.kept:
        if entry.kind == "temporary" and not is_leftover_build(entry, now):
            print(f"kept {entry.name}: modified {format_age(now - entry.last_used)} ago, a build may be running")
    print_others(others)
    for entry, why in report.failed:
        print(f"posekit cache: error: could not remove {entry.name}: {why}", file=sys.stderr)
    kept = len(report.kept) - len(others)
    print(f"{'would free' if dry_run else 'freed'} {format_bytes(report.freed_bytes)} in {cache_dir}: "
          f"{len(report.removed)} {'to remove' if dry_run else 'removed'}, {kept} kept"
          + (f", {len(report.failed)} failed" if report.failed else ""))
    return 1 if report.failed else 0


def run(args) -> int:
    from posekit.data.crop_cache import resolve_cache_dir
    cache_dir = str(resolve_cache_dir(args.cache_dir))
    if args.action == "list":
        return run_list(cache_dir)
    return run_prune(cache_dir, args.older_than, args.dry_run)
