import pytest

from posekit.data.formats import FORMATS, load_samples, parse_spec, split_union
from posekit.data.sample import DataError


@pytest.mark.parametrize("spec, expected", [
    ("coco:data/ann.json", ("coco", "data/ann.json", None)),
    ("lsp:data/lspet@val", ("lsp", "data/lspet", "val")),
    ("lsp:/abs/lspet@train", ("lsp", "/abs/lspet", "train")),
    ("coco:ann/person_keypoints_val2017.json@val2017", ("coco", "ann/person_keypoints_val2017.json", "val2017")),
    ("mpii:C:/data/mpii.json", ("mpii", "C:/data/mpii.json", None)),  # only the first ':' separates
    ("folder:photos@2024/trip", ("folder", "photos@2024/trip", None)),  # '@' inside a path is not a split
    ("folder:me@home.jpg", ("folder", "me@home.jpg", None)),
    ("COCO:a.json", ("coco", "a.json", None)),
])
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["voc:ann.xml", "ann.json", "coco:", "lsp:dir@", 42])
def test_parse_spec_rejects(spec):
    with pytest.raises(ValueError):
        parse_spec(spec)


def test_unknown_format_lists_the_formats():
    with pytest.raises(ValueError) as info:
        load_samples("voc:ann.xml")
    assert all(name in str(info.value) for name in FORMATS.names())


def test_mpii_has_no_split(tmp_path):
    with pytest.raises(ValueError, match="no splits"):
        load_samples(f"mpii:{tmp_path}/x.json@train")


def test_coco_split_folder_must_exist(tmp_path):
    (tmp_path / "annotations").mkdir()
    ann = tmp_path / "annotations" / "person_keypoints_val2017.json"
    ann.write_text('{"images": [], "annotations": []}')
    assert load_samples(f"coco:{ann}") == []
    with pytest.raises(DataError, match="no image folder for split 'val2017'"):
        load_samples(f"coco:{ann}@val2017")
    (tmp_path / "val2017").mkdir()
    assert load_samples(f"coco:{ann}@val2017") == []


def test_missing_files_are_data_errors(tmp_path):
    for spec in (f"coco:{tmp_path}/none.json", f"mpii:{tmp_path}/none.json", f"lsp:{tmp_path}/none",
                 f"folder:{tmp_path}/none"):
        with pytest.raises(DataError, match="none"):
            load_samples(spec)


@pytest.mark.parametrize("spec, expected", [
    ("lsp:data/lspet@train", ["lsp:data/lspet@train"]),
    ("lsp:data/lspet@train+coco:ann.json", ["lsp:data/lspet@train", "coco:ann.json"]),
    ("folder:a+b+coco:c+d.json@val", ["folder:a+b", "coco:c+d.json@val"]),  # '+' inside paths stays
    ("coco:x.json+FOLDER:imgs", ["coco:x.json", "FOLDER:imgs"]),
])
def test_split_union(spec, expected):
    assert split_union(spec) == expected


def test_split_union_rejects_a_bad_part():
    with pytest.raises(ValueError, match="empty path"):
        split_union("coco:x.json+folder:")
