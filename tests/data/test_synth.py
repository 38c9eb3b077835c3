import hashlib
import json

import cv2
import numpy as np
import pytest

from posekit.data import synth
from posekit.data.synth import (
    STYLES, Occluder, Person, View, generate_dataset, image_seed, render_person_image, render_scene,
)
from posekit.skeletons import COCO, LSP, MPII, get_skeleton

SIZE = (192, 192)


def frontal(**view) -> Person:
    """The default adult in the default relaxed pose, centred and facing the camera unless told otherwise."""
    return Person(view=View(**{"yaw": 0.0, "scale": 150.0, "center": (96.0, 96.0), **view}))


def keypoints_of(people, occluders=(), skeleton="coco"):
    _, annotations = render_scene(people, occluders, size=SIZE, skeleton=skeleton)
    return annotations[0].keypoints


def named(keypoints, skeleton="coco"):
    sk = get_skeleton(skeleton)
    return {n: keypoints[i] for i, n in enumerate(sk.keypoints)}


# ---- output layout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("skeleton", [LSP, COCO, MPII])
def test_render_person_image_shapes(skeleton):
    image, kps, box = render_person_image(3, size=(160, 128), skeleton=skeleton.name)
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert kps.shape == (skeleton.num_keypoints, 3) and kps.dtype == np.float32
    assert box.shape == (4,) and box.dtype == np.float32 and box[2] > 0 and box[3] > 0


def test_lsp_and_coco_order_follow_the_skeletons():
    # Same scene, two skeletons: every shared joint has the same coordinates.
    lsp = named(render_person_image(11, skeleton="lsp")[1], "lsp")
    coco = named(render_person_image(11, skeleton="coco")[1], "coco")
    for name in set(lsp) & set(coco):
        np.testing.assert_array_equal(lsp[name], coco[name])
    assert len(set(lsp) & set(coco)) == 12


def test_invariants_over_many_seeds():
    for seed in range(40):
        _, kps, box = render_person_image(seed, size=(128, 160), skeleton="coco")
        outside = kps[:, 2] == 0
        assert np.all(kps[outside, :2] == 0)
        inside = kps[~outside]
        assert np.all((inside[:, 0] >= 0) & (inside[:, 0] <= 127) & (inside[:, 1] >= 0) & (inside[:, 1] <= 159))
        assert set(np.unique(kps[:, 2])) <= {0.0, 1.0, 2.0}
        x, y, w, h = box
        assert np.all((inside[:, 0] >= x) & (inside[:, 0] <= x + w) & (inside[:, 1] >= y) & (inside[:, 1] <= y + h))
        assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 160


# ---- geometry: left/right, flips, visibility -----------------------------------------------------------

def test_frontal_person_has_left_joints_on_image_right():
    k = named(keypoints_of([frontal()]))
    for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert k[f"left_{joint}"][0] > k[f"right_{joint}"][0], joint
    assert k["nose"][1] < k["left_shoulder"][1] < k["left_hip"][1] < k["left_knee"][1] < k["left_ankle"][1]
    # A frontal relaxed pose hides nothing.
    assert np.all(np.stack(list(k.values()))[:, 2] == 2)


def test_back_view_swaps_sides_and_hides_the_face():
    k = named(keypoints_of([frontal(yaw=180.0)]))
    assert k["left_shoulder"][0] < k["right_shoulder"][0]
    for face in ("nose", "left_eye", "right_eye"):
        assert k[face][2] == 1, face


def test_profile_hides_the_far_eye_ear_and_shoulder():
    # yaw +90: the person faces image right, their left side turned away from the camera.
    k = named(keypoints_of([frontal(yaw=90.0)]))
    assert k["nose"][0] > k["left_shoulder"][0]
    assert k["right_eye"][2] == 2 and k["left_eye"][2] == 1
    assert k["right_ear"][2] == 2 and k["left_ear"][2] == 1
    assert k["right_shoulder"][2] == 2 and k["left_shoulder"][2] == 1  # behind the chest


@pytest.mark.parametrize("seed", range(6))
def test_mirrored_scene_gives_flipped_keypoints(seed):
    rng = np.random.default_rng(seed)
    person = synth.sample_person(rng, SIZE)
    v = person.view
    mirror = Person(shape=person.shape, pose=person.pose.mirrored(), outfit=person.outfit,
                    view=View(yaw=-v.yaw, pitch=v.pitch, roll=-v.roll, scale=v.scale,
                              center=(SIZE[0] - 1 - v.center[0], v.center[1])))
    a, b = keypoints_of([person]), keypoints_of([mirror])
    flipped = b[COCO.flip_index]
    both = (a[:, 2] > 0) & (flipped[:, 2] > 0)
    np.testing.assert_allclose(a[both, 0], SIZE[0] - 1 - flipped[both, 0], atol=1e-3)
    np.testing.assert_allclose(a[both, 1], flipped[both, 1], atol=1e-3)


def test_pose_mirrored_twice_is_identity():
    pose = synth.sample_pose(np.random.default_rng(5), "throwing")
    assert pose.mirrored().mirrored() == pose
    assert pose.mirrored().arm_elev == pose.arm_elev[::-1]


def test_occluder_over_a_joint_marks_it_occluded():
    clear = named(keypoints_of([frontal()]))
    x, y = clear["right_knee"][:2]
    box = Occluder(points=np.array([[x - 6, y - 6], [x + 6, y - 6], [x + 6, y + 6], [x - 6, y + 6]]))
    k = named(keypoints_of([frontal()], [box]))
    assert k["right_knee"][2] == 1
    np.testing.assert_array_equal(k["right_knee"][:2], clear["right_knee"][:2])  # still labelled
    others = [n for n in k if n != "right_knee"]
    assert all(k[n][2] == 2 for n in others)


def test_nearer_person_occludes_a_farther_one():
    far = frontal()
    near = frontal(center=(96.0, 96.0), scale=170.0)
    _, annotations = render_scene([far, near], size=SIZE, skeleton="lsp")
    assert np.all(annotations[0].keypoints[:, 2] == 1)  # completely behind the bigger copy
    assert np.all(annotations[1].keypoints[:, 2] == 2)


def test_joints_outside_the_image_are_unlabelled():
    # Centre the body on the left border: its right side (image left) is cut off.
    k = keypoints_of([frontal(center=(4.0, 96.0))])
    names = named(k)
    assert names["right_wrist"][2] == 0 and names["left_wrist"][2] == 2
    outside = k[:, 2] == 0
    assert outside.any() and np.all(k[outside, :2] == 0)


def test_box_is_the_tight_silhouette():
    _, annotations = render_scene([frontal()], size=SIZE, style="flat", skeleton="lsp")
    x, y, w, h = annotations[0].box
    assert 0 < x and x + w < SIZE[0] and 0 < y and y + h < SIZE[1]
    assert 0.15 * w * h < annotations[0].area < w * h  # a silhouette pixel count inside its box
    # Standing height ~ 150 px at scale 150 (head top to sole, plus hair).
    assert 140 < h < 165


# ---- styles and determinism --------------------------------------------------------------------------

def test_styles_share_geometry_but_look_different():
    flat_img, flat_kps, flat_box = render_person_image(7, style="flat")
    tex_img, tex_kps, tex_box = render_person_image(7, style="textured")
    np.testing.assert_array_equal(flat_kps, tex_kps)
    np.testing.assert_array_equal(flat_box, tex_box)
    assert np.abs(flat_img.astype(int) - tex_img.astype(int)).mean() > 10
    # textured images have fine texture: much more high-frequency energy than flat ones
    def detail(img):
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)
        return np.abs(np.diff(gray, axis=1)).mean()
    assert detail(tex_img) > 2 * detail(flat_img)


def test_mixed_style_picks_one_of_the_two_per_image():
    picked = set()
    for seed in range(8):
        mixed = render_person_image(seed, style="mixed")[0]
        for style in ("flat", "textured"):
            if np.array_equal(mixed, render_person_image(seed, style=style)[0]):
                picked.add(style)
                break
        else:
            pytest.fail(f"seed {seed}: mixed matches neither style")
    assert picked == {"flat", "textured"}


def test_render_is_deterministic_and_seed_dependent():
    a = render_person_image(123, style="textured")
    b = render_person_image(123, style="textured")
    c = render_person_image(124, style="textured")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_image_seed_depends_on_seed_and_index():
    assert image_seed(0, 1) == image_seed(0, 1)
    assert len({image_seed(0, 0), image_seed(0, 1), image_seed(1, 0)}) == 3
    with pytest.raises(ValueError):
        image_seed(-1, 0)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="style"):
        render_person_image(0, style="cartoon")
    with pytest.raises(ValueError, match="size"):
        render_person_image(0, size=(8, 8))
    with pytest.raises(ValueError, match="skeleton"):
        render_person_image(0, skeleton="h36m")
    assert set(STYLES) >= {"flat", "textured"}


# ---- the COCO writer ---------------------------------------------------------------------------------

def _read_dir(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_generate_dataset_is_byte_deterministic(tmp_path):
    a = generate_dataset(tmp_path / "a", 4, style="mixed", seed=3)
    b = generate_dataset(tmp_path / "b", 4, style="mixed", seed=3)
    c = generate_dataset(tmp_path / "c", 4, style="mixed", seed=4)
    assert _read_dir(a.parent) == _read_dir(b.parent)
    assert a.read_bytes() != c.read_bytes()
    assert (a.parent / "images" / "000000.jpg").read_bytes() != (c.parent / "images" / "000000.jpg").read_bytes()


def test_image_i_does_not_depend_on_the_count(tmp_path):
    short = generate_dataset(tmp_path / "short", 2, seed=9)
    long = generate_dataset(tmp_path / "long", 3, seed=9)
    for name in ("000000.jpg", "000001.jpg"):
        assert (short.parent / "images" / name).read_bytes() == (long.parent / "images" / name).read_bytes()
    anns_short = json.loads(short.read_text())["annotations"]
    anns_long = json.loads(long.read_text())["annotations"]
    assert anns_long[:2] == anns_short
    # ... and image i is render_person_image(image_seed(seed, i)).
    _, kps, box = render_person_image(image_seed(9, 1))
    np.testing.assert_allclose(np.array(anns_long[1]["keypoints"]).reshape(-1, 3), kps, atol=0.006)
    np.testing.assert_allclose(anns_long[1]["bbox"], box, atol=0.006)


@pytest.mark.parametrize("skeleton", [LSP, COCO])
def test_generated_json_loads_with_pycocotools(tmp_path, skeleton):
    from pycocotools.coco import COCO as CocoApi

    path = generate_dataset(tmp_path, 5, skeleton=skeleton.name, seed=1, size=(160, 128))
    api = CocoApi(str(path))
    cat = api.loadCats(api.getCatIds())[0]
    assert cat["name"] == "person" and cat["keypoints"] == list(skeleton.keypoints)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in skeleton.limbs]
    assert len(api.getImgIds()) == 5 and len(api.getAnnIds()) == 5
    for ann in api.loadAnns(api.getAnnIds()):
        img = api.loadImgs(ann["image_id"])[0]
        assert (img["width"], img["height"]) == (160, 128)
        decoded = cv2.imread(str(path.parent / "images" / img["file_name"]))
        assert decoded.shape == (128, 160, 3)
        kps = np.array(ann["keypoints"], float).reshape(-1, 3)
        assert kps.shape == (skeleton.num_keypoints, 3)
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        assert ann["iscrowd"] == 0 and ann["area"] > 0 and ann["category_id"] == 1
        x, y, w, h = ann["bbox"]
        labelled = kps[kps[:, 2] > 0]
        assert np.all((labelled[:, 0] >= x - 0.01) & (labelled[:, 0] <= x + w + 0.01))
        assert np.all((labelled[:, 1] >= y - 0.01) & (labelled[:, 1] <= y + h + 0.01))


def test_several_people_per_image(tmp_path):
    path = generate_dataset(tmp_path, 2, seed=2, people_per_image=3)
    coco = json.loads(path.read_text())
    assert len(coco["annotations"]) == 6
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3, 4, 5, 6]
    assert [a["image_id"] for a in coco["annotations"]] == [1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="people_per_image"):
        generate_dataset(tmp_path / "bad", 1, people_per_image=0)


def test_parallel_workers_give_the_same_bytes(tmp_path):
    serial = generate_dataset(tmp_path / "serial", 6, style="textured", seed=5)
    parallel = generate_dataset(tmp_path / "parallel", 6, style="textured", seed=5, workers=2)
    assert _read_dir(serial.parent) == _read_dir(parallel.parent)


# ---- frozen outputs ------------------------------------------------------------------------------------
# SHA-256 of what the generator wrote before synth.py became the posekit/data/synth/ package: a
# refactor must keep every byte for the same seed. Recorded with opencv-python-headless 5.0.0 and numpy
# 2.4.6; other versions may draw, blur or JPEG-encode differently, so check those before the code.
RECORDED_WITH = "opencv 5.0.0, numpy 2.4.6"

FROZEN_DATASETS = {
    # 4 images, style "mixed" (both styles), LSP-14, 128x96, seed 3
    "mixed_lsp": {
        "annotations.json": "908ca70db5da74b2dcd7204a13311701bf13415816d848a4d30854c266901166",
        "images/000000.jpg": "cc58ef2194239ce2697e6a4c7dee4231bc0ac4a41d6239fd2bac5d86ab987267",
        "images/000001.jpg": "daa90ad4695f47521432d90858c4ba85447c37ee4f5c733883efe36696df0beb",
        "images/000002.jpg": "a7f71a0a74351bbd959e3f9eeea90cf7b9835c67df8deada9e6f6c07cf7a3901",
        "images/000003.jpg": "1630abd7dc670e2468364a073e11b8a308f7e987993ce15e16f2da75667ade23",
    },
    # 2 images of 2 people each, style "textured", COCO-17, 96x128, seed 5
    "textured_coco_2pp": {
        "annotations.json": "1f68e85bac6211c5f484db283c43335bcb7efc1f91ef860824f6b8eebb52db77",
        "images/000000.jpg": "33df9dc37c5cd11c23bc8ce9a853903f14cfd9e47b80dc731fb879df35bbc701",
        "images/000001.jpg": "4125382b3e6c90508d214040992501deb550aaa1ddb3ca871f6d5768f57f78ac",
    },
}
# In-memory renders (no JPEG, which could round a small pixel change away): image, keypoints, box.
FROZEN_RENDERS = {
    (7, "flat"): "e66da2c7b60fe4664ddbbc3f219e1c705b35e885d4ce972b2e0c572f987c12bd",
    (7, "textured"): "2ca1e575006cce0a12500780ff30bf8ed892e808557e11fda36250674e7147e2",
    (11, "mixed"): "962b2d4dda4962fa74e2663aadd455ccab613fb6e1f7558f28d71da67a3e7204",
}
FROZEN_SCENE = "766066e26a34d11892138b52c3891fddde310c860c1cacf2d30acb3c9607c978"


def _file_hashes(root):
    return {name: hashlib.sha256(data).hexdigest() for name, data in _read_dir(root).items()}


def _array_hash(*arrays):
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def test_generated_datasets_match_the_frozen_hashes(tmp_path):
    made = {
        "mixed_lsp": generate_dataset(tmp_path / "a", 4, style="mixed", skeleton="lsp", seed=3, size=(128, 96)),
        "textured_coco_2pp": generate_dataset(tmp_path / "b", 2, style="textured", skeleton="coco", seed=5,
                                              size=(96, 128), people_per_image=2),
    }
    for name, ann in made.items():
        assert _file_hashes(ann.parent) == FROZEN_DATASETS[name], f"{name} (hashes recorded with {RECORDED_WITH})"


def test_renders_match_the_frozen_hashes():
    for (seed, style), expected in FROZEN_RENDERS.items():
        got = _array_hash(*render_person_image(seed, style=style, skeleton="coco"))
        assert got == expected, f"seed {seed}, {style} (hashes recorded with {RECORDED_WITH})"
    # Two people and an occluder through render_scene with the caller's rng, MPII-16.
    occluder = Occluder(points=np.array([[70.0, 120], [90, 120], [90, 140], [70, 140]]))
    people = [Person(), Person(view=View(yaw=60.0, scale=120.0, center=(120.0, 100.0)))]
    image, annotations = render_scene(people, [occluder], style="textured", skeleton="mpii",
                                      rng=np.random.default_rng(2))
    got = _array_hash(image, *[x for a in annotations for x in (a.keypoints, a.box, np.float64(a.area))])
    assert got == FROZEN_SCENE, f"hashes recorded with {RECORDED_WITH}"
