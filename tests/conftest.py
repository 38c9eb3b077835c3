"""Fixtures shared across the test suite."""
import pytest

from posekit.data.synth import generate_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """24 flat-style synthetic people (LSP-14, 96x96, seed 1) as a COCO json path. Read-only: tests that
    need to change data copy it first."""
    return generate_dataset(tmp_path_factory.mktemp("synth"), 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))
