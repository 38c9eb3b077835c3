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
