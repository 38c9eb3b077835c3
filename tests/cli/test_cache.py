"""`posekit cache list | prune` on the ``crop_caches`` fixture (tests/conftest.py): the table, the total, what a
(dry) prune prints and removes, the exit codes of a missing and of an unreadable cache dir."""
import pytest

from posekit.cli import main
from posekit.cli.cache import format_bytes


def folder_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


def rows_by_name(text: str) -> dict:
    """{first cell: the row's cells} of the printed table (cells are split on two spaces or more)."""
    import re
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in text.splitlines()) if cells}


def test_list_prints_every_cache_a_total_and_what_is_not_posekit_s(crop_caches, capsys):
    c = crop_caches
    assert main(["cache", "list", "--cache-dir", str(c.root)]) == 0
    out = capsys.readouterr().out
    rows = rows_by_name(out)
    assert rows["key"] == ["key", "version", "size", "samples", "input", "age", "data"]
    images = len({s.image_path for s in c.samples})
    folder = str(c.samples[0].image_path).rsplit("/", 1)[0]
    assert rows[c.current.name] == [c.current.name, "2", format_bytes(folder_bytes(c.current)), str(len(c.samples)),
                                    "64x64", "0 min", f"{images} images in {folder}"]
    assert rows[c.idle.name][1:] == ["2", format_bytes(folder_bytes(c.idle)), str(len(c.samples)), "48x64", "10 d",
                                     f"{images} images in {folder}"]
    assert rows[c.old.name][1] == "1 (old)" and rows[c.old.name][5] == "3 d"
    assert rows[c.broken.name][1] == "unreadable" and "meta.json cannot be read" in rows[c.broken.name][-1]
    assert rows[c.leftover.name][1:4] == ["leftover build", "0.0 MB", "-"] and rows[c.leftover.name][5] == "2 d"
    assert rows[c.building.name][1] == "building"
    ours = (c.current, c.idle, c.old, c.broken, c.leftover, c.building)
    prunable = sum(folder_bytes(p) for p in (c.old, c.broken, c.leftover))
    assert (f"total: 6 in {c.root}, {format_bytes(sum(folder_bytes(p) for p in ours))}; posekit cache prune would "
            f"remove 3, {format_bytes(prunable)}") in out
    for other in c.others:
        assert f"not a posekit cache, left alone: {other.name} (" in out
        assert other.name not in rows or rows[other.name][0].startswith("not a posekit cache")


def test_list_reads_posekit_cache_by_default(crop_caches, capsys, monkeypatch):
    monkeypatch.setenv("POSEKIT_CACHE", str(crop_caches.root))
    assert main(["cache", "list"]) == 0
    assert crop_caches.current.name in capsys.readouterr().out


def test_a_dry_run_prints_what_prune_removes_and_removes_nothing(crop_caches, capsys):
    c = crop_caches
    doomed = (c.old, c.broken, c.leftover)
    freed = format_bytes(sum(folder_bytes(p) for p in doomed))
    before = sorted(str(p) for p in c.root.rglob("*"))
    assert main(["cache", "prune", "--cache-dir", str(c.root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sorted(str(p) for p in c.root.rglob("*")) == before
    for path in doomed:
        assert f"would remove {path.name}  {format_bytes(folder_bytes(path))}  (" in out
    assert f"kept {c.building.name}: modified 1 min ago, a build may be running" in out
    assert f"would free {freed} in {c.root}: 3 to remove, 3 kept" in out

    assert main(["cache", "prune", "--cache-dir", str(c.root)]) == 0
    out = capsys.readouterr().out
    assert "would" not in out and f"removed {c.old.name}  " in out and "(cache version 1, posekit reads 2)" in out
    assert f"freed {freed} in {c.root}: 3 removed, 3 kept" in out
    assert not any(p.exists() for p in doomed) and all(p.exists() for p in (c.current, c.idle, c.building, *c.others))


def test_older_than_also_removes_idle_caches(crop_caches, capsys):
    c = crop_caches
    assert main(["cache", "prune", "--cache-dir", str(c.root), "--older-than", "5"]) == 0
    out = capsys.readouterr().out
    assert f"removed {c.idle.name}  " in out and "(not used for 10.0 days)" in out and "4 removed, 2 kept" in out
    assert not c.idle.exists() and c.current.exists()
    with pytest.raises(SystemExit):
        main(["cache", "prune", "--cache-dir", str(c.root), "--older-than", "-1"])
    assert "days must be a number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["list", "prune"])
def test_a_missing_cache_dir_has_no_caches_and_an_unreadable_one_is_an_error(action, tmp_path, capsys):
    assert main(["cache", action, "--cache-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out == f"no caches in {tmp_path / 'none'}\n"
    (tmp_path / "a_file").write_text("x")
    assert main(["cache", action, "--cache-dir", str(tmp_path / "a_file")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"posekit cache: error: cannot read the cache dir {tmp_path / 'a_file'}: Not a directory\n"
