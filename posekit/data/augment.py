"""Robustness augmentations: GridMask, AID information dropping, an AutoAugment-style photometric policy.

All take and return ``(H, W, 3) uint8`` RGB images, never modify their input, and draw every random
choice from the ``np.random.Generator`` they are given (same generator state -> same output).
None of them moves pixels, so keypoints stay valid; occluding a keypoint does not change its label
(AID's point is that the network must infer the dropped joint from the rest of the body).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

#: Every photometric op :func:`photometric_policy` knows.
PHOTOMETRIC_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "solarize", "invert", "color",
    "contrast", "brightness", "sharpness", "hue", "gaussian_blur",
)
#: The default op set: the photometric ops of AdvMix's AutoAugment ImageNet policy (Wang et al.,
#: CVPR 2021). Like AdvMix we leave out contrast, brightness and blur, which resemble the held-out
#: ImageNet-C corruptions and would leak the robustness benchmark into training.
ADVMIX_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "solarize", "invert", "color", "sharpness",
)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got shape "
                         f"{getattr(image, 'shape', None)} dtype {getattr(image, 'dtype', type(image).__name__)}")


def _check_range(name: str, value, low: float, high: float | None = None) -> tuple[float, float]:
    lo, hi = value
    if not (low <= lo <= hi) or (high is not None and hi > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be (low, high) with low <= high, both {bound}; got {value!r}")
    return float(lo), float(hi)


# ---- GridMask ------------------------------------------------------------------------------------

def grid_drop_mask(height: int, width: int, period: int, keep_width: int, offset: tuple[int, int] = (0, 0),
                   angle_deg: float = 0.0) -> np.ndarray:
    """The GridMask pattern: (height, width) bool, True where pixels are dropped.

    The plane is tiled with ``period`` x ``period`` cells; in each cell a strip ``keep_width`` wide
    along the top and the left is kept and the remaining (period - keep_width)^2 square is dropped.
    ``offset`` (ox, oy) shifts the grid, ``angle_deg`` rotates it about the image centre. Unrotated,
    pixel (x, y) is dropped iff (x - ox) mod period >= keep_width and (y - oy) mod period >= keep_width,
    so over whole periods the dropped fraction is ((period - keep_width) / period)^2.
    """
    if not 0 < keep_width < period:
        raise ValueError(f"need 0 < keep_width < period, got keep_width={keep_width}, period={period}")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    theta = math.radians(angle_deg)
    u = cx + math.cos(theta) * (xs - cx) + math.sin(theta) * (ys - cy)
    v = cy - math.sin(theta) * (xs - cx) + math.cos(theta) * (ys - cy)
    # the tiny epsilon keeps exact integer coordinates from flipping cell under rounding noise
    cell_u = np.mod(np.floor(u + 1e-9) - offset[0], period)
    cell_v = np.mod(np.floor(v + 1e-9) - offset[1], period)
    return (cell_u >= keep_width) & (cell_v >= keep_width)


def grid_mask(image: np.ndarray, rng: np.random.Generator, *, d_range: tuple[float, float] = (0.2, 0.5),
              ratio: float = 0.5, rotate: bool = True, fill=0) -> np.ndarray:
    """GridMask (Chen et al. 2020): drop a regular grid of squares.

    image: (H, W, 3) uint8.
    d_range: the grid period d is drawn uniformly from this range, as a fraction of min(H, W)
        (at least 2 px).
    ratio: GridMask's r, the kept strip width as a fraction of d (0 < r < 1); each period drops a
        square of side d - round(r d), i.e. a fraction of about (1 - r)^2 of the image
        (r = 0.5 drops 25 %, as in AdvMix).
    rotate: rotate the grid by a random angle in [0, 90) degrees (the grid's full symmetry range);
        the grid offset is always random in [0, d).
    fill: value of the dropped pixels, a number or an RGB triple.
    Returns a new (H, W, 3) uint8 image.
    """
    _check_image(image)
    lo, hi = _check_range("d_range", d_range, 0.0, None)
    if hi <= 0:
        raise ValueError(f"d_range must be positive, got {d_range!r}")
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio!r}")
    h, w = image.shape[:2]
    period = max(2, int(round(rng.uniform(lo, hi) * min(h, w))))
    keep_width = min(max(int(round(ratio * period)), 1), period - 1)
    offset = (int(rng.integers(0, period)), int(rng.integers(0, period)))
    angle = float(rng.uniform(0.0, 90.0)) if rotate else 0.0
    dropped = grid_drop_mask(h, w, period, keep_width, offset, angle)
    out = image.copy()
    out[dropped] = np.asarray(fill, dtype=np.float64).clip(0, 255).round().astype(np.uint8)
    return out


# ---- AID: augmentation by information dropping ---------------------------------------------------

def information_dropping(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator, *,
                         prob: float = 0.5, num_joints: tuple[int, int] = (1, 3),
                         patch_frac: tuple[float, float] = (0.1, 0.2), offset_frac: float = 0.05,
                         scale: float | None = None, fill="noise") -> np.ndarray:
    """AID (Huang et al. 2020): erase the appearance around randomly chosen labelled keypoints.

    With probability ``prob`` a number of labelled joints drawn from ``num_joints`` (inclusive) is
    picked without replacement; for each, a disc is erased whose centre is the joint plus a Gaussian
    offset (std ``offset_frac * scale`` per axis, clipped at 2 std) and whose radius is
    ``uniform(*patch_frac) * scale``. So every changed pixel lies within
    ``patch_frac[1] * scale + 2 * sqrt(2) * offset_frac * scale`` of a chosen joint.

    Defaults follow the AID code: circular patches, radius 0.1-0.2 of the input width around a
    visible joint, applied with probability 0.5 (PaddleDetection's tiny-pose config, offset 0.05 of
    the width). AID drops one patch per image; we drop 1-3 by default (pass (1, 1) for AID's).
    AID fills with zeros; the default 'noise' (uniform random colours) leaves no constant-colour
    shortcut, 'mean' uses the image's mean colour, a number or RGB triple a constant.

    image: (H, W, 3) uint8, typically the affine-cropped network input.
    keypoints: (K, 3) x, y, v in image pixels; joints with v > 0 (labelled) are candidates.
        An image without labelled joints is returned unchanged.
    scale: reference length in pixels (the person / crop size); default min(H, W), which is the
        crop width for portrait top-down inputs as in AID.
    Returns a new (H, W, 3) uint8 image.
    """
    _check_image(image)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise ValueError(f"keypoints must be (K, 3) x, y, v; got shape {keypoints.shape}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob!r}")
    lo_n, hi_n = num_joints
    if not (isinstance(lo_n, (int, np.integer)) and isinstance(hi_n, (int, np.integer)) and 1 <= lo_n <= hi_n):
        raise ValueError(f"num_joints must be (low, high) integers with 1 <= low <= high, got {num_joints!r}")
    r_lo, r_hi = _check_range("patch_frac", patch_frac, 0.0, None)
    if offset_frac < 0:
        raise ValueError(f"offset_frac must be >= 0, got {offset_frac!r}")
    if isinstance(fill, str) and fill not in ("noise", "mean"):
        raise ValueError(f"fill must be 'noise', 'mean', a number or an RGB triple, got {fill!r}")

    out = image.copy()
    labelled = np.flatnonzero(keypoints[:, 2] > 0)
    if labelled.size == 0 or rng.random() >= prob:
        return out
    h, w = image.shape[:2]
    ref = float(scale) if scale is not None else float(min(h, w))
    if ref <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    count = min(int(rng.integers(lo_n, hi_n + 1)), labelled.size)
    chosen = rng.choice(labelled, size=count, replace=False)
    mean_colour = image.reshape(-1, 3).mean(axis=0)
    offset_std = offset_frac * ref
    for joint in chosen:
        radius = rng.uniform(r_lo, r_hi) * ref
        offset = np.clip(rng.normal(0.0, 1.0, 2) * offset_std, -2 * offset_std, 2 * offset_std)
        cx, cy = keypoints[joint, :2] + offset
        # only the disc's bounding box is examined
        x0, x1 = max(0, math.floor(cx - radius)), min(w, math.ceil(cx + radius) + 1)
        y0, y1 = max(0, math.floor(cy - radius)), min(h, math.ceil(cy + radius) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2
        window = out[y0:y1, x0:x1]
        if isinstance(fill, str) and fill == "noise":
            window[inside] = rng.integers(0, 256, size=(int(inside.sum()), 3), dtype=np.uint8)
        elif isinstance(fill, str):
            window[inside] = np.rint(mean_colour).astype(np.uint8)
        else:
            window[inside] = np.asarray(fill, dtype=np.float64).clip(0, 255).round().astype(np.uint8)
    return out


# ---- photometric policy --------------------------------------------------------------------------

def _gray(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (PIL's 'L'), (H, W, 1) float32."""
    return (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def _blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    """PIL ImageEnhance semantics: degenerate + factor * (image - degenerate), clipped to uint8."""
    out = degenerate + factor * (image.astype(np.float32) - degenerate)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def _signed_factor(magnitude: float, rng: np.random.Generator) -> float:
    """1 +- 0.9 m with a random sign: the AutoAugment enhancement range [0.1, 1.9]."""
    return 1.0 + 0.9 * magnitude * (1.0 if rng.random() < 0.5 else -1.0)


def _autocontrast(image, magnitude, rng):
    lo = image.min(axis=(0, 1)).astype(np.float32)
    hi = image.max(axis=(0, 1)).astype(np.float32)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (image.astype(np.float32) - lo) * (255.0 / span)
    out = np.where(hi > lo, out, image)  # flat channels stay as they are
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def _equalize(image, magnitude, rng):
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(image[..., c])) for c in range(3)], axis=-1)


def _posterize(image, magnitude, rng):
    bits = 8 - int(round(4 * magnitude))  # 8 (no-op) .. 4 bits kept
    return image & np.uint8((0xFF << (8 - bits)) & 0xFF)


def _solarize(image, magnitude, rng):
    threshold = 256.0 * (1.0 - magnitude)  # 256 (no-op) .. 0 (full inversion)
    return np.where(image >= threshold, 255 - image, image).astype(np.uint8)


def _invert(image, magnitude, rng):
    return 255 - image


def _color(image, magnitude, rng):
    return _blend(_gray(image), image, _signed_factor(magnitude, rng))


def _contrast(image, magnitude, rng):
    mean = float(np.rint(_gray(image).mean()))
    return _blend(np.float32(mean), image, _signed_factor(magnitude, rng))


def _brightness(image, magnitude, rng):
    return _blend(np.float32(0.0), image, _signed_factor(magnitude, rng))


def _sharpness(image, magnitude, rng):
    # PIL's SMOOTH kernel; the one-pixel border keeps the original values
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
    smooth = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE)
    smooth[0, :], smooth[-1, :], smooth[:, 0], smooth[:, -1] = image[0, :], image[-1, :], image[:, 0], image[:, -1]
    return _blend(smooth, image, _signed_factor(magnitude, rng))


def _hue(image, magnitude, rng):
    # rotate the hue by up to a quarter turn either way; float HSV so the round trip is lossless
    shift_deg = 90.0 * magnitude * (1.0 if rng.random() < 0.5 else -1.0)
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in [0, 360)
    hsv[..., 0] = np.mod(hsv[..., 0] + shift_deg, 360.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.rint(np.clip(rgb * 255.0, 0, 255)).astype(np.uint8)


def _gaussian_blur(image, magnitude, rng):
    sigma = 0.1 + 1.9 * magnitude
    ksize = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(image, (ksize, ksize), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)


_OPS = {
    "autocontrast": _autocontrast, "equalize": _equalize, "posterize": _posterize,
    "solarize": _solarize, "invert": _invert, "color": _color, "contrast": _contrast,
    "brightness": _brightness, "sharpness": _sharpness, "hue": _hue, "gaussian_blur": _gaussian_blur,
}
assert tuple(_OPS) == PHOTOMETRIC_OPS


def photometric_policy(image: np.ndarray, rng: np.random.Generator, *, num_ops: int = 2,
                       magnitude: float | None = None, ops: Sequence[str] = ADVMIX_OPS) -> np.ndarray:
    """RandAugment-style photometric policy (as AdvMix uses for its augmented copies).

    Applies ``num_ops`` ops drawn uniformly (with replacement) from ``ops``, in sequence. Each op's
    strength is ``magnitude`` in [0, 1] (0 = identity for the graded ops) or, if None, drawn
    uniformly in [0, 1] per op. Magnitude maps, following AutoAugment's ranges:

    * posterize keeps 8 - round(4 m) bits; solarize inverts values >= 256 (1 - m);
    * color / contrast / brightness / sharpness blend with their degenerate image by 1 +- 0.9 m
      (random sign), as PIL's ImageEnhance;
    * hue rotates by +-m/4 of a turn; gaussian_blur uses sigma = 0.1 + 1.9 m px;
    * autocontrast, equalize, invert ignore m.

    Photometric only: no pixel moves, so keypoints are unchanged.
    image: (H, W, 3) uint8 RGB. Returns a new (H, W, 3) uint8 image.
    """
    _check_image(image)
    if isinstance(num_ops, bool) or not isinstance(num_ops, (int, np.integer)) or num_ops < 0:
        raise ValueError(f"num_ops must be a non-negative integer, got {num_ops!r}")
    if magnitude is not None and not 0.0 <= magnitude <= 1.0:
        raise ValueError(f"magnitude must be in [0, 1] or None, got {magnitude!r}")
    ops = tuple(ops)
    unknown = [op for op in ops if op not in _OPS]
    if unknown or not ops:
        raise ValueError(f"ops must be a non-empty subset of {PHOTOMETRIC_OPS}, got {ops!r}")
    out = image.copy()
    for _ in range(num_ops):
        op = ops[int(rng.integers(len(ops)))]
        strength = float(rng.uniform(0.0, 1.0)) if magnitude is None else float(magnitude)
        out = _OPS[op](out, strength, rng)
    return out
