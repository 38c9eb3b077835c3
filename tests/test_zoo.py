"""The model zoo: publishing slims a checkpoint to float16, measures the stored file and indexes it;
every committed zoo file loads and predicts."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.cli import main
from posekit.checkpoint import load_checkpoint
from posekit.zoo import half_weights_ok, measure, publish, read_index, slim_payload

ZOO = Path(__file__).resolve().parents[1] / "zoo"
LSPET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lspet"


def test_slim_payload_halves_floats_and_keeps_counters():
    payload = {"model": {"w": torch.ones(2), "n": torch.tensor(3)}, "config": {"a": 1}, "optimizer": {}}
    slim = slim_payload(payload)
    assert set(slim) == {"model", "config"}
    assert slim["model"]["w"].dtype == torch.float16 and slim["model"]["n"].dtype == torch.int64


def test_slim_payload_writes_paths_relative_to_the_anchor():
    payload = {"model": {}, "config": {"train": {"init": "/w/repo/zoo/a.pt", "train": "lsp:/w/data/lspet@train",
                                                "steps": [1, "/w/repo/runs/x"], "other": "/opt/b.pt"}}}
    slim = slim_payload(payload, anchor="/w/repo")
    assert slim["config"] == {"train": {"init": "zoo/a.pt", "train": "lsp:../data/lspet@train",
                                        "steps": [1, "runs/x"], "other": "/opt/b.pt"}}  # outside: left as it is
    assert slim_payload(payload)["config"] is payload["config"]


def test_publish_measures_the_stored_file(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "syn"), "--num", "16", "--seed", "4", "--size", "96"]) == 0
    ann = tmp_path / "syn" / "annotations.json"
    assert main(["train", "--data", f"coco:{ann}", "--out", str(tmp_path / "run"), "--model", "simplebaseline_r18",
                 "--model-kwargs", '{"width": 0.25, "deconv_channels": 32}', "--input-size", "64", "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--no-progress"]) == 0
    entry = publish(tmp_path / "run" / "model.pt", "tiny", val=f"coco:{ann}", role="compact", method="supervised",
                    dataset="synthetic", command="posekit train ...", budget="1 epoch", run_dir=tmp_path / "run",
                    zoo_dir=tmp_path / "zoo")
    assert half_weights_ok(tmp_path / "zoo" / "tiny.pt")
    assert read_index(tmp_path / "zoo") == [json.loads(json.dumps(entry))]
    remeasured = measure(tmp_path / "zoo" / "tiny.pt", f"coco:{ann}")
    assert entry["metrics"]["pck@0.2_torso"] == pytest.approx(remeasured["pck@0.2_torso"], abs=1e-4)
    assert entry["params"] > 0 and entry["flops"] > 0 and entry["wall_seconds"] >= 0
    card = (tmp_path / "zoo" / "tiny.md").read_text()
    assert "posekit train ..." in card and "| overall |" in card.replace("**overall**", "overall")



def test_size_limit_is_5_mib_except_for_movenet_derived_models():
    from posekit.zoo import size_limit
    assert size_limit({"model": {"name": "simplebaseline_r18"}}) == 5 * 2**20
    assert size_limit({"model": {"name": "movenet_lightning"}}) == 15 * 10**6
    assert size_limit({"model": {"name": "x"}, "source": {"model": "MoveNet thunder"}}) == 15 * 10**6

REQUIRED = {"name", "file", "dataset", "method", "role", "params", "flops", "metrics", "command"}


@pytest.mark.parametrize("entry", read_index(ZOO), ids=lambda e: e["name"])
def test_committed_zoo_entries_load_and_predict(entry):
    assert REQUIRED <= set(entry)
    path = ZOO.parent / entry["file"]
    from posekit.checkpoint import load_checkpoint
    from posekit.inference.predictor import Predictor
    from posekit.zoo import base_entry, size_limit
    assert (ZOO.parent / entry["card"]).exists()
    base = base_entry(entry, read_index(ZOO))
    if base is not None:  # an add-on (SCAI nets) of another entry: small float32 nets, loaded with their base
        assert path.stat().st_size < 5 * 2**20 and entry["input_size"] == base["input_size"]
        predictor = Predictor.load(ZOO.parent / base["file"], scai=path, tta="scai")
        assert predictor.scai_config["base"] == base["name"]
        assert "Apache" in (ZOO.parent / entry["card"]).read_text() or "movenet" not in base["name"]
        image = np.full((200, 150, 3), 127, np.uint8)
        out = predictor.predict(image, [[20, 20, 100, 160]])
        assert out.shape == (1, predictor.num_keypoints, 3) and np.isfinite(out).all()
        return
    assert path.stat().st_size < size_limit(load_checkpoint(path)["config"]), "zoo files stay small"
    assert half_weights_ok(path)
    predictor = Predictor.from_checkpoint(path)
    image = np.full((200, 150, 3), 127, np.uint8)
    out = predictor.predict(image, [[20, 20, 100, 160]])
    assert out.shape == (1, predictor.num_keypoints, 3) and np.isfinite(out).all()


def test_recommend_marks_one_entry_and_the_table_and_listing_show_it(tmp_path, capsys):
    from posekit.zoo import recommend, recommended_entry, write_index, zoo_table
    base = {"file": "zoo/x.pt", "card": "zoo/x.md", "dataset": "d", "method": "m", "role": "r",
            "model": {"name": "n", "kwargs": {}}, "input_size": [8, 8], "params": 1, "flops": 1, "metrics": {}}
    write_index([dict(base, name="a", recommended=True), dict(base, name="b")], tmp_path)
    recommend("b", tmp_path)
    entries = read_index(tmp_path)
    assert [e["recommended"] for e in entries] == [False, True]
    assert recommended_entry(entries)["name"] == "b"
    rows = zoo_table(entries).splitlines()
    assert "(recommended)" not in rows[2] and "(recommended)" in rows[3]
    with pytest.raises(ValueError, match="no entry named 'c'"):
        recommend("c", tmp_path)
    assert main(["zoo", "--zoo-dir", str(tmp_path)]) == 0
    assert "recommended: b (zoo/x.pt)" in capsys.readouterr().out


def test_the_committed_zoo_recommends_exactly_one_model():
    assert sum(bool(e.get("recommended")) for e in read_index(ZOO)) == 1
