"""Fixtures shared across the test suite."""
import pytest

from posekit.data.synth import generate_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """24 flat-style synthetic people (LSP-14, 96x96, seed 1) as a COCO json path. Read-only: tests that
    need to change data copy it first."""
    return generate_dataset(tmp_path_factory.mktemp("synth"), 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))


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
