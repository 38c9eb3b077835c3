"""Camera: an orthographic view of one person, and the projection of a posed body into the image.

The camera looks along -z, so a person with yaw 0 faces the camera and their left shoulder is on the
image right. Image points use cv2's convention (integer coordinates are pixel centres).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from posekit.data.synth.body import Body3D, rot_pitch, rot_yaw


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


def camera_rotation(view: View) -> np.ndarray:
    """(3, 3) rotation from the body frame to camera axes (x right, y down, z toward the viewer)."""
    return rot_pitch(view.pitch) @ rot_yaw(view.yaw)


def roll_2d(deg: float) -> np.ndarray:
    """(2, 2) in-plane rotation by ``deg`` degrees (clockwise on screen, since image y points down)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s], [s, c]])


def _all_points(body: Body3D) -> np.ndarray:
    """(N, 3) every named point and torso ring point of ``body``."""
    return np.concatenate([np.stack(list(body.points.values())), body.upper_torso, body.lower_torso])


def rotated_extent(body: Body3D, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Centre (2,) and (w, h) (2,) of the body's 2D extent in body units after camera and roll (no scale)."""
    xy = (_all_points(body) @ camera_rotation(view).T)[:, :2] @ roll_2d(view.roll).T
    lo, hi = xy.min(0) - 0.05, xy.max(0) + 0.05  # margin for limb radii and hair
    return (lo + hi) / 2, hi - lo


class Projection(NamedTuple):
    """A body in image coordinates. x, y in pixels; depth in body units, larger = nearer the camera.

    points: name -> (3,) x, y, depth. upper_torso, lower_torso: (M, 3) ring points, same columns.
    head_axes, hair_axes: (2, 3) image vectors of the ellipsoids' three semi-axes.
    normals_z: name -> toward-camera component of a face landmark's normal (> 0 faces the camera).
    """

    points: dict[str, np.ndarray]
    upper_torso: np.ndarray
    lower_torso: np.ndarray
    head_axes: np.ndarray
    hair_axes: np.ndarray
    normals_z: dict[str, float]


def project(body: Body3D, view: View) -> Projection:
    """Body frame -> image: named points (x, y, depth) and the torso / head outlines."""
    cam = camera_rotation(view)
    center, _ = rotated_extent(body, view)
    roll = roll_2d(view.roll)

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
    return Projection(points, upper, lower, head_2d, hair_2d, normals_z)
