"""Drawing one person: body parts as capsules, hulls and ellipses, painted into the image and label map.

Every piece is painted twice: anti-aliased in colour into the image, hard-edged with its part label
into the label map, with cv2's fixed-point coordinates for sub-pixel placement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from posekit.data.synth.body import RADII, SIDES
from posekit.data.synth.camera import Projection
from posekit.data.synth.parts import OCCLUDER_LABEL, PART_INDEX, material_colours, part_materials
from posekit.data.synth.scene import Occluder, Person

_SUBPIXEL_BITS = 4  # cv2 fixed-point bits: 1/16 pixel precision
_SUBPIXEL = 1 << _SUBPIXEL_BITS


def _fixed_point(p) -> tuple[int, int]:
    """(x, y) pixels -> cv2 fixed-point integers."""
    return int(round(p[0] * _SUBPIXEL)), int(round(p[1] * _SUBPIXEL))


def _fixed_polygon(points) -> np.ndarray:
    """(N, 2) pixels -> (N, 2) int32 cv2 fixed-point vertices."""
    return np.round(np.asarray(points, float) * _SUBPIXEL).astype(np.int32)


def _fixed_length(pixels: float) -> int:
    """A radius or semi-axis in fixed point, at least one unit so cv2 draws something."""
    return max(int(round(pixels * _SUBPIXEL)), 1)


def _ellipse_params(axes_2d: np.ndarray) -> tuple[tuple[float, float], float]:
    """Outline of a projected ellipsoid: (semi-axes, angle in degrees) from its (2, 3) image axes."""
    evals, evecs = np.linalg.eigh(axes_2d @ axes_2d.T)
    semi = np.sqrt(np.maximum(evals, 1e-6))
    return (float(semi[1]), float(semi[0])), math.degrees(math.atan2(evecs[1, 1], evecs[0, 1]))


@dataclass
class Piece:
    """One drawable piece of a body part.

    kind and geometry: ``capsule`` (p0 (2,), p1 (2,), r0, r1), ``poly`` ((N, 2) convex polygon) or
    ``ellipse`` (center (2,), (semi-axis, semi-axis), angle in degrees); all in pixels.
    """

    key: float  # depth key, larger = drawn later (nearer)
    part: int
    kind: str
    geometry: tuple
    colour: tuple[int, int, int]


def _paint(canvas: np.ndarray, kind: str, geometry, value, line: int) -> None:
    """Fill one ``kind`` / ``geometry`` (see ``Piece``) with ``value`` on one canvas."""
    if kind == "capsule":
        p0, p1, r0, r1 = geometry
        d = p1 - p0
        length = math.hypot(d[0], d[1])
        if length > 1e-6:
            n = np.array([-d[1], d[0]]) / length
            quad = np.array([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0])
            cv2.fillConvexPoly(canvas, _fixed_polygon(quad), value, line, _SUBPIXEL_BITS)
        for p, r in ((p0, r0), (p1, r1)):
            cv2.circle(canvas, _fixed_point(p), _fixed_length(r), value, -1, line, _SUBPIXEL_BITS)
    elif kind == "poly":
        cv2.fillConvexPoly(canvas, _fixed_polygon(geometry), value, line, _SUBPIXEL_BITS)
    else:  # ellipse
        center, semi, angle = geometry
        axes = (_fixed_length(semi[0]), _fixed_length(semi[1]))
        cv2.ellipse(canvas, _fixed_point(center), axes, angle, 0, 360, value, -1, line, _SUBPIXEL_BITS)


def _paint_both(image, label, kind: str, geometry, colour, label_value: int) -> None:
    """Anti-aliased ``colour`` into ``image`` (H, W, 3), hard-edged ``label_value`` into ``label`` (H, W)."""
    for canvas, value, line in ((image, colour, cv2.LINE_AA), (label, label_value, cv2.LINE_8)):
        _paint(canvas, kind, geometry, value, line)


def draw_piece(image: np.ndarray, label: np.ndarray, piece: Piece, label_value: int) -> None:
    """Paint ``piece`` anti-aliased into ``image`` and hard-edged into ``label``."""
    _paint_both(image, label, piece.kind, piece.geometry, piece.colour, label_value)


def draw_occluder(image: np.ndarray, label: np.ndarray, occluder: Occluder) -> None:
    """Paint ``occluder`` into ``image`` and as ``OCCLUDER_LABEL`` into ``label``."""
    _paint_both(image, label, "poly", occluder.points, occluder.color, OCCLUDER_LABEL)


def body_pieces(person: Person, projection: Projection) -> list[Piece]:
    """Every drawable piece of one person with its depth key (unsorted)."""
    points, upper, lower = projection.points, projection.upper_torso, projection.lower_torso
    shape, outfit, scale = person.shape, person.outfit, person.view.scale
    colours, material = material_colours(outfit), part_materials(outfit)
    b = shape.build
    pieces = []

    def add(key, part, kind, geometry):
        pieces.append(Piece(float(key), PART_INDEX[part], kind, geometry, colours[material[part]]))

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
    add(head_key, "head", "ellipse", (points["head_center"][:2], *_ellipse_params(projection.head_axes)))
    if outfit.hair_style != "bald":
        hair_key = head_key + (points["hair_center"][2] - points["head_center"][2])
        add(hair_key, "hair", "ellipse", (points["hair_center"][:2], *_ellipse_params(projection.hair_axes)))
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
    return pieces


def draw_face(image: np.ndarray, person: Person, projection: Projection) -> None:
    """Eyes and mouth on the face, where they face the camera (colour only, not the label map)."""
    points, normals_z = projection.points, projection.normals_z
    rx = person.shape.head[0] * person.view.scale
    dark = tuple(int(c * 0.3) for c in person.outfit.skin)
    for side, _ in SIDES:
        if normals_z[f"{side}_eye"] > 0.2:
            radius = max(int(0.12 * rx * _SUBPIXEL), 8)  # truncated, not rounded, with a floor of half a pixel
            cv2.circle(image, _fixed_point(points[f"{side}_eye"]), radius, dark, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
    if normals_z["mouth"] > 0.3:
        mouth = points["mouth"][:2]
        roll = math.radians(person.view.roll)
        half = np.array([math.cos(roll), math.sin(roll)]) * 0.3 * rx
        lips = tuple(int(c * 0.6) for c in person.outfit.skin)
        cv2.line(image, _fixed_point(mouth - half), _fixed_point(mouth + half), lips, 1, cv2.LINE_AA, _SUBPIXEL_BITS)
