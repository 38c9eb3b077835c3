"""posekit.codecs.base: one to_config / from_config / repr / equality for every codec, from the __init__ arguments."""
import numpy as np
import pytest

from posekit.codecs import CODECS, Codec, HeatmapCodec, IntegralCodec, RegressionCodec, build_codec
from posekit.registry import Registry

CODECS_UNDER_TEST = [
    HeatmapCodec((128, 96), sigma=3.0, unbiased=True, decode="argmax", blur_kernel=7),
    HeatmapCodec((64, 64)),
    RegressionCodec((64, 96), ignore_outside=False, normalized=False),
    IntegralCodec((64, 64), heatmap_size=(32, 32), normalization="sigmoid", beta=2.5, ignore_outside=False),
]


def test_heatmap_codec_config_known_answer():
    codec = CODECS_UNDER_TEST[0]
    assert codec.to_config() == {"type": "HeatmapCodec", "input_size": [128, 96], "heatmap_size": [32, 24],
                                 "sigma": 3.0, "unbiased": True, "decode": "argmax", "blur_kernel": 7}
    assert repr(codec) == ("HeatmapCodec(input_size=(128, 96), heatmap_size=(32, 24), sigma=3.0, unbiased=True, "
                           "decode='argmax', blur_kernel=7)")


def test_regression_and_integral_config_known_answers():
    assert RegressionCodec((64, 96)).to_config() == {"type": "RegressionCodec", "input_size": [64, 96],
                                                     "ignore_outside": True, "normalized": True}
    assert IntegralCodec((64, 64)).to_config() == {"type": "IntegralCodec", "input_size": [64, 64],
                                                   "heatmap_size": [16, 16], "normalization": "softmax",
                                                   "beta": 1.0, "ignore_outside": True}


@pytest.mark.parametrize("codec", CODECS_UNDER_TEST, ids=repr)
def test_config_round_trip_gives_the_identical_codec(codec):
    config = codec.to_config()
    rebuilt = build_codec(config)
    assert type(rebuilt) is type(codec) and rebuilt == codec and hash(rebuilt) == hash(codec)
    assert rebuilt.to_config() == config and repr(rebuilt) == repr(codec)
    assert type(codec).from_config(config) == codec
    keypoints, visible = np.array([[10.0, 20.0], [40.0, 30.0]]), np.array([1, 0])
    for key, value in codec.encode(keypoints, visible).items():
        np.testing.assert_array_equal(rebuilt.encode(keypoints, visible)[key], value)


def test_codecs_with_other_settings_differ():
    assert HeatmapCodec((64, 64)) != HeatmapCodec((64, 64), sigma=3.0)
    assert HeatmapCodec((64, 64)) != RegressionCodec((64, 64))


def test_from_config_refuses_another_codecs_config():
    with pytest.raises(ValueError, match="config describes a RegressionCodec, not a HeatmapCodec"):
        HeatmapCodec.from_config(RegressionCodec((64, 64)).to_config())


def test_build_codec_of_an_unknown_type_lists_the_codecs():
    with pytest.raises(ValueError, match=r"unknown codec 'DarkCodec'; known: HeatmapCodec, IntegralCodec"):
        build_codec({"type": "DarkCodec"})


def test_every_registered_codec_is_a_codec_under_its_class_name():
    for name, cls in CODECS.items():
        assert issubclass(cls, Codec) and cls.__name__ == name


def test_a_new_codec_gets_its_config_from_its_init_arguments(monkeypatch):
    monkeypatch.setattr("posekit.codecs.base.CODECS", Registry("codec"))
    from posekit.codecs import base

    @base.CODECS.register
    class ScaleCodec(Codec):
        config_attributes = {"factor": "_factor"}

        def __init__(self, input_size=(8, 8), factor: float = 2.0):
            self.input_size, self._factor = tuple(input_size), float(factor)

        def encode(self, keypoints, visible):
            return {"coords": np.asarray(keypoints) * self._factor, "weights": np.asarray(visible, float)}

        def decode(self, outputs):
            return np.asarray(outputs) / self._factor, np.ones(np.shape(outputs)[:2])

    codec = ScaleCodec((4, 6), factor=3)
    assert codec.to_config() == {"type": "ScaleCodec", "input_size": [4, 6], "factor": 3.0}
    assert base.build_codec(codec.to_config()) == codec
    assert repr(codec) == "ScaleCodec(input_size=(4, 6), factor=3.0)"


def test_codec_base_leaves_encode_and_decode_to_subclasses():
    with pytest.raises(NotImplementedError):
        Codec().encode(np.zeros((1, 2)), np.ones(1))
    with pytest.raises(NotImplementedError):
        Codec().decode(np.zeros((1, 1, 2)))
