"""`posekit predict` end to end on what can go wrong with its input: people tracked in a tiny real video, a
damaged video (frames read / skipped / written reported), and sources that give nothing to predict from."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.cli import main

ROOT = Path(__file__).parents[2]
POSE = ROOT / "zoo" / "lspet_compact_pretrained.pt"
PLAYERS = ROOT / ".." / "shared" / "datasets" / "coco-mini" / "val2017" / "000000217285.jpg"  # three players


def write_clip(path: Path, image: np.ndarray, frames: int, dx: float = 1.0) -> None:
    """An mp4 (30 fps) of ``image`` (RGB) moving ``dx`` px right per frame."""
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for t in range(frames):
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx * t], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.mark.shared_data
@pytest.mark.skipif(not PLAYERS.is_file(), reason="needs ../shared/datasets/coco-mini")
def test_video_people_are_tracked_under_steady_ids_and_counted(tmp_path, capsys):
    from posekit.data.io import read_image
    image = cv2.resize(read_image(PLAYERS), (320, 240), interpolation=cv2.INTER_AREA)
    clip, out, drawn = tmp_path / "players.mp4", tmp_path / "players.json", tmp_path / "drawn.mp4"
    write_clip(clip, image, 8)
    assert main(["predict", str(clip), "--checkpoint", str(POSE), "--out", str(out), "--draw", str(drawn),
                 "--detect-every", "4", "--smooth", "one-euro", "--no-flip"]) == 0
    records = json.loads(out.read_text())
    assert [r["frame"] for r in records] == list(range(8))
    ids = [[p["track_id"] for p in r["people"]] for r in records]
    # the people found on the first frame keep their ids all along (the detector may find more on frame 4)
    assert len(ids[0]) >= 2 and all(set(ids[0]) <= set(frame_ids) for frame_ids in ids)
    started, most = len({i for frame_ids in ids for i in frame_ids}), max(map(len, ids))
    person = records[0]["people"][0]
    assert set(person) == {"track_id", "box", "score", "keypoints"} and np.shape(person["keypoints"]) == (14, 3)
    printed = capsys.readouterr().out
    assert "players.mp4: 8 frames read, 8 written of 8 in the file" in printed
    assert f"people: {started} tracks started, at most {most} people in a frame; detector ran on 2 frames" in printed
    assert int(cv2.VideoCapture(str(drawn)).get(cv2.CAP_PROP_FRAME_COUNT)) == 8


def test_a_damaged_video_says_how_many_frames_were_read_skipped_and_written(damaged_clip, tmp_path, capsys):
    clip, out = damaged_clip, tmp_path / "p.json"
    assert main(["predict", str(clip), "--checkpoint", str(POSE), "--out", str(out), "--detector", "none",
                 "--no-flip", "--cut-threshold", "1"]) == 0
    records = json.loads(out.read_text())
    captured = capsys.readouterr()
    read = len(records)
    skipped = 30 - read  # this decoder reads every frame after the damaged stretch
    assert 8 < read < 30 and records[-1]["frame"] == 29
    assert f"damaged.mp4: {read} frames read, {skipped} skipped (undecodable), {read} written of 30 in the file" \
        in captured.out
    assert f"warning: damaged.mp4 is damaged: {skipped} frames could not be decoded" in captured.err


def test_an_empty_folder_is_an_error_that_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "p.json"
    for detector in ("none", "auto"):
        assert main(["predict", str(tmp_path / "empty"), "--checkpoint", str(POSE), "--out", str(out),
                     "--detector", detector]) == 2
        assert "empty: folder without any image" in capsys.readouterr().err
        assert not out.exists()


def test_a_folder_of_broken_symlinks_is_an_error_naming_each(tmp_path, capsys):
    folder = tmp_path / "links"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).symlink_to(tmp_path / "gone" / name)
    out = tmp_path / "p.json"
    for detector in ("none", "auto"):
        assert main(["predict", str(folder), "--checkpoint", str(POSE), "--out", str(out), "--detector", detector]) == 2
        err = capsys.readouterr().err
        assert "links: nothing to predict: none of its 2 images can be read" in err
        assert f"a.jpg: broken symbolic link to {tmp_path / 'gone' / 'a.jpg'}" in err and "b.png: broken" in err
        assert not out.exists()


def test_readable_photos_without_anybody_are_not_an_error(tmp_path, capsys):
    folder = tmp_path / "walls"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.jpg"), np.full((120, 160, 3), 90, np.uint8))
    out = tmp_path / "p.json"
    assert main(["predict", str(folder), "--checkpoint", str(POSE), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == []
    assert "no person in 1" in capsys.readouterr().out
