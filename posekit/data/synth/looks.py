"""Looks: backgrounds, clothing textures, shading and camera effects, drawn from the *look* stream.

The ``flat`` style is a plain or gradient background with a few flat shapes; ``textured`` adds cluttered
multi-scale backgrounds with a floor and contact shadow, patterned clothes, outline shading, lighting,
blur, sensor noise and JPEG artefacts. None of it moves a keypoint.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from posekit.data.synth.body import SIDES
from posekit.data.synth.parts import OCCLUDER_LABEL, PART_INDEX, SHIRT, TROUSERS, label_base, part_materials
from posekit.data.synth.scene import Person, random_colour


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """xx, yy: (H, W) float32 pixel coordinates (cached: read-only)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return xx, yy


def _smooth_noise(rng, height, width, cells, channels=1) -> np.ndarray:
    """(H, W, C) float32 noise, roughly N(0, 1), smooth over ``width / cells`` pixels."""
    shape = (max(int(cells * height / width), 2), max(int(cells), 2), channels)
    grid = rng.standard_normal(shape, dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)


def _pattern_at(rng, ys: np.ndarray, xs: np.ndarray, period: float) -> np.ndarray:
    """(N, 1) float32 pattern value in [0, 1] at the pixels ``ys``, ``xs`` (N,) (e.g. ``np.nonzero(mask)``):
    stripes, plaid, checks or blotches, ``period`` pixels apart. Evaluated only where needed."""
    return _pattern(rng, xs.astype(np.float32), ys.astype(np.float32), period)[:, None]


def _pattern(rng, xs: np.ndarray, ys: np.ndarray, period: float) -> np.ndarray:
    """Pattern value in [0, 1] at pixel coordinates (xs, ys) of any equal shapes (see ``_pattern_at``)."""
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
        thickness = (int(rng.integers(1, max(3, width // 30))) if kind == 3
                     else int(rng.integers(3, max(4, width // 15))))
        cv2.line(image, (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1])), colour, thickness,
                 cv2.LINE_AA)


def _scenery_colour(rng) -> tuple[int, int, int]:
    """Mostly muted colours, like walls, ground and sky in photos."""
    return random_colour(rng, (0.0, 0.55), (0.15, 0.95))


def ground_contact(person: Person, points) -> tuple[float, float, float] | None:
    """(x, y, scale) of where an upright person's feet touch the ground, None if not upright.

    points: the person's projected points (name -> (3,) x, y, depth).
    """
    if abs((person.view.roll + 180) % 360 - 180) > 35:
        return None
    feet = np.stack([points[f"{side}_{p}"][:2] for side, _ in SIDES for p in ("heel", "toe", "ankle")])
    return float(feet[:, 0].mean()), float(feet[:, 1].max()), person.view.scale


def _horizon(rng, height, ground) -> int | None:
    """Image row where the floor starts: behind the feet of an upright person, else anywhere (or none)."""
    if ground is not None and rng.random() < 0.75:
        return int(np.clip(ground[1] - rng.uniform(0.08, 0.6) * ground[2], 0.25 * height, height - 3))
    return int(rng.uniform(0.45, 0.9) * height) if rng.random() < 0.5 else None


def background_flat(rng, height, width, ground=None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a solid colour or a two-colour gradient, sometimes a flat floor, a few flat
    shapes and lines. ground: ``ground_contact`` of the nearest person, or None."""
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


def background_textured(rng, height, width, ground=None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, cluttered: multi-scale noise (mostly brightness, some hue), often a floor with
    the person's contact shadow, many shapes (some patterned) and defocus blur. ground: as for
    ``background_flat``."""
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
        colour = _scenery_colour(rng) if rng.random() < 0.7 else random_colour(rng)
        if patterned and i == 0:  # a patterned object: its mask gets a two-colour pattern
            layer = np.zeros((height, width), np.uint8)
            _random_shape(layer, rng, 255)
            ys, xs = np.nonzero(layer)
            pattern = _pattern_at(rng, ys, xs, rng.uniform(3, 12))
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


def _label_edges(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another label (both sides of every boundary)."""
    edges = np.zeros(label.shape, bool)
    horizontal, vertical = label[:, 1:] != label[:, :-1], label[1:] != label[:-1]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:] |= vertical
    edges[:-1] |= vertical
    return edges


def apply_textures(image, label, people: list[Person], rng) -> np.ndarray:
    """Patterned clothes and occluders, then shading that darkens every part toward its outline.

    image: (H, W, 3) uint8 RGB; label: (H, W) uint8 part-label map of the same drawing (see ``parts``).
    """
    out = image.astype(np.float32)
    for i, person in enumerate(people):
        base = label_base(i)
        materials = part_materials(person.outfit)
        for material, colour in ((SHIRT, person.outfit.shirt), (TROUSERS, person.outfit.trousers)):
            if rng.random() < 0.4:
                continue
            parts = [base + PART_INDEX[p] for p, m in materials.items() if m == material]
            ys, xs = np.nonzero(np.isin(label, parts))
            if not len(ys):
                continue
            period = max(rng.uniform(0.015, 0.05) * person.view.scale, 2.5)
            pattern = _pattern_at(rng, ys, xs, period)
            second = np.clip(np.array(colour, np.float32) * rng.uniform(0.3, 1.7) + rng.normal(0, 40, 3), 0, 255)
            out[ys, xs] = out[ys, xs] * (1 - pattern) + second.astype(np.float32) * pattern
    ys, xs = np.nonzero(label == OCCLUDER_LABEL)
    if len(ys) and rng.random() < 0.6:
        pattern = _pattern_at(rng, ys, xs, rng.uniform(3, 10))
        out[ys, xs] *= 1 - 0.5 * pattern
    # Rounded look: each labelled region gets darker toward its outline (a cheap cylinder shading).
    dist = cv2.distanceTransform((~_label_edges(label)).astype(np.uint8), cv2.DIST_L2, 3)
    radius = max(0.03 * float(np.mean([p.view.scale for p in people])), 2.0) if people else 4.0
    shade = 0.6 + 0.4 * np.sqrt(np.minimum(dist / radius, 1.0))
    shade[label == 0] = 1.0
    out *= shade[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> same: lighting (gamma, gain and colour cast via a lookup table, a light
    gradient), blur, sensor noise and JPEG artefacts."""
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
        x = cv2.imdecode(encode_jpeg(x, int(rng.integers(25, 75))), cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(x)


def encode_jpeg(image: np.ndarray, quality: int, what: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (N,) uint8 JPEG file bytes (cv2 codes BGR, hence the channel flip)."""
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {what}")
    return buf
