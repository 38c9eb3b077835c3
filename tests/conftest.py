"""Fixtures shared across the test suite."""
import pytest

from posekit.data.synth import generate_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """24 flat-style synthetic people (LSP-14, 96x96, seed 1) as a COCO json path. Read-only: tests that
    need to change data copy it first."""
    return generate_dataset(tmp_path_factory.mktemp("synth"), 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))


def _write_numbered_clip(path, frames: int = 30, size=(64, 48)) -> None:
    """Frame t is grey level 8 t (its number, readable back after compression) with a moving red block; 30 fps."""
    import cv2
    import numpy as np
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for t in range(frames):
        frame = np.full((h, w, 3), 8 * t, np.uint8)
        cv2.rectangle(frame, (t, 10), (t + 10, 30), (0, 0, 255), -1)
        writer.write(frame)
    writer.release()


@pytest.fixture()
def intact_clip(tmp_path):
    """A 30-frame 64x48 mp4 whose frame t has grey level 8 t."""
    path = tmp_path / "intact.mp4"
    _write_numbered_clip(path)
    return path


@pytest.fixture()
def damaged_clip(tmp_path):
    """:func:`intact_clip` with the bytes from 40% to 60% of the file overwritten by noise (seed 0): the
    container is intact, a stretch of frames in the middle does not decode."""
    import numpy as np
    path = tmp_path / "damaged.mp4"
    _write_numbered_clip(path)
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.4), int(len(data) * 0.6)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session", autouse=True)
def crop_cache_in_a_temporary_folder(tmp_path_factory):
    """Trainings build their crop cache (posekit.data.crop_cache) under $POSEKIT_CACHE: a session folder here,
    never the user's ~/.cache. Subprocesses (the CLI tests) inherit it."""
    import os
    saved = os.environ.get("POSEKIT_CACHE")
    os.environ["POSEKIT_CACHE"] = str(tmp_path_factory.mktemp("crop_cache"))
    yield
    if saved is None:
        os.environ.pop("POSEKIT_CACHE", None)
    else:
        os.environ["POSEKIT_CACHE"] = saved


def _set_times(folder, when: float) -> None:
    """atime and mtime of ``folder`` and its files to ``when`` (seconds since the epoch)."""
    import os
    for child in folder.iterdir():
        os.utime(child, (when, when), follow_symlinks=False)
    os.utime(folder, (when, when))


@pytest.fixture()
def crop_caches(tiny_data, tmp_path):
    """A crop cache dir with one of each thing `posekit cache` tells apart (tests/data/test_cache_admin.py,
    tests/cli/test_cache.py). Real caches of ``tiny_data`` (no augmentation): ``current`` (64x64, just built),
    ``idle`` (48x64, unused for 10 days), ``old`` (32x32, meta.json edited to version 1, 3 days old), ``broken``
    (40x40, meta.json not JSON); temporary build folders ``leftover`` (2 days old) and ``building`` (1 minute
    old); ``others``, not posekit caches: a folder, a file, a key-named folder with a foreign file, and a
    key-named symbolic link to ``outside``, a version-1 cache outside the cache dir."""
    import json
    import time
    from types import SimpleNamespace

    from posekit.data.crop_cache import CropSettings, open_crop_cache
    from posekit.data.formats import load_samples
    samples = load_samples(f"coco:{tiny_data}")
    root = tmp_path / "caches"

    def build(size, where=root):
        return open_crop_cache(samples, CropSettings.for_training(size, 1.25, None), where).directory

    def make_version_1(cache):
        meta = json.loads((cache / "meta.json").read_text())
        (cache / "meta.json").write_text(json.dumps({**meta, "version": 1}))

    current, idle, old, broken = build((64, 64)), build((48, 64)), build((32, 32)), build((40, 40))
    make_version_1(old)
    (broken / "meta.json").write_text("{not json")
    leftover, building = root / f".{'0' * 24}.k1lled_x", root / f".{'1' * 24}.bu1ld_ng"
    for folder, size in ((leftover, 1000), (building, 500)):
        folder.mkdir()
        (folder / "crops.u8").write_bytes(bytes(size))
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("keep me")
    (root / "README.txt").write_text("keep me too")
    foreign = root / ("ab" * 12)
    foreign.mkdir()
    (foreign / "crops.u8").write_bytes(bytes(10))
    (foreign / "mine.txt").write_text("not posekit's")
    outside = build((32, 32), tmp_path / "elsewhere")
    make_version_1(outside)
    link = root / ("cd" * 12)
    link.symlink_to(outside, target_is_directory=True)
    now, day = time.time(), 86400.0
    for folder, age in ((idle, 10 * day), (old, 3 * day), (leftover, 2 * day), (building, 60.0)):
        _set_times(folder, now - age)
    return SimpleNamespace(root=root, samples=samples, current=current, idle=idle, old=old, broken=broken,
                           leftover=leftover, building=building, others=[root / "notes", root / "README.txt", foreign,
                                                                         link], outside=outside, now=now)
