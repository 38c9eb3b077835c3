"""The top-level API: `posekit.Predictor` and friends resolve lazily to the real objects."""
import importlib

import pytest

import posekit


@pytest.mark.parametrize("name", sorted(set(posekit.__all__) - {"__version__"}))
def test_top_level_names_resolve(name):
    obj = getattr(posekit, name)
    assert obj is getattr(importlib.import_module(obj.__module__), name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        posekit.nope  # noqa: B018


def test_version_matches_the_package_metadata():
    from importlib.metadata import version
    assert posekit.__version__ == version("posekit")
