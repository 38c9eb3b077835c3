"""Top-down geometry: person box -> affine crop at the model's aspect ratio, and the augmentations that
change coordinate frames (scale, rotation, shift, flip) plus colour jitter.

Every crop is one 2x3 affine matrix ``M`` mapping image pixels to crop pixels; keypoints go through the
same matrix, and its inverse maps predictions back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posekit.config import DEFAULT_PADDING


def box_to_center_scale(box: np.ndarray, aspect_ratio: float,
                        padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Person box -> crop centre and crop size in image pixels.

    box: (4,) ``x, y, w, h``. aspect_ratio: crop width / height of the model input.
    Returns center (2,), size (2,) ``(w, h)``: the box grown to the model's aspect ratio, then by ``padding``
    (:func:`boxes_to_centers_sizes` of one box).
    """
    centers, sizes = boxes_to_centers_sizes(np.asarray(box, dtype=np.float64).reshape(1, -1), aspect_ratio, padding)
    return centers[0], sizes[0]


def boxes_to_centers_sizes(boxes: np.ndarray, aspect_ratio: float,
                           padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) person boxes ``x, y, w, h`` -> crop centres (N, 2) and sizes (N, 2) ``(w, h)``, float32: each box grown
    to the model's aspect ratio (crop width / height), then by ``padding``. The arithmetic is float64, rounded
    once to float32. ValueError names the first box that is not finite with a positive size."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"person boxes must be (N, 4) x, y, w, h; got shape {b.shape}")
    bad = ~(np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0))
    if bad.any():
        raise ValueError(f"person box must be finite with positive size, got {np.asarray(boxes)[np.argmax(bad)]}")
    x, y, w, h = b.T
    centers = np.stack([x + w / 2, y + h / 2], axis=1).astype(np.float32)
    wide = w > aspect_ratio * h
    w, h = np.where(wide, w, h * aspect_ratio), np.where(wide, w / aspect_ratio, h)
    return centers, np.stack([w * padding, h * padding], axis=1).astype(np.float32)


def crop_matrix(center: np.ndarray, size: np.ndarray, output_size: tuple[int, int],
                rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """(2, 3) affine matrix taking image pixels to crop pixels.

    The region of ``size`` (w, h) around ``center``, rotated by ``rotation`` degrees (counter-clockwise in
    the image), fills the ``output_size`` (W, H) crop; ``flip`` mirrors the crop horizontally
    (:func:`crop_matrices` of one crop).
    """
    return crop_matrices(np.reshape(center, (1, 2)), np.reshape(size, (1, 2)), output_size, [rotation], [flip])[0]


def _mirror(out_w: int) -> np.ndarray:
    """(3, 3) mirror of an ``out_w`` wide crop's x axis about its centre."""
    return np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def crop_matrices(centers: np.ndarray, sizes: np.ndarray, output_size: tuple[int, int], rotations,
                  flips) -> np.ndarray:
    """(N, 2, 3) affine matrices taking image pixels to crop pixels, one per crop: centres (N, 2), sizes (N, 2)
    ``(w, h)``, rotations (N,) degrees counter-clockwise, flips (N,) bool (mirror the crop horizontally).

    crop = T_out . S . R . T(-center): the crop centre lands on the output centre (pixel centres at integers).
    The products go through ``np.matmul`` one (2, 2) or (3, 3) slice at a time, as a single crop's would, so a
    batch gives every crop the bits it gets alone."""
    out_w, out_h = output_size
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    sx, sy = out_w / sizes[:, 0], out_h / sizes[:, 1]
    theta = np.deg2rad(np.asarray(rotations, dtype=np.float64).reshape(-1))
    cos, sin = np.cos(theta), np.sin(theta)
    linear = np.stack([np.stack([sx * cos, sx * sin], axis=1), np.stack([-sy * sin, sy * cos], axis=1)], axis=1)
    out_center = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    matrices = np.zeros((len(sizes), 2, 3), dtype=np.float64)
    matrices[:, :, :2] = linear
    matrices[:, :, 2] = out_center - np.matmul(linear, np.asarray(centers, dtype=np.float64).reshape(-1, 2, 1))[:, :, 0]
    flips = np.asarray(flips, dtype=bool).reshape(-1)
    if flips.any():
        bottom = np.broadcast_to([[[0.0, 0.0, 1.0]]], (int(flips.sum()), 1, 3))
        square = np.concatenate([matrices[flips], bottom], axis=1)
        matrices[flips] = np.matmul(_mirror(out_w), square)[:, :2]
    return matrices


def augmented_crop_matrices(boxes: np.ndarray, draws: np.ndarray | None, output_size: tuple[int, int],
                            padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) person boxes and their :func:`augmentation_draws` (N, 8) (None: no augmentation) -> crop matrices
    (N, 2, 3) image -> crop pixels and flips (N,) bool. Each box's crop (:func:`boxes_to_centers_sizes`) moves by
    ``shift x size``, grows by ``scale``, turns by ``rotation`` and mirrors on ``flip``."""
    w, h = output_size
    centers, sizes = boxes_to_centers_sizes(boxes, w / h, padding)
    if draws is None:
        flips = np.zeros(len(centers), bool)
        return crop_matrices(centers, sizes, output_size, np.zeros(len(centers)), flips), flips
    centers = centers + draws[:, 2:4] * sizes  # float64, as the float32 centre plus a float64 shift always was
    sizes = sizes * draws[:, :1].astype(np.float32)  # float32: the scale used to be a Python float, a weak scalar
    flips = draws[:, 4] > 0
    return crop_matrices(centers, sizes, output_size, draws[:, 1], flips), flips


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) -> (2, 3) inverse affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points: (..., 2) -> (..., 2) float32 through the (2, 3) affine ``matrix``; or (N, K, 2) through (N, 2, 3)
    matrices, each person's points through its own matrix (slice by slice, the bits of one person alone)."""
    points = np.asarray(points, dtype=np.float64)
    if matrix.ndim == 3:
        return (np.matmul(points, np.swapaxes(matrix[:, :, :2], 1, 2)) + matrix[:, None, :, 2]).astype(np.float32)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int], out: np.ndarray | None = None,
               rgba: np.ndarray | None = None) -> np.ndarray:
    """image: (H, W, 3) uint8 RGB, or (H, W, 4) RGBA whose fourth channel is ignored (the crop cache's layout:
    OpenCV warps 4 channels faster than 3, per channel the same bytes) -> (out_h, out_w, 3) RGB crop; outside the
    image is black. ``out``: a contiguous (out_h, out_w, 3) uint8 array to write the crop into (a batch's slot: no
    allocation per crop); ``rgba``: a contiguous (out_h, out_w, 4) uint8 buffer for an RGBA image's warp."""
    size = (int(output_size[0]), int(output_size[1]))
    for name, buffer, channels in (("out", out, 3), ("rgba", rgba, 4)):
        if buffer is not None and (buffer.shape != (size[1], size[0], channels) or buffer.dtype != np.uint8
                                   or not buffer.flags.c_contiguous):  # OpenCV would write a new array instead
            raise ValueError(f"{name} must be a contiguous ({size[1]}, {size[0]}, {channels}) uint8 array")
    if image.ndim == 3 and image.shape[2] == 4:
        rgba = cv2.warpAffine(image, matrix, size, dst=rgba, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(0, 0, 0, 0))
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB, dst=out)
    return cv2.warpAffine(image, matrix, size, dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def flip_keypoints_order(keypoints: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """After mirroring, the joint called 'left' is the old 'right': keypoints (K, C) -> reordered (K, C)."""
    return keypoints[flip_index]


@dataclass
class AugmentConfig:
    """Random top-down augmentation, as in SimpleBaseline/HRNet recipes."""

    scale: float = 0.30          # crop size factor drawn from [1 - scale, 1 + scale]
    rotation: float = 30.0       # degrees, drawn from [-rotation, rotation] ...
    rotation_prob: float = 0.6   # ... with this probability
    shift: float = 0.10          # centre shift as a fraction of the crop size
    flip_prob: float = 0.5
    color: float = 0.25          # brightness / contrast / saturation jitter amplitude
    aid_prob: float = 0.0        # AID information dropping (posekit.data.augment), off by default


#: what each column of :func:`augmentation_draws` holds
DRAWS = ("scale", "rotation", "shift_x", "shift_y", "flip", "brightness", "contrast", "saturation")
#: how many doubles in [0, 1) one crop draws at most (:func:`draw_uniforms`): the scale, the rotation coin, the
#: rotation (drawn only when the coin says so), two shifts, the flip coin, three colour jitter factors
UNIFORMS = 9


def _uniform(low: float, high: float, u):
    """``Generator.uniform(low, high)`` from the double(s) ``u`` in [0, 1) it would have drawn: NumPy's own formula
    ``low + (high - low) * u`` and its range checks."""
    span = high - low
    if not np.isfinite(span):
        raise OverflowError("high - low range exceeds valid bounds")
    if span < 0:
        raise ValueError("high - low < 0")
    return low + span * u


def draw_uniforms(rng: np.random.Generator, cfg: AugmentConfig, out: np.ndarray, *, color: bool = True) -> np.ndarray:
    """Draw one crop's doubles from ``rng`` into ``out`` (:data:`UNIFORMS`,) float64 and return it; a cell that is
    not drawn (the rotation when its coin says no, the jitter factors without ``color`` or ``cfg.color``) is left
    as it was. The generator's state afterwards is that of :func:`random_crop_params` followed by the colour
    jitter's ``rng.uniform(1 - color, 1 + color, size=3)``: the same doubles in the same order, in two calls
    instead of six (only the rotation coin decides how many follow)."""
    rng.random(out=out[0:2])  # scale, rotation coin
    rotated = out[1] < cfg.rotation_prob
    rng.random(out=out[2 if rotated else 3:9 if color and cfg.color > 0 else 6])
    return out


def draws_from_uniforms(uniforms: np.ndarray, cfg: AugmentConfig, *, color: bool = True) -> np.ndarray:
    """(N, :data:`UNIFORMS`) doubles of :func:`draw_uniforms` -> (N, 8) float64 augmentation in the order of
    :data:`DRAWS`: each ``rng.uniform`` as NumPy computes it from its double (:func:`_uniform`), flip 1.0 / 0.0,
    rotation 0.0 where its coin says no, the jitter factors NaN without ``color`` or ``cfg.color``."""
    u = np.asarray(uniforms, dtype=np.float64).reshape(-1, UNIFORMS)
    out = np.full((len(u), len(DRAWS)), np.nan)
    out[:, 0] = _uniform(1 - cfg.scale, 1 + cfg.scale, u[:, 0])
    rotated = u[:, 1] < cfg.rotation_prob
    out[:, 1] = 0.0
    if rotated.any():
        out[rotated, 1] = _uniform(-cfg.rotation, cfg.rotation, u[rotated, 2])
    out[:, 2:4] = _uniform(-cfg.shift, cfg.shift, u[:, 3:5])
    out[:, 4] = u[:, 5] < cfg.flip_prob
    if color and cfg.color > 0:
        out[:, 5:8] = _uniform(1 - cfg.color, 1 + cfg.color, u[:, 6:9])
    return out


def augmentation_draws(rng: np.random.Generator, cfg: AugmentConfig, *, color: bool = True) -> np.ndarray:
    """One crop's random draws -> (8,) float64 in the order of :data:`DRAWS` (:func:`draw_uniforms`, then
    :func:`draws_from_uniforms`)."""
    return draws_from_uniforms(draw_uniforms(rng, cfg, np.zeros(UNIFORMS), color=color), cfg, color=color)[0]


def random_crop_params(rng: np.random.Generator, cfg: AugmentConfig) -> dict:
    """Draw one set of geometric augmentation parameters (:func:`augmentation_draws` without the colour)."""
    d = augmentation_draws(rng, cfg, color=False)
    return {"scale": float(d[0]), "rotation": float(d[1]), "shift": d[2:4].copy(), "flip": bool(d[4])}


#: the 256 uint8 levels as float32: colour jitter's brightness and contrast are functions of a pixel's own level
_LEVELS = np.arange(256, dtype=np.float32)


class PixelScratch:
    """Reusable buffers for the colour jitter and normalisation of (H, W, 3) crops, so that a batch allocates them
    once instead of per crop (a fresh output array costs OpenCV's split and LUT more than their work): ``planes``
    (3, H, W) uint8, ``bright`` (H, W, 3) float32, ``channels`` (3, H, W) float64, ``gray`` (H, W) float64,
    ``levels`` (3, H, W) int16."""

    def __init__(self, height: int, width: int):
        self.planes = np.empty((3, height, width), np.uint8)
        self.bright = np.empty((height, width, 3), np.float32)
        self.channels = np.empty((3, height, width), np.float64)
        self.gray = np.empty((height, width), np.float64)
        self.levels = np.empty((3, height, width), np.int16)

    def split(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> its channel planes, written into and returned as ``planes`` (3, H, W)."""
        cv2.split(np.ascontiguousarray(image), list(self.planes))
        return self.planes


def float32_mean(values: np.ndarray) -> np.float32:
    """``values.mean()`` of a float32 array, bit for bit, without its Python wrapper: NumPy's pairwise float32 sum,
    divided by the count as ``np.mean`` does (a float64 quotient rounded to float32)."""
    return np.float32(np.add.reduce(values, axis=None) / np.intp(values.size))


#: |level| below which int16 holds a jittered level before clipping (saturation's float64 result, truncated)
_INT16_SAFE = 32000.0


def _clip_to_planes(channels: np.ndarray, scratch: PixelScratch, bound: float) -> np.ndarray:
    """float64 (3, H, W) jittered levels, each of magnitude below ``bound`` -> ``scratch.planes`` uint8: clip to
    [0, 255] and truncate, done as truncate then clip (equal for every finite value), through int16 (a narrower
    and faster pass than clipping float64) unless ``bound`` could overflow it."""
    if bound >= _INT16_SAFE:
        levels = channels.astype(np.int64)
    else:
        levels = scratch.levels
        np.copyto(levels, channels, casting="unsafe")  # truncation toward zero, as astype
    np.clip(levels, levels.dtype.type(0), levels.dtype.type(255), out=levels)
    np.copyto(scratch.planes, levels, casting="unsafe")  # now in [0, 255]: exact
    return scratch.planes


def jittered_planes(image: np.ndarray, factors: np.ndarray, scratch: PixelScratch | None = None) -> np.ndarray:
    """image: (H, W, 3) uint8, factors (3,) float64 brightness, contrast, saturation -> the (3, H, W) uint8 channel
    planes of the jittered image, in ``scratch.planes`` (overwritten by the next call with the same scratch).

    The result is bit for bit the plain expression ``((x * b - m) * c + m - g) * s + g`` (clipped to [0, 255],
    truncated to uint8) in its original precision: ``x * b`` rounded to float32, ``m`` the float32 mean of that
    image as NumPy sums an (H, W, 3) float32 array, the rest in float64 (NumPy 2 promotes float32 arrays times
    the float64 factors: they must stay NumPy float64, not Python floats), ``g`` the channel mean
    ``((c0 + c1) + c2) / 3``. Brightness and contrast depend on a pixel's own level only, so two 256-entry tables
    replace that per-pixel work; saturation mixes the channels and runs on (3, H, W) planes, where no operation
    broadcasts over a 3-long axis (NumPy's slowest case).
    """
    image = np.ascontiguousarray(image)
    scratch = PixelScratch(*image.shape[:2]) if scratch is None else scratch
    if scratch.gray.shape != image.shape[:2]:  # OpenCV would silently write a new array instead of the scratch
        raise ValueError(f"scratch of {scratch.gray.shape} for an image of {image.shape[:2]}")
    brightness, contrast, saturation = factors
    bright = np.multiply(_LEVELS, brightness).astype(np.float32)  # float32(float64(x) * b), as the image was
    mean = float32_mean(cv2.LUT(image, bright, dst=scratch.bright))  # the float32 image, summed exactly as before
    contrasted = np.multiply(bright - mean, contrast)  # float32 difference, float64 product
    contrasted += mean
    channels, gray = scratch.channels, scratch.gray
    for plane, channel in zip(scratch.split(image), channels):
        cv2.LUT(plane, contrasted, dst=channel)  # (H, W) float64
    np.add(channels[0], channels[1], out=gray)
    gray += channels[2]
    gray /= 3
    channels -= gray
    channels *= saturation
    channels += gray
    # |result| <= max|table| * (|s| + |1 - s|): saturation mixes levels of the table with weights s and 1 - s; the
    # table is monotonic in the level (rounding keeps an affine map's order), so its largest magnitude is at an end
    largest = max(abs(float(contrasted[0])), abs(float(contrasted[-1])))
    return _clip_to_planes(channels, scratch, largest * (abs(saturation) + abs(1 - saturation)) + 1)


def color_jitter_planes(image: np.ndarray, rng: np.random.Generator, amount: float) -> list[np.ndarray]:
    """image: (H, W, 3) uint8 -> the three (H, W) uint8 channel planes of its jittered copy (brightness, contrast and
    saturation factors drawn from [1 - amount, 1 + amount], :func:`jittered_planes`); ``amount <= 0`` draws nothing
    and returns the plain planes."""
    image = np.ascontiguousarray(image)
    if amount <= 0:
        return list(cv2.split(image))
    return list(jittered_planes(image, rng.uniform(1 - amount, 1 + amount, size=3)))


def color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """image: (H, W, 3) uint8 -> jittered copy: brightness, contrast and saturation factors in [1 - amount, 1 + amount]
    (:func:`color_jitter_planes`, interleaved again); ``amount <= 0`` returns ``image`` itself and draws nothing."""
    if amount <= 0:
        return image
    return cv2.merge(color_jitter_planes(image, rng, amount))


IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


#: (3, 256) float32: the normalised value of every uint8 level per channel, computed as the elementwise formula
#: ``(x - mean) / std`` would, so a table look-up gives the same bits
_NORMALIZED_LEVELS = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - IMAGE_MEAN) / IMAGE_STD).T)


def normalize_planes(planes, out: np.ndarray | None = None) -> np.ndarray:
    """Three (H, W) uint8 channel planes (R, G, B; a list or a (3, H, W) array) -> (3, H, W) float32, ImageNet
    mean/std normalised: one table look-up per plane (:data:`_NORMALIZED_LEVELS`, OpenCV's LUT) writes each channel
    of ``out`` (a contiguous (3, H, W) float32 array, e.g. a batch's slot; default a new one) in place."""
    height, width = planes[0].shape
    out = np.empty((3, height, width), np.float32) if out is None else out
    if out.shape != (3, height, width) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous (3, {height}, {width}) float32 array")  # else LUT writes elsewhere
    for channel, plane in enumerate(planes):
        cv2.LUT(np.ascontiguousarray(plane), _NORMALIZED_LEVELS[channel], dst=out[channel])
    return out


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet mean/std normalised (the models' input), by
    :func:`normalize_planes` of its channel planes."""
    if crop.dtype != np.uint8 or crop.size == 0:  # the table holds uint8 levels only
        return ((crop.astype(np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()
    return normalize_planes(cv2.split(np.ascontiguousarray(crop)))
