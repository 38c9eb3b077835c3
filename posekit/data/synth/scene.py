"""Scene composition: who is in an image, dressed how, seen from where, and what is in front of them.

``sample_scene`` draws the people (body, pose, view, outfit) and occluders of one image from the
*geometry* stream; everything it returns is the same in every style.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from posekit.data.synth.body import SIDES, BodyShape, Pose, forward_kinematics, sample_body_shape
from posekit.data.synth.camera import View, project, roll_2d, rotated_extent
from posekit.data.synth.poses import sample_pose


@dataclass(frozen=True)
class Outfit:
    """Colours (RGB) and cut of one person's clothes."""

    skin: tuple[int, int, int] = (224, 172, 130)
    hair: tuple[int, int, int] = (60, 40, 30)
    hair_style: str = "short"  # short | long | bald
    shirt: tuple[int, int, int] = (40, 90, 170)
    sleeves: str = "short"  # long | short | none
    tunic: bool = False  # the shirt also covers the hips
    trousers: tuple[int, int, int] = (50, 50, 60)
    legwear: str = "long"  # long | shorts
    shoes: tuple[int, int, int] = (30, 30, 30)


@dataclass(frozen=True)
class Person:
    """One person to draw: body proportions, joint angles, camera and clothes."""

    shape: BodyShape = field(default_factory=BodyShape)
    pose: Pose = field(default_factory=Pose)
    view: View = field(default_factory=View)
    outfit: Outfit = field(default_factory=Outfit)


@dataclass(frozen=True)
class Occluder:
    """A convex polygon drawn in front of everyone. points: (N, 2) pixels; color: RGB."""

    points: np.ndarray
    color: tuple[int, int, int] = (120, 120, 120)


_SKIN_TONES = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 94),
                        (160, 104, 70), (110, 70, 48), (80, 52, 38)], float)
_HAIR_COLOURS = np.array([(20, 16, 14), (55, 35, 25), (100, 65, 40), (170, 130, 80), (215, 185, 120),
                          (150, 150, 150), (130, 55, 30)], float)


def random_colour(rng: np.random.Generator, saturation=(0.0, 0.9), value=(0.12, 0.95)) -> tuple[int, int, int]:
    """An RGB colour of random hue, saturation and value drawn from the given fractions."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Skin between the listed tones, hair, and a muted (everyday) or bright (sports) outfit."""
    k = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(k)
    skin = _SKIN_TONES[lo] + (k - lo) * (_SKIN_TONES[min(lo + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[lo])
    skin = np.clip(skin + rng.normal(0, 6, 3), 0, 255)
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2), 0, 255)
    # Sports kits are often bright; everyday clothes are often dark or muted.
    muted = rng.random() < 0.5
    sat, val = ((0.0, 0.45), (0.1, 0.7)) if muted else ((0.4, 1.0), (0.35, 0.95))
    return Outfit(
        skin=tuple(int(c) for c in skin), hair=tuple(int(c) for c in hair),
        hair_style=("short", "long", "bald")[int(rng.choice(3, p=[0.6, 0.32, 0.08]))],
        shirt=random_colour(rng, sat, val),
        sleeves=("long", "short", "none")[int(rng.choice(3, p=[0.35, 0.45, 0.2]))],
        tunic=bool(rng.random() < 0.15),
        trousers=random_colour(rng, (0.0, 0.6), (0.08, 0.8)),
        legwear=("long", "shorts")[int(rng.choice(2, p=[0.6, 0.4]))],
        shoes=random_colour(rng, (0.0, 0.5), (0.05, 0.9)),
    )


def sample_view_angles(rng: np.random.Generator, pose: Pose) -> tuple[float, float, float]:
    """(yaw, pitch, roll): mostly frontal or profile, some backs; mostly upright."""
    r = rng.random()
    if r < 0.4:
        yaw = rng.normal(0, 25)
    elif r < 0.75:
        yaw = (1 if rng.random() < 0.5 else -1) * rng.uniform(50, 130)
    elif r < 0.88:
        yaw = 180 + rng.normal(0, 25)
    else:
        yaw = rng.uniform(-180, 180)
    pitch = np.clip(rng.normal(0, 10), -25, 25)
    roll = pose.body_roll + rng.normal(0, 5)
    if rng.random() < 0.05:  # falls, dives, tilted cameras
        roll += rng.uniform(-70, 70)
    return float(yaw), float(pitch), float(roll)


def _place(rng, extent: np.ndarray, size: tuple[int, int], num_people: int) -> tuple[float, tuple[float, float]]:
    """Scale (pixels per unit height) and centre: standing height 60-90% of the image (one person),
    shrunk to fit unless this person is deliberately cut by the border (10%)."""
    width, height = size
    frac = rng.uniform(0.6, 0.9) if num_people == 1 else rng.uniform(0.3, 0.7)
    scale = frac * height
    cropped = rng.random() < 0.1
    if cropped:
        scale *= rng.uniform(1.0, 1.3)
    else:
        scale = min(scale, 0.97 * width / extent[0], 0.97 * height / extent[1])
    half = extent * scale / 2
    center = []
    for half_i, side in zip(half, (width, height)):
        if cropped:  # any centre inside the image, the body may stick out
            center.append(rng.uniform(0.15 * side, 0.85 * side))
        elif half_i * 2 <= side:
            center.append(rng.uniform(half_i, side - half_i))
        else:
            center.append(side / 2)
    return float(scale), (float(center[0]), float(center[1]))


def sample_person(rng: np.random.Generator, size: tuple[int, int], num_people: int = 1) -> Person:
    """A random person placed in a ``size`` = (width, height) image shared by ``num_people``."""
    shape, pose = sample_body_shape(rng), sample_pose(rng)
    yaw, pitch, roll = sample_view_angles(rng, pose)
    view = View(yaw=yaw, pitch=pitch, roll=roll)
    _, extent = rotated_extent(forward_kinematics(shape, pose), view)
    scale, center = _place(rng, extent, size, num_people)
    return Person(shape=shape, pose=pose, view=replace(view, scale=scale, center=center), outfit=sample_outfit(rng))


#: Body points an occluder may be centred near (uniform over the body, not biased to the face).
_OCCLUDER_ANCHORS = ("head_center", "thorax", "pelvis") + tuple(
    f"{side}_{joint}" for side, _ in SIDES for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))


def _centred_rectangle(width: float, height: float) -> np.ndarray:
    """(4, 2) corners of a ``width`` x ``height`` rectangle centred on the origin."""
    return np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2


def _sample_occluders(rng: np.random.Generator, people: list[Person]) -> list[Occluder]:
    """0-2 convex objects overlapping random body points (boxes, balls, poles, bars, blobs)."""
    r = rng.random()
    count = 0 if r > 0.4 else (1 if r > 0.1 else 2)
    occluders = []
    for _ in range(count):
        person = people[int(rng.integers(len(people)))]
        points = project(forward_kinematics(person.shape, person.pose), person.view).points
        anchor = points[_OCCLUDER_ANCHORS[int(rng.integers(len(_OCCLUDER_ANCHORS)))]][:2]
        s = person.view.scale
        center = anchor + rng.normal(0, 0.08 * s, 2)
        kind = int(rng.integers(5))
        if kind == 0:  # box
            pts = _centred_rectangle(*(rng.uniform(0.1, 0.35, 2) * s))
        elif kind == 1:  # ball
            phi = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            radius = rng.uniform(0.05, 0.15) * s
            pts = np.stack([np.cos(phi), np.sin(phi)], 1) * radius
        elif kind == 2:  # pole, post
            pts = _centred_rectangle(rng.uniform(0.03, 0.08) * s, rng.uniform(0.6, 1.5) * s)
        elif kind == 3:  # bar: fence, table edge, net tape
            pts = _centred_rectangle(rng.uniform(0.5, 1.2) * s, rng.uniform(0.04, 0.12) * s)
        else:  # blob
            phi = np.sort(rng.uniform(0, 2 * np.pi, 7))
            pts = np.stack([np.cos(phi), np.sin(phi)], 1) * rng.uniform(0.05, 0.18, (7, 1)) * s
            pts = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(float)
        rot = roll_2d(rng.uniform(-30, 30) if kind != 1 else 0.0)  # a ball looks the same at any angle
        occluders.append(Occluder(points=pts @ rot.T + center, color=random_colour(rng)))
    return occluders


def sample_scene(rng: np.random.Generator, size: tuple[int, int],
                 num_people: int = 1) -> tuple[list[Person], list[Occluder]]:
    """People (drawn far to near: smaller first) and occluders for one image."""
    people = [sample_person(rng, size, num_people) for _ in range(num_people)]
    people.sort(key=lambda person: person.view.scale)
    return people, _sample_occluders(rng, people)
