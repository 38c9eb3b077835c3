"""posekit.registry.Registry and the registries built on it (known answers)."""
import pytest

from posekit.registry import Registry


def test_register_forms_and_lookup():
    things = Registry("thing")

    @things.register
    def alpha():
        return "a"

    @things.register("beta_name")
    def beta():
        return "b"

    @things.register(name="gamma_name")
    class Gamma:
        pass

    things.register(len, name="delta")
    assert things.names() == ["alpha", "beta_name", "delta", "gamma_name"]
    assert things.get("alpha") is alpha and things.get("gamma_name") is Gamma
    assert things.build("beta_name") == "b" and things.build("delta", [1, 2]) == 2
    assert "alpha" in things and "beta" not in things and len(things) == 4
    assert things.names("*_name") == ["beta_name", "gamma_name"]
    assert [name for name, _ in things.items()] == things.names()
    assert repr(things) == "Registry('thing', ['alpha', 'beta_name', 'delta', 'gamma_name'])"


def test_duplicate_name_is_an_error_but_re_registering_the_same_object_is_not():
    things = Registry("thing")
    things.register(len, name="size")
    things.register(len, name="size")  # the same object again (a module imported twice): fine
    with pytest.raises(ValueError) as info:
        things.register(abs, name="size")
    assert str(info.value) == "thing 'size' is already registered"
    assert things.get("size") is len


def test_unknown_name_lists_the_known_ones():
    things = Registry("thing")
    with pytest.raises(ValueError) as info:
        things.get("x")
    assert str(info.value) == "unknown thing 'x'; known: none"
    things.register(len, name="b")
    things.register(abs, name="a")
    with pytest.raises(ValueError) as info:
        things.build("c")
    assert str(info.value) == "unknown thing 'c'; known: a, b"


def test_posekit_registries():
    from posekit.codecs import CODECS, HeatmapCodec, IntegralCodec, MoveNetCodec, RegressionCodec
    from posekit.data.formats import FORMATS
    from posekit.models.heads import HEADS, HEATMAP_OUTPUT_HEADS, HeatmapHead, RegressionHead, RLEHead
    from posekit.models.registry import MODELS

    assert dict(CODECS.items()) == {"HeatmapCodec": HeatmapCodec, "IntegralCodec": IntegralCodec,
                                    "MoveNetCodec": MoveNetCodec, "RegressionCodec": RegressionCodec}
    assert dict(HEADS.items()) == {"dsnt": HeatmapHead, "heatmap": HeatmapHead, "regression": RegressionHead,
                                   "rle": RLEHead}
    assert set(HEATMAP_OUTPUT_HEADS) == {"heatmap", "dsnt"}
    assert FORMATS.names() == ["coco", "folder", "lsp", "mpii"]
    assert "simplebaseline_r18" in MODELS and "hourglass_2x64" in MODELS
    with pytest.raises(ValueError, match=r"^unknown codec 'NoCodec'; known: HeatmapCodec, IntegralCodec, "
                                         r"MoveNetCodec, RegressionCodec$"):
        CODECS.get("NoCodec")
    with pytest.raises(ValueError, match=r"^unknown head 'heatmaps'; known: dsnt, heatmap, regression, rle$"):
        HEADS.get("heatmaps")
    with pytest.raises(ValueError, match=r"^unknown data format 'voc'; known: coco, folder, lsp, mpii$"):
        FORMATS.get("voc")
    with pytest.raises(ValueError, match=r"^model 'simplebaseline_r18' is already registered$"):
        MODELS.register(lambda **kw: None, name="simplebaseline_r18")
