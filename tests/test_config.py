"""posekit.config.PoseConfig: the one owner of the model config a checkpoint carries (known answers)."""
import pytest

from posekit.codecs import HeatmapCodec, RegressionCodec
from posekit.config import CONFIG_VERSION, DEFAULT_PADDING, PoseConfig
from posekit.models.base import CoordinateModel

CODEC = {"type": "HeatmapCodec", "input_size": [64, 64], "heatmap_size": [16, 16], "sigma": 2.0, "unbiased": False,
         "decode": "dark", "blur_kernel": 11}

#: a version-1 config exactly as posekit's trainer wrote it before the version field existed
V1 = {"model": {"name": "lite_hourglass_2x32", "kwargs": {"num_keypoints": 3, "act": "relu"}}, "codec": CODEC,
      "input_size": [64, 64], "num_keypoints": 3, "skeleton": "tiny", "flip_index": [0, 2, 1], "padding": 1.25,
      "train": {"epochs": 2, "data": "lsp:x@train"}}


def test_version_1_dict_reads_into_the_typed_fields():
    config = PoseConfig.from_dict(V1)
    assert config == PoseConfig(model="lite_hourglass_2x32", model_kwargs={"act": "relu"}, num_keypoints=3,
                                codec=CODEC, input_size=(64, 64), skeleton="tiny", flip_index=(0, 2, 1),
                                head="heatmap", head_kwargs={}, padding=1.25,
                                extra={"train": {"epochs": 2, "data": "lsp:x@train"}})


def test_version_1_dict_becomes_this_version_2_dict():
    assert CONFIG_VERSION == 2
    assert PoseConfig.from_dict(V1).to_dict() == {
        "version": 2,
        "model": {"name": "lite_hourglass_2x32", "kwargs": {"num_keypoints": 3, "act": "relu"}},
        "codec": CODEC, "input_size": [64, 64], "num_keypoints": 3, "skeleton": "tiny", "flip_index": [0, 2, 1],
        "padding": 1.25, "train": {"epochs": 2, "data": "lsp:x@train"}}


def test_version_2_round_trip_is_exact():
    stored = PoseConfig.from_dict(V1).to_dict()
    assert PoseConfig.from_dict(stored).to_dict() == stored
    assert PoseConfig.from_dict(stored) == PoseConfig.from_dict(V1)


def test_coordinate_head_is_stored_and_read_back():
    config = PoseConfig.from_dict(V1).replace(head="rle", head_kwargs={"init_std": 0.02},
                                              codec=RegressionCodec((64, 64)).to_config())
    stored = config.to_dict()
    assert stored["head"] == {"type": "rle", "kwargs": {"init_std": 0.02}}
    assert PoseConfig.from_dict(stored) == config
    model = config.build_model()
    assert isinstance(model, CoordinateModel) and model.head.values_per_joint == 4


def test_defaults_one_head_one_padding():
    minimal = {"model": {"name": "lite_hourglass_2x32", "kwargs": {"num_keypoints": 3}}, "codec": CODEC,
               "input_size": [64, 64]}
    config = PoseConfig.from_dict(minimal)
    assert config.head == "heatmap" and config.head_kwargs == {}
    assert config.padding == DEFAULT_PADDING == 1.25
    assert config.flip_index == (0, 1, 2) and config.skeleton == "unknown" and config.num_keypoints == 3
    assert "head" not in config.to_dict()


def test_builds_the_model_and_the_codec():
    config = PoseConfig.from_dict(V1)
    model = config.build_model()
    assert model.num_keypoints == 3 and model.pk_config == V1["model"]
    assert config.build_codec() == HeatmapCodec.from_config(CODEC)
    assert config.build_codec(decode="argmax").decode_method == "argmax"
    assert config.codec["decode"] == "dark"  # overrides never touch the config


def test_constructor_normalises_sequences():
    a = PoseConfig(model="m", model_kwargs={}, num_keypoints=2, codec=CODEC, input_size=[64, 48], skeleton="s",
                   flip_index=[1, 0])
    assert a.input_size == (64, 48) and a.flip_index == (1, 0)
    assert a == PoseConfig.from_dict(a.to_dict())


@pytest.mark.parametrize("config, message", [
    ([1, 2], "must be a dict, got list"),
    ({**V1, "version": 3}, "version 3 is newer than this posekit understands"),
    ({k: v for k, v in V1.items() if k != "codec"}, r"config lacks 'codec'"),
    ({**V1, "input_size": [64]}, "malformed"),
    ({**V1, "flip_index": [0, 1]}, "flip_index has 2 entries for 3 keypoints"),
])
def test_malformed_configs_are_value_errors(config, message):
    with pytest.raises(ValueError, match=message):
        PoseConfig.from_dict(config)
