"""Renderer: people and occluders -> RGB image + part-label map -> keypoints (x, y, v) and tight boxes.

Parts are painted back to front; the label map then says what is on top at every pixel, and a joint's
visibility flag is read from it: covered by an occluder, a nearer person or a clearly nearer part of its
own body = 1, else 2; outside the image = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.data.synth.body import SIDES, forward_kinematics
from posekit.data.synth.camera import Projection, project
from posekit.data.synth.draw import body_pieces, draw_face, draw_occluder, draw_piece
from posekit.data.synth.looks import apply_textures, background_flat, background_textured, ground_contact, photometric
from posekit.data.synth.parts import MAX_PEOPLE, NUM_PARTS, OCCLUDER_LABEL, PART_INDEX, PART_NAMES, label_base
from posekit.data.synth.scene import Occluder, Person
from posekit.skeletons import Skeleton, get_skeleton


def _own_parts() -> dict[str, tuple[str, ...]]:
    """Joint name -> the parts that may cover it without hiding it (the joint sits on them)."""
    own = {
        "head_top": ("head", "hair"), "neck": ("neck", "torso_upper", "head", "hair"),
        "upper_neck": ("neck", "head", "hair"), "thorax": ("torso_upper", "neck"),
        "pelvis": ("torso_lower", "torso_upper"),
        "nose": ("head", "hair", "nose"),
    }
    for side, _ in SIDES:
        own.update({
            f"{side}_eye": ("head", "hair", "nose"), f"{side}_ear": ("head", "hair", f"{side}_ear"),
            f"{side}_shoulder": (f"{side}_upper_arm",),
            f"{side}_elbow": (f"{side}_upper_arm", f"{side}_forearm"),
            f"{side}_wrist": (f"{side}_forearm", f"{side}_hand"),
            f"{side}_hip": (f"{side}_thigh",),
            f"{side}_knee": (f"{side}_thigh", f"{side}_shank"),
            f"{side}_ankle": (f"{side}_shank", f"{side}_foot"),
        })
    return own


#: The joints the synthetic body has, each with the parts that may cover it without hiding it.
_OWN_PARTS = _own_parts()
#: A face landmark whose normal points less toward the camera than this is hidden by the head itself.
_FACE_VISIBLE = {"nose": -0.1, "left_eye": 0.15, "right_eye": 0.15, "left_ear": -0.35, "right_ear": -0.35}
_DEPTH_MARGIN = 0.03  # body units: a part must be this much nearer than a joint to hide it


def _keypoints(skeleton: Skeleton, projection: Projection, label, person_index, part_keys, size) -> np.ndarray:
    """(K, 3) x, y, v: v=0 outside the image (x=y=0), v=1 covered by something nearer, else v=2.

    label: (H, W) uint8 part-label map of the finished drawing. part_keys: (NUM_PARTS,) nearest depth
    key drawn for each of this person's parts. size: (width, height).
    """
    width, height = size
    out = np.zeros((skeleton.num_keypoints, 3), np.float32)
    base = label_base(person_index)
    for k, name in enumerate(skeleton.keypoints):
        x, y, z = projection.points[name]
        if not (0.0 <= x <= width - 1 and 0.0 <= y <= height - 1):
            continue
        lab = int(label[int(round(y)), int(round(x))])
        if lab == OCCLUDER_LABEL or lab >= base + NUM_PARTS:
            visible = False  # occluders and nearer people are drawn after this person
        elif lab >= base:  # one of this person's parts: hidden only by a part clearly nearer
            part = lab - base
            visible = PART_NAMES[part] in _OWN_PARTS[name] or part_keys[part] <= z + _DEPTH_MARGIN
        else:  # background or a farther person: the joint is just off this person's silhouette
            visible = True
        if name in _FACE_VISIBLE and projection.normals_z[name] < _FACE_VISIBLE[name]:
            visible = False  # the head itself hides a face landmark that looks away
        out[k] = (x, y, 2.0 if visible else 1.0)
    return out


@dataclass
class Annotation:
    """One person in a rendered image. keypoints: (K, 3) x, y, v; box: (4,) xywh; area: silhouette pixels."""

    keypoints: np.ndarray
    box: np.ndarray
    area: float


def _tight_box(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(4,) float32 xywh around the (H, W) ``mask``'s pixels, stretched to cover every labelled keypoint."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if cols.size:
        x0, y0, x1, y1 = float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
    elif labelled.size:
        x0, y0 = labelled.min(0)
        x1, y1 = labelled.max(0) + 1
    else:
        return np.array([0, 0, 1, 1], np.float32)
    if labelled.size:
        x0, y0 = min(x0, labelled[:, 0].min()), min(y0, labelled[:, 1].min())
        x1, y1 = max(x1, labelled[:, 0].max()), max(y1, labelled[:, 1].max())
    return np.array([x0, y0, x1 - x0, y1 - y0], np.float32)


def check_size(size) -> tuple[int, int]:
    """``(width, height)`` as ints; both at least 32 pixels."""
    if len(size) != 2 or min(int(s) for s in size) < 32:
        raise ValueError(f"size must be (width, height) with both >= 32, got {size!r}")
    return int(size[0]), int(size[1])


def skeleton_of(skeleton: str | Skeleton) -> Skeleton:
    """The named (or given) skeleton, if the synthetic body has every one of its joints."""
    sk = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
    missing = [n for n in sk.keypoints if n not in _OWN_PARTS]
    if missing:
        raise ValueError(f"skeleton {sk.name!r}: the synthetic body has no joints {missing}")
    return sk


def render_scene(people: list[Person], occluders: list[Occluder] = (), *, size=(192, 192), style="flat",
                 skeleton="lsp", rng: np.random.Generator | None = None) -> tuple[np.ndarray, list[Annotation]]:
    """Draw ``people`` (in list order, later = nearer) and ``occluders`` (in front of everyone).

    size: (width, height). style: ``flat`` or ``textured``. rng drives the looks (background, textures,
    lighting); None = a fixed seed. Returns image (H, W, 3) uint8 RGB and one ``Annotation`` per person.
    """
    width, height = check_size(size)
    if style not in ("flat", "textured"):
        raise ValueError(f"render_scene draws 'flat' or 'textured', got {style!r}")
    if len(people) > MAX_PEOPLE:
        raise ValueError(f"at most {MAX_PEOPLE} people per image, got {len(people)}")
    sk = skeleton_of(skeleton)
    rng = np.random.default_rng(0) if rng is None else rng

    projected = [project(forward_kinematics(p.shape, p.pose), p.view) for p in people]
    ground = ground_contact(people[-1], projected[-1].points) if people else None
    image = (background_flat if style == "flat" else background_textured)(rng, height, width, ground)
    label = np.zeros((height, width), np.uint8)
    drawn = []
    for i, (person, projection) in enumerate(zip(people, projected)):
        pieces = sorted(body_pieces(person, projection), key=lambda piece: piece.key)
        part_keys = np.full(NUM_PARTS, -np.inf)
        base = label_base(i)
        for piece in pieces:
            draw_piece(image, label, piece, base + piece.part)
            part_keys[piece.part] = max(part_keys[piece.part], piece.key)
            if piece.part == PART_INDEX["head"]:
                draw_face(image, person, projection)
        silhouette = (label >= base) & (label < base + NUM_PARTS)  # before anything nearer is drawn
        drawn.append((projection, part_keys, silhouette))
    for occluder in occluders:
        draw_occluder(image, label, occluder)

    annotations = []
    for i, (projection, part_keys, silhouette) in enumerate(drawn):
        kps = _keypoints(sk, projection, label, i, part_keys, (width, height))
        annotations.append(Annotation(kps, _tight_box(silhouette, kps), float(silhouette.sum())))
    if style == "textured":
        image = photometric(apply_textures(image, label, people, rng), rng)
    return image, annotations
