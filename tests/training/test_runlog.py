"""The run log keeps exactly the epochs a checkpoint holds."""
import json

from posekit.training.runlog import RunLog, logged_epoch


def test_trim_keeps_the_checkpointed_epochs_and_drops_torn_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "loss": 0.4}\n{"epoch": 3, "lo')
    RunLog(path).trim(2)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]
    RunLog(path).append({"epoch": 3, "loss": 0.25})
    assert path.read_text().splitlines()[-1] == '{"epoch": 3, "loss": 0.25}'
    mtime = path.stat().st_mtime_ns
    RunLog(path).trim(3)  # nothing to drop: the file is not rewritten
    assert path.stat().st_mtime_ns == mtime
    RunLog(path).trim(0)  # a fresh run in a used folder
    assert path.read_text() == ""
    RunLog(tmp_path / "missing.jsonl").trim(0)  # no log yet: nothing to do
    assert not (tmp_path / "missing.jsonl").exists()


def test_logged_epoch():
    assert logged_epoch('{"epoch": 4}') == 4
    assert logged_epoch('{"epoch": true}') == float("inf")
    assert logged_epoch('{"epoch": 4') == float("inf")
    assert logged_epoch("[1]") == float("inf")
