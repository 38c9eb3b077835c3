"""posekit.checkpoint: PoseConfig checkpoints save, load and rebuild; every committed zoo file still loads."""
import json
from pathlib import Path

import pytest
import torch

from posekit.checkpoint import build_from_checkpoint, load_checkpoint, load_model, save_checkpoint
from posekit.codecs import HeatmapCodec
from posekit.config import CONFIG_VERSION, PoseConfig

ZOO = Path(__file__).resolve().parents[1] / "zoo"
#: add-on entries (``"base"`` in the index: SCAI nets) are not pose checkpoints; tests/test_zoo.py loads them
ADD_ONS = {Path(e["file"]).name for e in json.loads((ZOO / "index.json").read_text()) if e.get("base")}
ZOO_FILES = sorted(p for p in ZOO.glob("*.pt") if p.name not in ADD_ONS)


def tiny_config(**changes) -> PoseConfig:
    config = PoseConfig(model="lite_hourglass_2x32", model_kwargs={}, num_keypoints=3,
                        codec=HeatmapCodec((64, 64)).to_config(), input_size=(64, 64), skeleton="tiny",
                        flip_index=(0, 2, 1), extra={"train": {"epochs": 1}})
    return config.replace(**changes)


def test_a_pose_config_is_stored_as_its_dict_and_rebuilds_the_same_network(tmp_path):
    config = tiny_config()
    torch.manual_seed(0)
    model = config.build_model().eval()
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "config": config})
    assert load_checkpoint(tmp_path / "m.pt")["config"] == config.to_dict()
    torch.manual_seed(1)
    rebuilt, read = load_model(tmp_path / "m.pt")
    assert read == config and not rebuilt.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), atol=0, rtol=0)


def test_build_from_checkpoint_gives_the_stored_dict(tmp_path):
    model = tiny_config().build_model()
    stored = {**tiny_config().to_dict(), "adaptation": {"method": "adabn"}}
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "config": stored})
    _, config = build_from_checkpoint(tmp_path / "m.pt")
    assert config == stored


def test_state_dict_is_loaded_strictly(tmp_path):
    state = tiny_config().build_model().state_dict()
    extra = {**state, "stray.weight": torch.zeros(1)}
    missing = dict(list(state.items())[1:])
    first = next(iter(state))
    for name, weights, what in (("extra", extra, r"1 unexpected \(stray.weight\)"),
                                ("missing", missing, rf"1 missing \({first}\)")):
        save_checkpoint(tmp_path / f"{name}.pt", {"model": weights, "config": tiny_config()})
        with pytest.raises(ValueError, match=what) as info:  # one line naming the file, not torch's listing
            load_model(tmp_path / f"{name}.pt")
        assert str(info.value).startswith(f"{tmp_path / name}.pt: weights do not fit") and "\n" not in str(info.value)


def test_payload_without_model_or_config_is_refused():
    with pytest.raises(ValueError, match="lacks 'config'"):
        load_model({"model": {}})


def test_zoo_is_committed():
    assert len(ZOO_FILES) >= 12


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.stem)
def test_every_zoo_checkpoint_reads_as_a_pose_config_and_rebuilds_strictly(path):
    payload = load_checkpoint(path)
    stored = payload["config"]
    config = PoseConfig.from_dict(stored)
    model = config.build_model()
    model.load_state_dict(payload["model"], strict=True)
    upgraded = config.to_dict()
    assert {k: upgraded[k] for k in stored} == stored  # every stored key and value kept ...
    assert set(upgraded) - set(stored) <= {"version"} and upgraded["version"] == CONFIG_VERSION  # ... plus version
    assert PoseConfig.from_dict(upgraded) == config
