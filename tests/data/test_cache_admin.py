"""Listing and pruning crop caches (posekit.data.cache_admin) on a cache dir of real tiny caches, faked old and
broken ones, build folders and things that are not posekit's (the ``crop_caches`` fixture, tests/conftest.py):
exactly which are listed, removed and kept, the bytes freed, dry runs, idle times, and symbolic links."""
import os
import shutil

import pytest

from posekit.data import cache_admin
from posekit.data.cache_admin import list_caches, prune_caches

DAY = 86400.0


def folder_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


def tree(root) -> dict:
    """{relative path: (size, mtime_ns)} of everything under ``root``, symbolic links not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return found


def names(entries) -> set:
    return {(e[0] if isinstance(e, tuple) else e).name for e in entries}


def test_every_child_is_listed_with_its_kind_version_size_and_data(crop_caches):
    c = crop_caches
    entries = {e.name: e for e in list_caches(c.root)}
    assert set(entries) == {p.name for p in c.root.iterdir()}  # nothing skipped, not even the foreign ones
    assert {n for n, e in entries.items() if e.kind == "cache"} == {p.name for p in (c.current, c.idle, c.old,
                                                                                     c.broken)}
    assert {n for n, e in entries.items() if e.kind == "temporary"} == {c.leftover.name, c.building.name}
    assert {n for n, e in entries.items() if e.kind == "other"} == {p.name for p in c.others}
    current = entries[c.current.name]
    assert (current.version, current.samples, current.settings["input_size"]) == (2, len(c.samples), [64, 64])
    assert current.data == {"images": len({s.image_path for s in c.samples}), "first_image": c.samples[0].image_path}
    assert entries[c.old.name].version == 1 and entries[c.idle.name].settings["input_size"] == [48, 64]
    broken = entries[c.broken.name]
    assert broken.unreadable and broken.version is None and "meta.json cannot be read" in broken.problem
    for path in (c.current, c.idle, c.old, c.broken, c.leftover, c.building):
        assert entries[path.name].size_bytes == folder_bytes(path), path.name
    assert entries[c.leftover.name].size_bytes == 1000
    assert entries[c.idle.name].last_used == pytest.approx(c.now - 10 * DAY, abs=1)
    assert entries[c.current.name].last_used > c.now - 600
    assert "symbolic link" in entries[c.others[3].name].problem and entries[c.others[3].name].size_bytes == 0
    assert "'mine.txt'" in entries[c.others[2].name].problem


def test_prune_removes_old_unreadable_and_leftover_and_frees_their_bytes(crop_caches):
    c = crop_caches
    doomed = (c.old, c.broken, c.leftover)
    expected_bytes = sum(folder_bytes(p) for p in doomed)
    outside_before = tree(c.outside)
    report = prune_caches(c.root, now=c.now)
    assert names(report.removed) == {p.name for p in doomed} and not report.failed
    assert report.freed_bytes == expected_bytes
    reasons = {e.name: why for e, why in report.removed}
    assert reasons[c.old.name] == "cache version 1, posekit reads 2"
    assert reasons[c.broken.name].startswith("unreadable: meta.json cannot be read")
    assert reasons[c.leftover.name] == "a killed build's temporary folder"
    assert {p.name for p in c.root.iterdir()} == {p.name for p in (c.current, c.idle, c.building, *c.others)}
    assert names(report.kept) == {p.name for p in (c.current, c.idle, c.building, *c.others)}
    assert (c.root / "notes" / "todo.txt").read_text() == "keep me" and (c.others[2] / "mine.txt").exists()
    assert tree(c.outside) == outside_before  # the link's version-1 target, outside the cache dir, untouched
    assert prune_caches(c.root, now=c.now).removed == []  # nothing more to do


def test_a_dry_run_removes_nothing_and_names_what_a_real_run_removes(crop_caches):
    c = crop_caches
    before = tree(c.root)
    dry = prune_caches(c.root, dry_run=True, older_than_days=5, now=c.now)
    assert tree(c.root) == before
    real = prune_caches(c.root, older_than_days=5, now=c.now)
    assert dry.dry_run and names(dry.removed) == names(real.removed) == {p.name for p in (c.old, c.broken,
                                                                                           c.leftover, c.idle)}
    assert dry.freed_bytes == real.freed_bytes > 0


def test_older_than_follows_the_last_use(crop_caches):
    c = crop_caches
    assert c.idle.name not in names(prune_caches(c.root, dry_run=True, older_than_days=11, now=c.now).removed)
    removed = prune_caches(c.root, dry_run=True, older_than_days=9, now=c.now).removed
    assert dict((e.name, why) for e, why in removed)[c.idle.name] == "not used for 10.0 days"
    # opening the memory map sets crops.u8's atime: a cache read yesterday, though written 10 days ago, is in use
    crops = c.idle / "crops.u8"
    os.utime(crops, (c.now - DAY, os.stat(crops).st_mtime))
    assert c.idle.name not in names(prune_caches(c.root, dry_run=True, older_than_days=5, now=c.now).removed)
    assert c.current.name not in names(prune_caches(c.root, dry_run=True, older_than_days=0.001,
                                                    now=c.now - 3600).removed)  # "now" before it was built
    assert c.current.name in names(prune_caches(c.root, dry_run=True, older_than_days=0, now=c.now + 60).removed)
    with pytest.raises(ValueError, match="days >= 0"):
        prune_caches(c.root, older_than_days=-1)


def test_a_build_folder_modified_within_the_hour_is_kept(crop_caches):
    c = crop_caches
    report = prune_caches(c.root, now=c.now)
    assert c.building.name in names(report.kept) and (c.building / "crops.u8").exists()
    later = prune_caches(c.root, now=c.now + cache_admin.BUILD_GRACE_SECONDS)
    assert names(later.removed) == {c.building.name}


def test_symbolic_links_are_never_followed_out_of_the_cache_dir(crop_caches, tmp_path):
    c = crop_caches
    # a key-named folder whose crops.u8 is a link to a file outside: not a cache, the file untouched
    precious = tmp_path / "precious.bin"
    precious.write_bytes(bytes(100))
    linked = c.root / ("ef" * 12)
    shutil.copytree(c.old, linked)
    (linked / "crops.u8").unlink()
    (linked / "crops.u8").symlink_to(precious)
    entry = {e.name: e for e in list_caches(c.root)}[linked.name]
    assert entry.kind == "other" and "crops.u8" in entry.problem
    # the cache dir itself may be a link (the user's choice): followed once, its children removed in place
    alias = tmp_path / "alias"
    alias.symlink_to(c.root, target_is_directory=True)
    report = prune_caches(alias, now=c.now)
    assert names(report.removed) == {c.old.name, c.broken.name, c.leftover.name}
    assert linked.exists() and precious.read_bytes() == bytes(100) and (c.outside / "crops.u8").exists()
    assert c.others[3].is_symlink() and alias.is_symlink()


def test_a_folder_changed_after_the_listing_is_left_alone(crop_caches, monkeypatch, tmp_path):
    c = crop_caches
    listed = list_caches(c.root)
    monkeypatch.setattr(cache_admin, "list_caches", lambda root: listed)
    (c.old / "notes.txt").write_text("added since the listing")
    victim = tmp_path / "victim"
    shutil.copytree(c.broken, victim)
    shutil.rmtree(c.broken)
    c.broken.symlink_to(victim, target_is_directory=True)  # swapped for a link to a look-alike outside
    report = prune_caches(c.root, now=c.now)
    assert names(report.failed) == {c.old.name, c.broken.name} and names(report.removed) == {c.leftover.name}
    assert (c.old / "notes.txt").exists() and (c.old / "crops.u8").exists()
    assert sorted(p.name for p in victim.iterdir()) == ["crops.u8", "index.npz", "meta.json"]
    assert report.freed_bytes == 1000


def test_a_missing_cache_dir_is_empty_and_an_unreadable_one_an_error(tmp_path):
    assert list_caches(tmp_path / "none") == []
    report = prune_caches(tmp_path / "none")
    assert report.removed == report.kept == report.failed == []
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match="cannot read the cache dir .*a_file: Not a directory"):
        list_caches(tmp_path / "a_file")
