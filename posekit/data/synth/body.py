"""Body model: proportions + joint angles -> named 3D points (forward kinematics).

A person is a small 3D stick figure with volume: capsules for limbs, a hull of elliptic rings for the
torso, an ellipsoid for the head. The body frame has +x = the person's left, +y = down, +z = the
person's front, in units of standing height (head top to sole ~ 1).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

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


def rot_yaw(deg: float) -> np.ndarray:
    """(3, 3) rotation about the vertical axis; + turns the front (+z) toward +x."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_pitch(deg: float) -> np.ndarray:
    """(3, 3) rotation about the x axis; + tips the up direction (-y) toward the front (+z)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def rot_roll(deg: float) -> np.ndarray:
    """(3, 3) rotation about the z axis; + tips the up direction (-y) toward +x (the person's left)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _limb_direction(elev: float, azim: float, side: float) -> np.ndarray:
    """(3,) unit vector of a limb hanging from a shoulder or hip (see ``Pose``)."""
    e, a = math.radians(elev), math.radians(azim)
    return np.array([side * math.sin(e) * math.cos(a), math.cos(e), math.sin(e) * math.sin(a)])


def _bend(u: np.ndarray, toward: np.ndarray, angle: float, twist: float = 0.0) -> np.ndarray:
    """Rotate (3,) unit vector ``u`` by ``angle`` degrees toward the part of ``toward`` perpendicular to it.

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
    """(samples, 3) points on an ellipse around (3,) ``center`` spanned by the unit axes ``x_axis``, ``z_axis``."""
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
    chest = rot_pitch(pose.spine_pitch) @ rot_roll(pose.spine_roll) @ rot_yaw(pose.spine_twist)
    thorax = pelvis - chest[:, 1] * shape.torso  # chest[:, 1] is the chest's "down" axis
    p["pelvis"], p["thorax"] = pelvis, thorax

    # Neck and head: the neck takes half of the head's nod and tilt.
    rx, ry, rz = shape.head
    neck_rot = chest @ rot_pitch(0.5 * pose.head_pitch) @ rot_roll(0.5 * pose.head_roll)
    upper_neck = thorax - neck_rot[:, 1] * shape.neck
    head_rot = chest @ rot_pitch(pose.head_pitch) @ rot_roll(pose.head_roll) @ rot_yaw(pose.head_yaw)
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
    arm_frame = rot_yaw(pose.spine_twist)
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
