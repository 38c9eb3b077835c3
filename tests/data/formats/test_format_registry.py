"""The FORMATS registry: each format reads its specs and answers the facts callers ask of it."""
import pytest

from posekit.data.formats import (FORMATS, CocoFormat, DataFormat, FolderFormat, LSPFormat, MPIIFormat, data_format,
                                  load_samples, oks_ground_truth)


@pytest.mark.parametrize("name, cls, splits, oks", [
    ("coco", CocoFormat, True, True),
    ("lsp", LSPFormat, True, False),
    ("mpii", MPIIFormat, False, False),
    ("folder", FolderFormat, False, False),
])
def test_format_facts(name, cls, splits, oks):
    fmt = FORMATS.get(name)
    assert isinstance(fmt, cls) and isinstance(fmt, DataFormat) and fmt.name == name
    assert fmt.has_splits is splits and fmt.has_oks_ground_truth is oks
    assert data_format(name) is fmt and data_format(f"{name}:somewhere") is fmt


def test_oks_ground_truth_is_the_coco_annotation_file_only():
    assert oks_ground_truth("coco:data/ann.json") == "data/ann.json"
    assert oks_ground_truth("coco:data/person_keypoints_val2017.json@val2017") == "data/person_keypoints_val2017.json"
    assert oks_ground_truth("lsp:data/lspet@val") is None
    assert oks_ground_truth("mpii:data/mpii.json") is None
    assert oks_ground_truth("folder:photos") is None


def test_unknown_format_name():
    with pytest.raises(ValueError, match="unknown data format 'voc'"):
        data_format("voc")


def test_load_samples_dispatches_through_the_registry(tmp_path, monkeypatch):
    calls = []

    class Recording(DataFormat):
        name = "recording"
        has_splits = True

        def read(self, path, split=None, *, skip_invalid=False, report=None):
            calls.append((path, split, skip_invalid))
            return []

    monkeypatch.setattr(FORMATS, "_entries", dict(FORMATS._entries))
    FORMATS.register(Recording(), name="recording")
    assert load_samples(f"recording:{tmp_path}@part", skip_invalid=True) == []
    assert calls == [(tmp_path, "part", True)]
