"""Synthetic people: a procedural generator of pose-annotated images, posekit's built-in dataset.

A person is a small 3D stick figure with volume (capsules for limbs, a hull of elliptic rings for the
torso, an ellipsoid for the head), posed by joint angles, seen by an orthographic camera and painted
back to front with cv2. While painting, a part-label map records which body part (or occluder) is on
top at every pixel; a joint's visibility flag is read from it.

Sections
--------
1. Body model    ``BodyShape``, ``Pose``, ``forward_kinematics``: proportions + joint angles -> 3D points.
2. Pose sampler  ``sample_pose``: named pose families (standing, walking, running, ..., gymnastics).
3. Scene         ``View``, ``Outfit``, ``Person``, ``Occluder``, ``sample_scene``: camera, size and
                 placement, clothing, occluders.
4. Renderer      ``render_scene``: parts in depth order -> RGB image + label map -> keypoints (x, y, v),
                 tight boxes; the ``flat`` and ``textured`` styles.
5. Writer        ``image_seed``, ``render_person_image``, ``generate_dataset``: COCO json + JPEGs.

Coordinates: the body frame has +x = the person's left, +y = down, +z = the person's front, in units of
standing height (head top to sole ~ 1). The camera looks along -z, so a person with yaw 0 faces the
camera and their left shoulder is on the image right. Image points use cv2's convention (integer
coordinates are pixel centres).

Randomness: one seed -> a ``SeedSequence`` split into a *geometry* stream (people, poses, clothing
colours, occluders) and a *look* stream (background, textures, lighting), so the same seed gives the
same people in every style and only the looks differ (a controlled domain shift).
"""
from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import pathlib
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from posekit.skeletons import Skeleton, get_skeleton

STYLES: tuple[str, ...] = ("flat", "textured", "mixed")

# =====================================================================================================
# 1. Body model
# =====================================================================================================

SIDES = (("left", 1.0), ("right", -1.0))  # (name, sign of x in the body frame)

#: Capsule radii at (proximal, distal) end, in units of standing height, before ``BodyShape.build``.
RADII = {
    "upper_arm": (0.034, 0.026), "forearm": (0.026, 0.019), "hand": (0.019, 0.014),
    "thigh": (0.052, 0.037), "shank": (0.037, 0.024), "foot": (0.021, 0.017), "neck": (0.024, 0.022),
}
#: Torso cross-sections (fraction of the way from thorax to pelvis, half width, half depth).
_UPPER_RINGS = ((0.0, 0.075, 0.045), (0.12, 0.100, 0.060), (0.55, 0.082, 0.052))
_LOWER_RINGS = ((-0.02, 0.104, 0.062), (0.05, 0.094, 0.058))  # around the hip line, pelvis frame


@dataclass(frozen=True)
class BodyShape:
    """Body proportions in units of standing height (defaults: an average adult).

    ``head`` is the half width, half height and half depth of the head ellipsoid; ``build`` scales all
    widths (limb radii, torso rings).
    """

    head: tuple[float, float, float] = (0.052, 0.066, 0.060)
    neck: float = 0.05
    torso: float = 0.29
    shoulder_half_width: float = 0.10
    hip_half_width: float = 0.062
    upper_arm: float = 0.175
    forearm: float = 0.155
    hand: float = 0.085
    thigh: float = 0.245
    shank: float = 0.245
    foot: float = 0.13
    build: float = 1.0


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    """Random proportions around the adult average; left and right stay symmetric."""
    def jitter(value, sd):
        return float(value * np.clip(rng.normal(1.0, sd), 1 - 2.5 * sd, 1 + 2.5 * sd))

    base = BodyShape()
    head = rng.uniform(0.9, 1.15)
    limbs = 1.0
    if rng.random() < 0.08:  # child-like: bigger head, shorter limbs
        head, limbs = head * 1.25, 0.9
    return BodyShape(
        head=tuple(float(h * head * rng.uniform(0.95, 1.05)) for h in base.head),
        neck=jitter(base.neck, 0.12),
        torso=jitter(base.torso, 0.05),
        shoulder_half_width=jitter(base.shoulder_half_width, 0.08),
        hip_half_width=jitter(base.hip_half_width, 0.08),
        upper_arm=jitter(base.upper_arm * limbs, 0.05),
        forearm=jitter(base.forearm * limbs, 0.05),
        hand=jitter(base.hand, 0.06),
        thigh=jitter(base.thigh * limbs, 0.05),
        shank=jitter(base.shank * limbs, 0.05),
        foot=jitter(base.foot, 0.06),
        build=float(rng.uniform(0.8, 1.3)),
    )


@dataclass(frozen=True)
class Pose:
    """Joint angles in degrees. Paired fields are ``(left, right)``.

    Arms and thighs point along ``elev`` (0 = straight down, 90 = horizontal, 180 = straight up) and
    ``azim`` (direction in the horizontal plane: 0 = out to the side, 90 = forward, -90 = backward,
    180 = across the body). ``elbow`` / ``knee`` are flexion (0 = straight); elbows fold the forearm
    forward, knees fold the shank backward. ``elbow_twist`` turns the elbow's bending plane inward.
    ``body_roll`` is an in-plane rotation the pose asks for (e.g. 180 for a handstand).
    """

    spine_pitch: float = 0.0  # + leans forward
    spine_roll: float = 0.0  # + bends toward the person's left
    spine_twist: float = 0.0  # chest yaw relative to the hips
    head_yaw: float = 0.0  # + turns the face toward the person's left
    head_pitch: float = 0.0  # + looks down
    head_roll: float = 0.0
    arm_elev: tuple[float, float] = (12.0, 12.0)
    arm_azim: tuple[float, float] = (10.0, 10.0)
    elbow: tuple[float, float] = (10.0, 10.0)
    elbow_twist: tuple[float, float] = (0.0, 0.0)
    leg_elev: tuple[float, float] = (4.0, 4.0)
    leg_azim: tuple[float, float] = (0.0, 0.0)
    knee: tuple[float, float] = (0.0, 0.0)
    foot_point: tuple[float, float] = (0.0, 0.0)  # + points the toes (plantar flexion)
    body_roll: float = 0.0

    def mirrored(self) -> "Pose":
        """The left-right mirror image of this pose."""
        def swap(pair):
            return (pair[1], pair[0])
        return replace(
            self, spine_roll=-self.spine_roll, spine_twist=-self.spine_twist,
            head_yaw=-self.head_yaw, head_roll=-self.head_roll, body_roll=-self.body_roll,
            arm_elev=swap(self.arm_elev), arm_azim=swap(self.arm_azim), elbow=swap(self.elbow),
            elbow_twist=swap(self.elbow_twist), leg_elev=swap(self.leg_elev),
            leg_azim=swap(self.leg_azim), knee=swap(self.knee), foot_point=swap(self.foot_point))


def _rot_yaw(deg: float) -> np.ndarray:
    """Rotation about the vertical axis; + turns the front (+z) toward +x."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_pitch(deg: float) -> np.ndarray:
    """Rotation about the x axis; + tips the up direction (-y) toward the front (+z)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _rot_roll(deg: float) -> np.ndarray:
    """Rotation about the z axis; + tips the up direction (-y) toward +x (the person's left)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _limb_direction(elev: float, azim: float, side: float) -> np.ndarray:
    """Unit vector of a limb hanging from a shoulder or hip (see ``Pose``)."""
    e, a = math.radians(elev), math.radians(azim)
    return np.array([side * math.sin(e) * math.cos(a), math.cos(e), math.sin(e) * math.sin(a)])


def _bend(u: np.ndarray, toward: np.ndarray, angle: float, twist: float = 0.0) -> np.ndarray:
    """Rotate unit vector ``u`` by ``angle`` degrees toward the part of ``toward`` perpendicular to it.

    ``twist`` first turns that bending direction about ``u`` (right-hand rule), in degrees.
    """
    b = toward - float(np.dot(toward, u)) * u
    norm = float(np.linalg.norm(b))
    if norm < 1e-6:  # ``toward`` parallel to ``u``: any perpendicular will do
        b = np.cross(u, np.array([1.0, 0.0, 0.0]))
        norm = float(np.linalg.norm(b))
    b = b / norm
    if twist:
        t = math.radians(twist)
        b = math.cos(t) * b + math.sin(t) * np.cross(u, b)
    a = math.radians(angle)
    return math.cos(a) * u + math.sin(a) * b


@dataclass
class Body3D:
    """A posed body in the body frame.

    points: named 3D points (every LSP / COCO / MPII joint plus drawing landmarks such as toes).
    upper_torso, lower_torso: (M, 3) points on torso cross-sections; each part is their convex hull.
    head_axes, hair_axes: (3, 3) columns are the ellipsoid's semi-axes.
    normals: outward unit normals of the face landmarks (nose, eyes, ears, mouth).
    """

    points: dict[str, np.ndarray]
    upper_torso: np.ndarray
    lower_torso: np.ndarray
    head_axes: np.ndarray
    hair_axes: np.ndarray
    normals: dict[str, np.ndarray]


def _ring_points(center, x_axis, z_axis, half_width, half_depth, samples=8) -> np.ndarray:
    phi = np.linspace(0.0, 2 * np.pi, samples, endpoint=False)
    return (center[None] + np.cos(phi)[:, None] * (half_width * x_axis)[None]
            + np.sin(phi)[:, None] * (half_depth * z_axis)[None])


@functools.lru_cache(maxsize=32)  # a scene needs the same body for placement, occluders and drawing
def forward_kinematics(shape: BodyShape, pose: Pose) -> Body3D:
    """Walk the kinematic tree pelvis -> spine -> neck -> head and shoulders/hips -> limbs.

    The result is cached: treat its arrays as read-only.
    """
    p: dict[str, np.ndarray] = {}
    normals: dict[str, np.ndarray] = {}
    down, front = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])

    pelvis = np.zeros(3)  # the middle of the hip joints
    chest = _rot_pitch(pose.spine_pitch) @ _rot_roll(pose.spine_roll) @ _rot_yaw(pose.spine_twist)
    thorax = pelvis - chest[:, 1] * shape.torso  # chest[:, 1] is the chest's "down" axis
    p["pelvis"], p["thorax"] = pelvis, thorax

    # Neck and head: the neck takes half of the head's nod and tilt.
    rx, ry, rz = shape.head
    neck_rot = chest @ _rot_pitch(0.5 * pose.head_pitch) @ _rot_roll(0.5 * pose.head_roll)
    upper_neck = thorax - neck_rot[:, 1] * shape.neck
    head_rot = chest @ _rot_pitch(pose.head_pitch) @ _rot_roll(pose.head_roll) @ _rot_yaw(pose.head_yaw)
    radii = np.array([rx, ry, rz])
    head_center = upper_neck + head_rot @ (radii * [0.0, -0.8, 0.12])
    p["upper_neck"] = upper_neck
    p["neck"] = thorax + 0.55 * (upper_neck - thorax)  # LSP's neck: mid-neck, above the shoulder line
    p["head_center"] = head_center
    p["head_top"] = head_center + head_rot @ (radii * [0.0, -1.05, 0.0])
    face = {"nose": (0.0, 0.15, 1.02), "mouth": (0.0, 0.5, 0.85),
            "left_eye": (0.38, -0.08, 0.88), "right_eye": (-0.38, -0.08, 0.88),
            "left_ear": (0.98, 0.05, -0.05), "right_ear": (-0.98, 0.05, -0.05)}
    for name, local in face.items():
        local = np.array(local)
        p[name] = head_center + head_rot @ (radii * local)
        normals[name] = head_rot @ (local / np.linalg.norm(local))
    head_axes = head_rot * radii[None, :]
    p["hair_center"] = head_center + head_rot @ (radii * [0.0, -0.18, -0.22])
    hair_axes = head_axes * np.array([1.05, 0.92, 1.04])[None, :]

    # Arms hang in a frame that turns with the chest but not its lean, so they fall with gravity.
    arm_frame = _rot_yaw(pose.spine_twist)
    fold_toward = arm_frame @ np.array([0.0, -0.3, 1.0])  # forearms fold forward and a bit up
    for i, (side_name, side) in enumerate(SIDES):
        shoulder = thorax + chest @ np.array([side * shape.shoulder_half_width, 0.015, 0.0])
        u = arm_frame @ _limb_direction(pose.arm_elev[i], pose.arm_azim[i], side)
        elbow = shoulder + shape.upper_arm * u
        f = _bend(u, fold_toward, pose.elbow[i], -side * pose.elbow_twist[i])
        wrist = elbow + shape.forearm * f
        p[f"{side_name}_shoulder"], p[f"{side_name}_elbow"], p[f"{side_name}_wrist"] = shoulder, elbow, wrist
        p[f"{side_name}_hand_tip"] = wrist + shape.hand * _bend(f, fold_toward, 10.0)

        hip = pelvis + np.array([side * shape.hip_half_width, 0.0, 0.0])
        u = _limb_direction(pose.leg_elev[i], pose.leg_azim[i], side)
        knee = hip + shape.thigh * u
        s = _bend(u, np.array([0.0, 1.0, -1.0]), pose.knee[i])  # the shank folds back (and down)
        ankle = knee + shape.shank * s
        toe_dir = _bend(s, front, 90.0 - pose.foot_point[i], side * 12.0)  # feet turn slightly out
        heel = ankle + 0.035 * s - 0.03 * toe_dir
        p[f"{side_name}_hip"], p[f"{side_name}_knee"], p[f"{side_name}_ankle"] = hip, knee, ankle
        p[f"{side_name}_heel"], p[f"{side_name}_toe"] = heel, heel + shape.foot * toe_dir

    b = shape.build
    upper = [_ring_points(thorax + chest[:, 1] * (t * shape.torso), chest[:, 0], chest[:, 2], w * b, d * b)
             for t, w, d in _UPPER_RINGS]
    waist = upper[-1]
    lower = [waist] + [_ring_points(pelvis + down * (t * shape.torso), np.array([1.0, 0, 0]), front, w * b, d * b)
                       for t, w, d in _LOWER_RINGS]
    return Body3D(points=p, upper_torso=np.concatenate(upper), lower_torso=np.concatenate(lower),
                  head_axes=head_axes, hair_axes=hair_axes, normals=normals)


# =====================================================================================================
# 2. Pose sampler
# =====================================================================================================

#: (family, weight). Sports-heavy like LSP, with everyday poses for COCO.
POSE_FAMILIES = (
    ("standing", 0.14), ("walking", 0.12), ("running", 0.13), ("jumping", 0.08), ("arms_up", 0.09),
    ("crouching", 0.09), ("sitting", 0.04), ("kicking", 0.06), ("throwing", 0.07), ("swinging", 0.05),
    ("gymnastics", 0.08), ("random", 0.05),
)


def _pair(rng, lo, hi):
    return (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))


def _swing(angle: float) -> tuple[float, float]:
    """A forward (+) / backward (-) swing in the sagittal plane as (elev, azim)."""
    return abs(angle), (90.0 if angle >= 0 else -90.0)


def _gait(rng, stride: float, arm_stride: float, knee_max: float, elbow: tuple[float, float]) -> dict:
    """Walking/running limb angles at a random phase of the gait cycle."""
    phase = rng.uniform(0, 2 * np.pi)
    legs = [_swing(stride * math.sin(phase + k * math.pi) + 5) for k in (0, 1)]
    # The knee bends most while the leg swings through (just after the back position).
    knees = [5 + knee_max * max(0.0, math.sin(phase + k * math.pi - 2.0)) ** 1.5 for k in (0, 1)]
    arms = [_swing(-arm_stride * math.sin(phase + k * math.pi)) for k in (0, 1)]
    return dict(
        leg_elev=(legs[0][0], legs[1][0]), leg_azim=(legs[0][1], legs[1][1]), knee=tuple(knees),
        arm_elev=(arms[0][0] + 8, arms[1][0] + 8),
        arm_azim=(arms[0][1] * 0.85 + rng.uniform(-10, 10), arms[1][1] * 0.85 + rng.uniform(-10, 10)),
        elbow=(rng.uniform(*elbow), rng.uniform(*elbow)), elbow_twist=_pair(rng, 0, 30),
        foot_point=_pair(rng, -10, 30))


def _family_angles(family: str, rng: np.random.Generator) -> dict:
    """Pose fields (see ``Pose``) for one family; the caller adds head motion and mirroring."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if family == "standing":
        kind = rng.integers(4)
        kw = dict(leg_elev=_pair(rng, 0, 12), leg_azim=_pair(rng, -20, 60), knee=_pair(rng, 0, 15),
                  spine_pitch=u(-5, 10), spine_roll=u(-5, 5), spine_twist=u(-15, 15))
        if kind == 0:  # relaxed
            kw.update(arm_elev=_pair(rng, 5, 30), arm_azim=_pair(rng, -20, 60), elbow=_pair(rng, 0, 40))
        elif kind == 1:  # hands on hips
            kw.update(arm_elev=_pair(rng, 30, 45), arm_azim=_pair(rng, -20, 10), elbow=_pair(rng, 95, 130),
                      elbow_twist=_pair(rng, 70, 100))
        elif kind == 2:  # arms crossed / holding something in front
            kw.update(arm_elev=_pair(rng, 15, 35), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 90, 130),
                      elbow_twist=_pair(rng, 40, 80))
        else:  # one hand gesturing
            kw.update(arm_elev=(u(5, 25), u(40, 100)), arm_azim=(u(-10, 40), u(20, 100)),
                      elbow=(u(0, 30), u(30, 120)), elbow_twist=(0.0, u(0, 60)))
        return kw
    if family == "walking":
        return dict(_gait(rng, u(15, 30), u(10, 30), u(25, 50), (10, 45)), spine_pitch=u(-3, 10),
                    spine_twist=u(-10, 10))
    if family == "running":
        kw = _gait(rng, u(35, 65), u(30, 70), u(60, 120), (70, 110))
        return dict(kw, spine_pitch=u(8, 28), spine_twist=u(-15, 15))
    if family == "jumping":
        kind = rng.integers(4)
        if kind == 0:  # star jump
            return dict(arm_elev=_pair(rng, 110, 170), arm_azim=_pair(rng, -10, 30), elbow=_pair(rng, 0, 30),
                        leg_elev=_pair(rng, 15, 40), leg_azim=_pair(rng, -10, 20), knee=_pair(rng, 0, 20),
                        foot_point=_pair(rng, 20, 50))
        if kind == 1:  # tuck
            return dict(arm_elev=_pair(rng, 40, 110), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 20, 90),
                        leg_elev=_pair(rng, 70, 120), leg_azim=_pair(rng, 75, 100), knee=_pair(rng, 100, 145),
                        spine_pitch=u(10, 35), foot_point=_pair(rng, 10, 40))
        if kind == 2:  # stretched up (e.g. basketball)
            return dict(arm_elev=_pair(rng, 140, 180), arm_azim=_pair(rng, 40, 100), elbow=_pair(rng, 0, 70),
                        leg_elev=(u(0, 15), u(20, 60)), leg_azim=(u(-30, 60), u(60, 100)),
                        knee=(u(0, 20), u(40, 110)), spine_pitch=u(-15, 5), foot_point=_pair(rng, 20, 60))
        return dict(  # long jump: legs forward, arms sweeping
            arm_elev=_pair(rng, 30, 160), arm_azim=_pair(rng, -90, 90), elbow=_pair(rng, 0, 40),
            leg_elev=_pair(rng, 50, 95), leg_azim=_pair(rng, 80, 100), knee=_pair(rng, 0, 60),
            spine_pitch=u(10, 40))
    if family == "arms_up":
        kw = dict(arm_elev=(u(110, 180), u(20, 180)), arm_azim=(u(-20, 110), u(-20, 110)),
                  elbow=(u(0, 60), u(0, 100)), elbow_twist=_pair(rng, -20, 60),
                  leg_elev=_pair(rng, 0, 15), leg_azim=_pair(rng, -20, 60), knee=_pair(rng, 0, 20),
                  spine_pitch=u(-10, 5), spine_roll=u(-10, 10), head_pitch=u(-30, 0))
        return kw
    if family == "crouching":
        if rng.random() < 0.3:  # kneeling on one knee
            return dict(leg_elev=(u(0, 25), u(75, 100)), leg_azim=(-90.0 if rng.random() < 0.5 else 90.0, u(80, 100)),
                        knee=(u(85, 120), u(80, 110)), foot_point=(u(20, 60), u(-10, 10)),
                        arm_elev=_pair(rng, 10, 80), arm_azim=_pair(rng, 30, 100), elbow=_pair(rng, 10, 90),
                        spine_pitch=u(-5, 25))
        return dict(leg_elev=_pair(rng, 60, 120), leg_azim=_pair(rng, 45, 95), knee=_pair(rng, 90, 150),
                    foot_point=_pair(rng, -20, 10), spine_pitch=u(20, 55),
                    arm_elev=_pair(rng, 10, 100), arm_azim=_pair(rng, 40, 110), elbow=_pair(rng, 10, 110),
                    elbow_twist=_pair(rng, 0, 50))
    if family == "sitting":
        return dict(leg_elev=_pair(rng, 70, 100), leg_azim=_pair(rng, 60, 100), knee=_pair(rng, 60, 110),
                    spine_pitch=u(-15, 20), arm_elev=_pair(rng, 10, 60), arm_azim=_pair(rng, 20, 100),
                    elbow=_pair(rng, 20, 110), elbow_twist=_pair(rng, 0, 60))
    if family == "kicking":
        return dict(leg_elev=(u(60, 115), u(0, 20)), leg_azim=(u(60, 100), u(-30, 30)),
                    knee=(u(0, 50), u(5, 30)), foot_point=(u(20, 60), 0.0), spine_pitch=u(-25, 5),
                    arm_elev=_pair(rng, 30, 100), arm_azim=_pair(rng, -40, 60), elbow=_pair(rng, 0, 60))
    if family == "throwing":  # throwing, serving, spiking
        return dict(arm_elev=(u(110, 175), u(40, 110)), arm_azim=(u(-80, 30), u(50, 130)),
                    elbow=(u(20, 110), u(0, 50)), elbow_twist=(u(-40, 20), u(0, 40)),
                    leg_elev=(u(15, 40), u(10, 35)), leg_azim=(u(70, 100), u(-100, -70)),
                    knee=(u(10, 40), u(0, 30)), spine_twist=u(-40, 20), spine_pitch=u(-15, 15),
                    spine_roll=u(-15, 5))
    if family == "swinging":  # bat, club, racket: both hands together in front
        return dict(arm_elev=(u(40, 110), u(40, 110)), arm_azim=(u(100, 150), u(60, 100)),
                    elbow=(u(0, 40), u(10, 60)), elbow_twist=_pair(rng, 10, 50),
                    leg_elev=_pair(rng, 10, 25), leg_azim=_pair(rng, -10, 30), knee=_pair(rng, 10, 35),
                    spine_pitch=u(10, 35), spine_twist=u(-45, 45))
    if family == "gymnastics":
        kind = rng.integers(5)
        if kind == 0:  # handstand
            return dict(arm_elev=_pair(rng, 160, 180), arm_azim=_pair(rng, 60, 100), elbow=_pair(rng, 0, 15),
                        leg_elev=(u(0, 15), u(0, 80)), leg_azim=(u(-90, 90), u(-90, 90)),
                        knee=(u(0, 20), u(0, 90)), foot_point=_pair(rng, 30, 70), body_roll=180 + u(-25, 25))
        if kind == 1:  # cartwheel / star
            return dict(arm_elev=_pair(rng, 100, 160), arm_azim=_pair(rng, -10, 20), elbow=_pair(rng, 0, 20),
                        leg_elev=_pair(rng, 25, 75), leg_azim=_pair(rng, -15, 20), knee=_pair(rng, 0, 20),
                        foot_point=_pair(rng, 20, 60), body_roll=u(-180, 180))
        if kind == 2:  # split leap
            return dict(leg_elev=(u(70, 110), u(50, 90)), leg_azim=(u(80, 100), u(-100, -80)),
                        knee=_pair(rng, 0, 25), foot_point=_pair(rng, 30, 70),
                        arm_elev=_pair(rng, 70, 170), arm_azim=_pair(rng, -20, 60), elbow=_pair(rng, 0, 30),
                        spine_pitch=u(-20, 10), body_roll=u(-20, 20))
        if kind == 3:  # arabesque / balance
            return dict(leg_elev=(u(0, 10), u(50, 100)), leg_azim=(u(-30, 60), u(-100, -80)),
                        knee=(u(0, 10), u(0, 30)), foot_point=(0.0, u(30, 70)), spine_pitch=u(15, 50),
                        arm_elev=_pair(rng, 60, 180), arm_azim=_pair(rng, -30, 100), elbow=_pair(rng, 0, 30))
        return dict(  # back bend / tumbling, anywhere around the circle
            spine_pitch=u(-60, -20), arm_elev=_pair(rng, 140, 180), arm_azim=_pair(rng, 60, 100),
            elbow=_pair(rng, 0, 30), leg_elev=_pair(rng, 0, 60), leg_azim=_pair(rng, 60, 100),
            knee=_pair(rng, 0, 120), head_pitch=u(-50, -10), body_roll=u(-180, 180))
    if family == "random":  # anything within the joint limits
        return dict(arm_elev=_pair(rng, 0, 180), arm_azim=_pair(rng, -60, 150), elbow=_pair(rng, 0, 150),
                    elbow_twist=_pair(rng, -30, 90), leg_elev=_pair(rng, 0, 100), leg_azim=_pair(rng, -40, 100),
                    knee=_pair(rng, 0, 150), spine_pitch=u(-20, 60), spine_roll=u(-25, 25),
                    spine_twist=u(-40, 40), foot_point=_pair(rng, -20, 60))
    raise ValueError(f"unknown pose family {family!r}; known: {[f for f, _ in POSE_FAMILIES]}")


def _clip_to_limits(pose: Pose) -> Pose:
    """Keep elbows/knees bending one way and thighs from swinging far backward."""
    def clip(pair, lo, hi):
        return tuple(float(np.clip(x, lo, hi)) for x in pair)
    leg_elev = tuple(min(e, 60.0) if a < -45 else e for e, a in zip(pose.leg_elev, pose.leg_azim))
    return replace(pose, elbow=clip(pose.elbow, 0, 155), knee=clip(pose.knee, 0, 155),
                   arm_elev=clip(pose.arm_elev, 0, 180), leg_elev=clip(leg_elev, 0, 125),
                   foot_point=clip(pose.foot_point, -25, 75))


def sample_pose(rng: np.random.Generator, family: str | None = None) -> Pose:
    """A random pose from ``family`` (or from a family drawn by ``POSE_FAMILIES`` weights)."""
    if family is None:
        names = [f for f, _ in POSE_FAMILIES]
        weights = np.array([w for _, w in POSE_FAMILIES])
        family = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    kw = _family_angles(family, rng)
    kw.setdefault("head_yaw", float(np.clip(rng.normal(0, 25), -75, 75)))
    kw.setdefault("head_pitch", float(np.clip(rng.normal(5, 12), -40, 40)))
    kw.setdefault("head_roll", float(rng.normal(0, 6)))
    pose = Pose(**kw)
    if rng.random() < 0.5:
        pose = pose.mirrored()
    return _clip_to_limits(pose)


# =====================================================================================================
# 3. Scene: camera, clothing, people, occluders
# =====================================================================================================

@dataclass(frozen=True)
class View:
    """Orthographic camera for one person.

    yaw: degrees about the vertical axis; 0 faces the camera, +90 faces image right, 180 shows the back.
    pitch: camera elevation in degrees (foreshortening). roll: in-plane rotation, degrees clockwise.
    scale: pixels per unit of standing height. center: where the centre of the body's extent lands (x, y).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 150.0
    center: tuple[float, float] = (96.0, 96.0)


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


def _random_colour(rng: np.random.Generator, saturation=(0.0, 0.9), value=(0.12, 0.95)) -> tuple[int, int, int]:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def sample_outfit(rng: np.random.Generator) -> Outfit:
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
        shirt=_random_colour(rng, sat, val),
        sleeves=("long", "short", "none")[int(rng.choice(3, p=[0.35, 0.45, 0.2]))],
        tunic=bool(rng.random() < 0.15),
        trousers=_random_colour(rng, (0.0, 0.6), (0.08, 0.8)),
        legwear=("long", "shorts")[int(rng.choice(2, p=[0.6, 0.4]))],
        shoes=_random_colour(rng, (0.0, 0.5), (0.05, 0.9)),
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


def _camera(view: View) -> np.ndarray:
    """(3, 3) rotation from the body frame to camera axes (x right, y down, z toward the viewer)."""
    return _rot_pitch(view.pitch) @ _rot_yaw(view.yaw)


def _all_points(body: Body3D) -> np.ndarray:
    return np.concatenate([np.stack(list(body.points.values())), body.upper_torso, body.lower_torso])


def _rotated_extent(body: Body3D, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of the body's 2D extent in body units after camera and roll (no scale)."""
    xy = (_all_points(body) @ _camera(view).T)[:, :2] @ _roll_2d(view.roll).T
    lo, hi = xy.min(0) - 0.05, xy.max(0) + 0.05  # margin for limb radii and hair
    return (lo + hi) / 2, hi - lo


def _roll_2d(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s], [s, c]])


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
    shape, pose = sample_body_shape(rng), sample_pose(rng)
    yaw, pitch, roll = sample_view_angles(rng, pose)
    view = View(yaw=yaw, pitch=pitch, roll=roll)
    _, extent = _rotated_extent(forward_kinematics(shape, pose), view)
    scale, center = _place(rng, extent, size, num_people)
    return Person(shape=shape, pose=pose, view=replace(view, scale=scale, center=center), outfit=sample_outfit(rng))


#: Body points an occluder may be centred near (uniform over the body, not biased to the face).
_OCCLUDER_ANCHORS = ("head_center", "thorax", "pelvis") + tuple(
    f"{side}_{joint}" for side, _ in SIDES for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))


def _sample_occluders(rng: np.random.Generator, people: list[Person], size) -> list[Occluder]:
    """0-2 convex objects overlapping random body points (boxes, balls, poles, bars, blobs)."""
    r = rng.random()
    count = 0 if r > 0.4 else (1 if r > 0.1 else 2)
    occluders = []
    for _ in range(count):
        person = people[int(rng.integers(len(people)))]
        points = _project(forward_kinematics(person.shape, person.pose), person.view)[0]
        anchor = points[_OCCLUDER_ANCHORS[int(rng.integers(len(_OCCLUDER_ANCHORS)))]][:2]
        s = person.view.scale
        center = anchor + rng.normal(0, 0.08 * s, 2)
        kind = int(rng.integers(5))
        if kind == 0:  # box
            w, h = rng.uniform(0.1, 0.35, 2) * s
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        elif kind == 1:  # ball
            phi = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            radius = rng.uniform(0.05, 0.15) * s
            pts = np.stack([np.cos(phi), np.sin(phi)], 1) * radius
        elif kind == 2:  # pole, post
            w, h = rng.uniform(0.03, 0.08) * s, rng.uniform(0.6, 1.5) * s
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        elif kind == 3:  # bar: fence, table edge, net tape
            w, h = rng.uniform(0.5, 1.2) * s, rng.uniform(0.04, 0.12) * s
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        else:  # blob
            phi = np.sort(rng.uniform(0, 2 * np.pi, 7))
            pts = np.stack([np.cos(phi), np.sin(phi)], 1) * rng.uniform(0.05, 0.18, (7, 1)) * s
            pts = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(float)
        angle = math.radians(rng.uniform(-30, 30)) if kind != 1 else 0.0
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        occluders.append(Occluder(points=pts @ rot.T + center, color=_random_colour(rng)))
    return occluders


def sample_scene(rng: np.random.Generator, size: tuple[int, int], num_people: int = 1) -> tuple[list[Person], list[Occluder]]:
    """People (drawn far to near: smaller first) and occluders for one image."""
    people = [sample_person(rng, size, num_people) for _ in range(num_people)]
    people.sort(key=lambda person: person.view.scale)
    return people, _sample_occluders(rng, people, size)


# =====================================================================================================
# 4. Renderer
# =====================================================================================================

PART_NAMES = (
    "torso_upper", "torso_lower", "neck", "head", "hair", "nose", "left_ear", "right_ear",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm", "left_hand", "right_hand",
    "left_thigh", "right_thigh", "left_shank", "right_shank", "left_foot", "right_foot",
)
_PART = {name: i for i, name in enumerate(PART_NAMES)}
_NUM_PARTS = len(PART_NAMES)
OCCLUDER_LABEL = 255
MAX_PEOPLE = (OCCLUDER_LABEL - 1) // _NUM_PARTS  # label = person * parts + part + 1 must fit uint8

#: Parts that may cover a joint without hiding it (the joint sits on them).
_OWN_PARTS = {
    "head_top": ("head", "hair"), "neck": ("neck", "torso_upper", "head", "hair"),
    "upper_neck": ("neck", "head", "hair"), "thorax": ("torso_upper", "neck"),
    "pelvis": ("torso_lower", "torso_upper"),
    "nose": ("head", "hair", "nose"),
}
for _side, _ in SIDES:
    _OWN_PARTS.update({
        f"{_side}_eye": ("head", "hair", "nose"), f"{_side}_ear": ("head", "hair", f"{_side}_ear"),
        f"{_side}_shoulder": (f"{_side}_upper_arm",),
        f"{_side}_elbow": (f"{_side}_upper_arm", f"{_side}_forearm"),
        f"{_side}_wrist": (f"{_side}_forearm", f"{_side}_hand"),
        f"{_side}_hip": (f"{_side}_thigh",),
        f"{_side}_knee": (f"{_side}_thigh", f"{_side}_shank"),
        f"{_side}_ankle": (f"{_side}_shank", f"{_side}_foot"),
    })
_FACE_VISIBLE = {"nose": -0.1, "left_eye": 0.15, "right_eye": 0.15, "left_ear": -0.35, "right_ear": -0.35}
_DEPTH_MARGIN = 0.03  # body units: a part must be this much nearer than a joint to hide it
_SHIFT = 4  # cv2 fixed-point bits: 1/16 pixel precision
_ONE = 1 << _SHIFT

SKIN, HAIR, SHIRT, TROUSERS, SHOES = range(5)


def _materials(outfit: Outfit) -> dict[str, int]:
    m = {"torso_upper": SHIRT, "torso_lower": SHIRT if outfit.tunic else TROUSERS, "neck": SKIN,
         "head": SKIN, "hair": HAIR, "nose": SKIN}
    for side, _ in SIDES:
        m.update({f"{side}_ear": SKIN, f"{side}_hand": SKIN, f"{side}_foot": SHOES, f"{side}_thigh": TROUSERS,
                  f"{side}_upper_arm": SKIN if outfit.sleeves == "none" else SHIRT,
                  f"{side}_forearm": SHIRT if outfit.sleeves == "long" else SKIN,
                  f"{side}_shank": TROUSERS if outfit.legwear == "long" else SKIN})
    return m


def _material_colours(outfit: Outfit) -> dict[int, tuple[int, int, int]]:
    return {SKIN: outfit.skin, HAIR: outfit.hair, SHIRT: outfit.shirt, TROUSERS: outfit.trousers,
            SHOES: outfit.shoes}


def _project(body: Body3D, view: View):
    """Body frame -> image: named points (x, y, depth) and the torso / head outlines.

    depth is in body units, larger = nearer the camera.
    """
    cam = _camera(view)
    center, _ = _rotated_extent(body, view)
    roll = _roll_2d(view.roll)

    def to_image(points3d: np.ndarray) -> np.ndarray:
        q = points3d @ cam.T
        xy = (q[:, :2] @ roll.T - center) * view.scale + np.asarray(view.center)
        return np.concatenate([xy, q[:, 2:]], 1)

    names = list(body.points)
    pts = to_image(np.stack([body.points[n] for n in names]))
    points = {n: pts[i] for i, n in enumerate(names)}
    upper, lower = to_image(body.upper_torso), to_image(body.lower_torso)
    linear = roll @ cam[:2] * view.scale  # (2, 3): body-frame vector -> image vector
    head_2d, hair_2d = linear @ body.head_axes, linear @ body.hair_axes
    normals_z = {n: float((cam @ v)[2]) for n, v in body.normals.items()}
    return points, upper, lower, head_2d, hair_2d, normals_z


def _ellipse_params(axes_2d: np.ndarray) -> tuple[tuple[float, float], float]:
    """Outline of a projected ellipsoid: (semi-axes, angle in degrees) from its (2, 3) image axes."""
    evals, evecs = np.linalg.eigh(axes_2d @ axes_2d.T)
    semi = np.sqrt(np.maximum(evals, 1e-6))
    return (float(semi[1]), float(semi[0])), math.degrees(math.atan2(evecs[1, 1], evecs[0, 1]))


def _fx(p) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


@dataclass
class _Shape:
    """One drawable piece of a body part. kind: capsule | poly | ellipse."""

    key: float  # depth key, larger = drawn later (nearer)
    part: int
    kind: str
    geometry: tuple
    colour: tuple[int, int, int]


def _draw(image: np.ndarray, label: np.ndarray, shape: _Shape, label_value: int) -> None:
    """Paint ``shape`` anti-aliased into ``image`` and hard-edged into ``label``."""
    for canvas, value, line in ((image, shape.colour, cv2.LINE_AA), (label, label_value, cv2.LINE_8)):
        if shape.kind == "capsule":
            p0, p1, r0, r1 = shape.geometry
            d = p1 - p0
            length = math.hypot(d[0], d[1])
            if length > 1e-6:
                n = np.array([-d[1], d[0]]) / length
                quad = np.array([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0])
                cv2.fillConvexPoly(canvas, np.round(quad * _ONE).astype(np.int32), value, line, _SHIFT)
            for p, r in ((p0, r0), (p1, r1)):
                cv2.circle(canvas, _fx(p), max(int(round(r * _ONE)), 1), value, -1, line, _SHIFT)
        elif shape.kind == "poly":
            cv2.fillConvexPoly(canvas, np.round(shape.geometry * _ONE).astype(np.int32), value, line, _SHIFT)
        else:  # ellipse
            center, semi, angle = shape.geometry
            axes = (max(int(round(semi[0] * _ONE)), 1), max(int(round(semi[1] * _ONE)), 1))
            cv2.ellipse(canvas, _fx(center), axes, angle, 0, 360, value, -1, line, _SHIFT)


def _body_shapes(person: Person, points, upper, lower, head_2d, hair_2d) -> list[_Shape]:
    """Every drawable piece of one person with its depth key (unsorted)."""
    shape, outfit, scale = person.shape, person.outfit, person.view.scale
    colours, material = _material_colours(outfit), _materials(outfit)
    b = shape.build
    shapes = []

    def add(key, part, kind, geometry):
        shapes.append(_Shape(float(key), _PART[part], kind, geometry, colours[material[part]]))

    def capsule(part, a, c, radii, key=None, bias=0.015):
        pa, pc = points[a], points[c]
        if key is None:
            key = (pa[2] + pc[2]) / 2 + bias
        add(key, part, "capsule", (pa[:2], pc[:2], radii[0] * b * scale, radii[1] * b * scale))

    for pts, part in ((upper, "torso_upper"), (lower, "torso_lower")):
        hull = cv2.convexHull(pts[:, :2].astype(np.float32))[:, 0].astype(float)
        add(pts[:, 2].mean(), part, "poly", hull)
    torso_key = upper[:, 2].mean()
    capsule("neck", "thorax", "upper_neck", RADII["neck"], key=max(points["thorax"][2], torso_key) + 0.01)
    head_key = points["head_center"][2] + 0.02
    add(head_key, "head", "ellipse", (points["head_center"][:2], *_ellipse_params(head_2d)))
    if outfit.hair_style != "bald":
        hair_key = head_key + (points["hair_center"][2] - points["head_center"][2])
        add(hair_key, "hair", "ellipse", (points["hair_center"][:2], *_ellipse_params(hair_2d)))
        if outfit.hair_style == "long":  # a tail of hair down the back of the head and neck
            top, bottom = points["hair_center"], points["upper_neck"]
            tail_end = bottom + (bottom - top) * 0.6
            add((top[2] + tail_end[2]) / 2 - 0.01, "hair", "capsule",
                (top[:2], tail_end[:2], 0.8 * shape.head[0] * scale, 0.6 * shape.head[0] * scale))
    add(points["nose"][2], "nose", "ellipse", (points["nose"][:2], (0.16 * shape.head[0] * scale,) * 2, 0.0))
    for side, _ in SIDES:
        ear = points[f"{side}_ear"]
        add(ear[2], f"{side}_ear", "ellipse",
            (ear[:2], (0.22 * shape.head[0] * scale, 0.35 * shape.head[1] * scale), person.view.roll))
        # Limbs attached to the torso are keyed by their nearer end so a frontal arm stays in front.
        for limb, a, c in (("upper_arm", "shoulder", "elbow"), ("thigh", "hip", "knee")):
            pa, pc = points[f"{side}_{a}"], points[f"{side}_{c}"]
            capsule(f"{side}_{limb}", f"{side}_{a}", f"{side}_{c}", RADII[limb],
                    key=max(pa[2], (pa[2] + pc[2]) / 2) + 0.02)
        capsule(f"{side}_forearm", f"{side}_elbow", f"{side}_wrist", RADII["forearm"])
        capsule(f"{side}_hand", f"{side}_wrist", f"{side}_hand_tip", RADII["hand"], bias=0.02)
        capsule(f"{side}_shank", f"{side}_knee", f"{side}_ankle", RADII["shank"])
        capsule(f"{side}_foot", f"{side}_heel", f"{side}_toe", RADII["foot"])
    return shapes


def _draw_face(image: np.ndarray, person: Person, points, normals_z) -> None:
    """Eyes and mouth on the face, where they face the camera (colour only, not the label map)."""
    rx = person.shape.head[0] * person.view.scale
    dark = tuple(int(c * 0.3) for c in person.outfit.skin)
    for side, _ in SIDES:
        if normals_z[f"{side}_eye"] > 0.2:
            cv2.circle(image, _fx(points[f"{side}_eye"]), max(int(0.12 * rx * _ONE), 8), dark, -1, cv2.LINE_AA, _SHIFT)
    if normals_z["mouth"] > 0.3:
        mouth = points["mouth"][:2]
        half = np.array([math.cos(math.radians(person.view.roll)), math.sin(math.radians(person.view.roll))]) * 0.3 * rx
        lips = tuple(int(c * 0.6) for c in person.outfit.skin)
        cv2.line(image, _fx(mouth - half), _fx(mouth + half), lips, 1, cv2.LINE_AA, _SHIFT)


def _keypoints(skeleton: Skeleton, points, normals_z, label, person_index, part_keys, size) -> np.ndarray:
    """(K, 3) x, y, v: v=0 outside the image (x=y=0), v=1 covered by something nearer, else v=2."""
    width, height = size
    out = np.zeros((skeleton.num_keypoints, 3), np.float32)
    base = person_index * _NUM_PARTS + 1
    for k, name in enumerate(skeleton.keypoints):
        x, y, z = points[name]
        if not (0.0 <= x <= width - 1 and 0.0 <= y <= height - 1):
            continue
        lab = int(label[int(round(y)), int(round(x))])
        if lab == OCCLUDER_LABEL or lab >= base + _NUM_PARTS:
            visible = False  # occluders and nearer people are drawn after this person
        elif lab >= base:  # one of this person's parts: hidden only by a part clearly nearer
            part = lab - base
            visible = PART_NAMES[part] in _OWN_PARTS[name] or part_keys[part] <= z + _DEPTH_MARGIN
        else:  # background or a farther person: the joint is just off this person's silhouette
            visible = True
        if name in _FACE_VISIBLE and normals_z[name] < _FACE_VISIBLE[name]:
            visible = False  # the head itself hides a face landmark that looks away
        out[k] = (x, y, 2.0 if visible else 1.0)
    return out


# ---- looks: backgrounds, textures, lighting ---------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return xx, yy


def _smooth_noise(rng, height, width, cells, channels=1) -> np.ndarray:
    """(H, W, C) float32 noise, roughly N(0, 1), smooth over ``width / cells`` pixels."""
    shape = (max(int(cells * height / width), 2), max(int(cells), 2), channels)
    grid = rng.standard_normal(shape, dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)


def _pattern(rng, xs: np.ndarray, ys: np.ndarray, period: float) -> np.ndarray:
    """Pattern value in [0, 1] at pixel coordinates (xs, ys) (any equal shapes): stripes, plaid, checks
    or blotches, ``period`` pixels apart. Evaluated only where needed, e.g. at a mask's pixels."""
    kind = int(rng.integers(4))
    theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    c, s, k = math.cos(theta), math.sin(theta), 2 * math.pi / period
    u = np.sin((xs * c + ys * s) * k + phase)
    if kind == 0:  # stripes of random duty cycle
        return (u > rng.uniform(-0.5, 0.5)).astype(np.float32)
    v = np.sin((ys * c - xs * s) * k)
    if kind == 1:  # plaid: two thin stripe families
        return (0.5 * (u > 0.4) + 0.5 * (v > 0.4)).astype(np.float32)
    if kind == 2:  # checks
        return ((u > 0) ^ (v > 0)).astype(np.float32)
    # blotches: a few random waves at twice the period
    w = v + np.sin((xs * -s * 0.7 + ys * c * 0.7) * k * 0.5 + 1.0) + u
    return np.clip(w * 0.3 + 0.5, 0, 1).astype(np.float32)


def _random_shape(image: np.ndarray, rng: np.random.Generator, colour) -> None:
    """One filled rectangle, ellipse, polygon, line or limb-like stick somewhere around the image."""
    height, width = image.shape[:2]
    kind = int(rng.integers(5))
    cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
    r = rng.uniform(0.05, 0.45) * max(height, width)
    if kind == 0:
        w, h = r, r * rng.uniform(0.3, 2.0)
        cv2.rectangle(image, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)), colour, -1)
    elif kind == 1:
        cv2.ellipse(image, (int(cx), int(cy)), (int(r / 2), int(r * rng.uniform(0.2, 0.6))),
                    rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 2:
        pts = np.stack([rng.uniform(-r, r, 5) + cx, rng.uniform(-r, r, 5) + cy], 1).astype(np.int32)
        cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
    else:  # a line, or a thick limb-like stick (not every skin-coloured stick is a person)
        angle = rng.uniform(0, np.pi)
        d = np.array([math.cos(angle), math.sin(angle)]) * r * (1.0 if kind == 3 else 0.4)
        thickness = int(rng.integers(1, max(3, width // 30))) if kind == 3 else int(rng.integers(3, max(4, width // 15)))
        cv2.line(image, (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1])), colour, thickness,
                 cv2.LINE_AA)


def _scenery_colour(rng) -> tuple[int, int, int]:
    """Mostly muted colours, like walls, ground and sky in photos."""
    return _random_colour(rng, (0.0, 0.55), (0.15, 0.95))


def _ground_contact(person: Person, points) -> tuple[float, float, float] | None:
    """(x, y, scale) of where an upright person's feet touch the ground, None if not upright."""
    if abs((person.view.roll + 180) % 360 - 180) > 35:
        return None
    feet = np.stack([points[f"{side}_{p}"][:2] for side, _ in SIDES for p in ("heel", "toe", "ankle")])
    return float(feet[:, 0].mean()), float(feet[:, 1].max()), person.view.scale


def _horizon(rng, height, ground) -> int | None:
    """Image row where the floor starts: behind the feet of an upright person, else anywhere (or none)."""
    if ground is not None and rng.random() < 0.75:
        return int(np.clip(ground[1] - rng.uniform(0.08, 0.6) * ground[2], 0.25 * height, height - 3))
    return int(rng.uniform(0.45, 0.9) * height) if rng.random() < 0.5 else None


def _background_flat(rng, height, width, ground=None) -> np.ndarray:
    """A solid colour or a two-colour gradient, sometimes a flat floor, a few flat shapes and lines."""
    c0 = np.array(_scenery_colour(rng), np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[:] = c0
    if rng.random() < 0.6:
        c1 = np.array(_scenery_colour(rng), np.float32)
        xx, yy = _pixel_grid(height, width)
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        image = c0 + t[..., None] * (c1 - c0)
    horizon = _horizon(rng, height, ground) if rng.random() < 0.5 else None
    if horizon is not None:
        image[horizon:] = np.array(_scenery_colour(rng), np.float32)
    image = image.astype(np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        _random_shape(image, rng, _scenery_colour(rng))
    return image


def _background_textured(rng, height, width, ground=None) -> np.ndarray:
    """Cluttered: multi-scale noise (mostly brightness, some hue), often a floor with the person's
    contact shadow, many shapes (some patterned) and defocus blur."""
    base = np.array(_scenery_colour(rng), np.float32)
    image = base + 40 * _smooth_noise(rng, height, width, rng.uniform(2, 6))
    image += 12 * _smooth_noise(rng, height, width, rng.uniform(2, 8), 3)
    image += 15 * _smooth_noise(rng, height, width, rng.uniform(10, 30))
    horizon = _horizon(rng, height, ground)
    if horizon is not None:  # ground: grass, court, track, floor
        floor = np.array(_scenery_colour(rng), np.float32)
        image[horizon:] = floor + 25 * _smooth_noise(rng, height - horizon, width, rng.uniform(8, 40))
    image = np.clip(image, 0, 255).astype(np.uint8)
    patterned = rng.random() < 0.5
    for i in range(int(rng.integers(3, 14))):
        colour = _scenery_colour(rng) if rng.random() < 0.7 else _random_colour(rng)
        if patterned and i == 0:  # a patterned object: its mask gets a two-colour pattern
            layer = np.zeros((height, width), np.uint8)
            _random_shape(layer, rng, 255)
            ys, xs = np.nonzero(layer)
            pattern = _pattern(rng, xs.astype(np.float32), ys.astype(np.float32), rng.uniform(3, 12))[:, None]
            other = np.array(_scenery_colour(rng), np.float32)
            image[ys, xs] = (np.array(colour, np.float32) * (1 - pattern) + other * pattern).astype(np.uint8)
        else:
            _random_shape(image, rng, colour)
    if horizon is not None and ground is not None and ground[1] > horizon:  # soft contact shadow
        x, y, scale = ground
        shadow = np.zeros((height, width), np.float32)
        axes = (max(int(rng.uniform(0.12, 0.3) * scale), 1), max(int(rng.uniform(0.02, 0.05) * scale), 1))
        cv2.ellipse(shadow, (int(x + rng.normal(0, 0.05) * scale), int(y)), axes, 0, 0, 360, 1.0, -1)
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.02 * scale, 1.0))
        image = (image * (1 - rng.uniform(0.3, 0.6) * shadow[..., None])).astype(np.uint8)
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 2.5))  # out of focus; grain comes later


def _apply_textures(image, label, people: list[Person], rng) -> np.ndarray:
    """Patterned clothes and occluders, then shading that darkens every part toward its outline."""
    out = image.astype(np.float32)
    for i, person in enumerate(people):
        base = i * _NUM_PARTS + 1
        materials = _materials(person.outfit)
        for material, colour in ((SHIRT, person.outfit.shirt), (TROUSERS, person.outfit.trousers)):
            if rng.random() < 0.4:
                continue
            parts = [base + _PART[p] for p, m in materials.items() if m == material]
            ys, xs = np.nonzero(np.isin(label, parts))
            if not len(ys):
                continue
            period = max(rng.uniform(0.015, 0.05) * person.view.scale, 2.5)
            pattern = _pattern(rng, xs.astype(np.float32), ys.astype(np.float32), period)[:, None]
            second = np.clip(np.array(colour, np.float32) * rng.uniform(0.3, 1.7) + rng.normal(0, 40, 3), 0, 255)
            out[ys, xs] = out[ys, xs] * (1 - pattern) + second.astype(np.float32) * pattern
    ys, xs = np.nonzero(label == OCCLUDER_LABEL)
    if len(ys) and rng.random() < 0.6:
        pattern = _pattern(rng, xs.astype(np.float32), ys.astype(np.float32), rng.uniform(3, 10))[:, None]
        out[ys, xs] *= 1 - 0.5 * pattern
    # Rounded look: each labelled region gets darker toward its outline (a cheap cylinder shading).
    edges = np.zeros(label.shape, bool)
    horizontal, vertical = label[:, 1:] != label[:, :-1], label[1:] != label[:-1]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:] |= vertical
    edges[:-1] |= vertical
    dist = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    radius = max(0.03 * float(np.mean([p.view.scale for p in people])), 2.0) if people else 4.0
    shade = 0.6 + 0.4 * np.sqrt(np.minimum(dist / radius, 1.0))
    shade[label == 0] = 1.0
    out *= shade[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gamma, gain and colour cast via a lookup table, a light gradient), blur, sensor noise
    and JPEG artefacts."""
    height, width = image.shape[:2]
    levels = np.arange(256, dtype=np.float32)[:, None] / 255
    gain = rng.uniform(0.6, 1.3) * rng.uniform(0.88, 1.12, 3)
    lut = np.clip(255 * levels ** rng.uniform(0.7, 1.4) * gain, 0, 255).astype(np.uint8)  # (256, 3)
    x = cv2.LUT(image, lut.reshape(256, 1, 3))
    xx, yy = _pixel_grid(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - width / 2) * math.cos(angle) + (yy - height / 2) * math.sin(angle)) / max(height, width)
    light = 1 + rng.uniform(0, 0.6) * ramp
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(1, 7)
    x = np.clip(x * light[..., None] + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.1))
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 75))])
        x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(x)


@dataclass
class Annotation:
    """One person in a rendered image. keypoints: (K, 3) x, y, v; box: (4,) xywh; area: silhouette pixels."""

    keypoints: np.ndarray
    box: np.ndarray
    area: float


def _tight_box(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(4,) xywh around the silhouette pixels, stretched to cover every labelled keypoint."""
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


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown synth style {style!r}; known: {STYLES}")


def _check_size(size) -> tuple[int, int]:
    if len(size) != 2 or min(int(s) for s in size) < 32:
        raise ValueError(f"size must be (width, height) with both >= 32, got {size!r}")
    return int(size[0]), int(size[1])


def _skeleton_of(skeleton: str | Skeleton) -> Skeleton:
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
    width, height = _check_size(size)
    if style not in ("flat", "textured"):
        raise ValueError(f"render_scene draws 'flat' or 'textured', got {style!r}")
    if len(people) > MAX_PEOPLE:
        raise ValueError(f"at most {MAX_PEOPLE} people per image, got {len(people)}")
    sk = _skeleton_of(skeleton)
    rng = np.random.default_rng(0) if rng is None else rng

    projected = [_project(forward_kinematics(p.shape, p.pose), p.view) for p in people]
    ground = _ground_contact(people[-1], projected[-1][0]) if people else None
    image = (_background_flat if style == "flat" else _background_textured)(rng, height, width, ground)
    label = np.zeros((height, width), np.uint8)
    drawn = []
    for i, person in enumerate(people):
        points, upper, lower, head_2d, hair_2d, normals_z = projected[i]
        shapes = sorted(_body_shapes(person, points, upper, lower, head_2d, hair_2d), key=lambda s: s.key)
        part_keys = np.full(_NUM_PARTS, -np.inf)
        base = i * _NUM_PARTS + 1
        for shape in shapes:
            _draw(image, label, shape, base + shape.part)
            part_keys[shape.part] = max(part_keys[shape.part], shape.key)
            if shape.part == _PART["head"]:
                _draw_face(image, person, points, normals_z)
        silhouette = (label >= base) & (label < base + _NUM_PARTS)  # before anything nearer is drawn
        drawn.append((points, normals_z, part_keys, silhouette))
    for occ in occluders:
        pts = np.round(np.asarray(occ.points, float) * _ONE).astype(np.int32)
        cv2.fillConvexPoly(image, pts, occ.color, cv2.LINE_AA, _SHIFT)
        cv2.fillConvexPoly(label, pts, OCCLUDER_LABEL, cv2.LINE_8, _SHIFT)

    annotations = []
    for i, (points, normals_z, part_keys, silhouette) in enumerate(drawn):
        kps = _keypoints(sk, points, normals_z, label, i, part_keys, (width, height))
        annotations.append(Annotation(kps, _tight_box(silhouette, kps), float(silhouette.sum())))
    if style == "textured":
        image = _photometric(_apply_textures(image, label, people, rng), rng)
    return image, annotations


# =====================================================================================================
# 5. Writer
# =====================================================================================================

def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a dataset generated with ``seed`` (independent of the count)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _render(seed: int, size, style, skeleton, people_per_image) -> tuple[np.ndarray, list[Annotation]]:
    _check_style(style)
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    geometry, look, pick = np.random.SeedSequence(int(seed)).spawn(3)
    if style == "mixed":
        style = ("flat", "textured")[int(np.random.default_rng(pick).integers(2))]
    people, occluders = sample_scene(np.random.default_rng(geometry), _check_size(size), people_per_image)
    return render_scene(people, occluders, size=size, style=style, skeleton=skeleton,
                        rng=np.random.default_rng(look))


def render_person_image(seed: int, *, size=(192, 192), style="flat",
                        skeleton="lsp") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic person. size: (width, height).

    Returns image (H, W, 3) uint8 RGB, keypoints (K, 3) float32 (x, y, v), box (4,) float32 xywh.
    The same seed gives the same person, pose and occluders in every style.
    """
    image, annotations = _render(seed, size, style, skeleton, 1)
    return image, annotations[0].keypoints, annotations[0].box


def _generate_one(task) -> list[dict]:
    """Worker: render image ``index``, write its JPEG, return its annotation records."""
    out_dir, seed, index, size, style, skeleton, people_per_image = task
    image, annotations = _render(image_seed(seed, index), size, style, skeleton, people_per_image)
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for image {index}")
    (pathlib.Path(out_dir) / "images" / f"{index:06d}.jpg").write_bytes(buf.tobytes())
    records = []
    for j, ann in enumerate(annotations):
        kps = ann.keypoints
        records.append({
            "id": index * people_per_image + j + 1, "image_id": index + 1, "category_id": 1,
            "keypoints": [round(float(v), 2) for v in kps.reshape(-1)],
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "bbox": [round(float(v), 2) for v in ann.box], "area": round(ann.area, 2), "iscrowd": 0,
        })
    return records


def _init_worker() -> None:
    cv2.setNumThreads(1)


def generate_dataset(out_dir, num: int, *, style="flat", skeleton="lsp", seed=0, size=(192, 192), workers=1,
                     progress=False, people_per_image: int = 1) -> pathlib.Path:
    """Write ``OUT/images/000000.jpg ...`` and ``OUT/annotations.json`` (COCO keypoints format).

    Image ``i`` has id ``i + 1`` and depends only on (seed, i, style, skeleton, size, people_per_image),
    so datasets of different lengths share their first images and any ``workers`` gives the same bytes.
    Returns the annotation json path.
    """
    _check_style(style)
    size = _check_size(size)
    sk = _skeleton_of(skeleton)
    if num < 0 or seed < 0:
        raise ValueError(f"num and seed must be >= 0, got num={num}, seed={seed}")
    if not 1 <= people_per_image <= MAX_PEOPLE:
        raise ValueError(f"people_per_image must be in [1, {MAX_PEOPLE}], got {people_per_image}")
    out = pathlib.Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks = [(str(out), int(seed), i, size, style, sk.name, int(people_per_image)) for i in range(num)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num, desc=f"synth {style}", unit="img")
    records: list[list[dict]] = []
    if workers > 1 and num > 1:
        # spawn, not fork: the caller may already run torch / OpenMP threads.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            chunk = max(1, min(16, num // (4 * workers)))
            for recs in pool.imap(_generate_one, tasks, chunksize=chunk):
                records.append(recs)
                if bar:
                    bar.update()
    else:
        for task in tasks:
            records.append(_generate_one(task))
            if bar:
                bar.update()
    if bar:
        bar.close()

    coco = {
        "info": {"description": "posekit synthetic people", "style": style, "seed": int(seed),
                 "skeleton": sk.name, "size": list(size)},
        "images": [{"id": i + 1, "file_name": f"{i:06d}.jpg", "width": size[0], "height": size[1]}
                   for i in range(num)],
        "annotations": [r for recs in records for r in recs],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(sk.keypoints),
                        "skeleton": [[a + 1, b + 1] for a, b in sk.limbs]}],
    }
    path = out / "annotations.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(coco, separators=(",", ":")))
    os.replace(tmp, path)
    return path
