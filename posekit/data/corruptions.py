"""The 15 benchmark corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019), severities 1-5.

Used to build COCO-C / MPII-C style robustness benchmarks (Wang et al., CVPR 2021). The severity
tables follow the `imagecorruptions` package (Michaelis et al. 2019), which generalised ImageNet-C to
images of any size; the implementations are our own and need only NumPy and OpenCV:

* glass blur shuffles pixels locally with vectorised random displacement fields (the published
  per-pixel swap loop takes > 1 s per 256x256 image in pure Python);
* motion blur is a one-sided Gaussian line kernel applied with ``cv2.filter2D``;
* fog uses our diamond-square plasma fractal; snow our procedural flake layer;
* frost uses a procedural ice-crystal texture generated at the image's own size (the reference
  blends crops of six photographs, which we neither ship nor download).

Pixel-measured parameters (blur radii, shuffle distances, ...) are kept in pixels as in the
reference, so a corruption has the same physical meaning on any image size; only structures that the
reference tied to a fixed size (zoom crops, frost crops, the fog map) adapt to the input.

Images are ``(H, W, 3) uint8`` RGB. Results are rounded to the nearest integer (the reference
truncates with ``np.uint8``, a -0.5 bias we do not reproduce).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from posekit.data.corruption_kernels import (central_zoom, disk_kernel, gaussian_blur, motion_blur_array,
                                             next_power_of_two, plasma_fractal, to_float, to_uint8)

#: ImageNet-C order: noise, blur, weather, digital.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)

# ---- severity tables (index = severity - 1), from the imagecorruptions reference ----------------
_GAUSSIAN_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)          # std of additive noise on [0, 1]
_SHOT_NOISE_PHOTONS = (60, 25, 12, 5, 3)                      # Poisson rate at full white
_IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)              # fraction of values set to 0 or 1
_DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # (disk radius px, anti-alias sigma)
_GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2))  # (sigma, max shift, iters)
_MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))     # (radius px, sigma px)
_ZOOM_FACTORS = (
    np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03),
)
# (flake mean, flake std, flake zoom, threshold, blur radius, blur sigma, image weight)
_SNOW = (
    (0.1, 0.3, 3.0, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2.0, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4.0, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
_FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))  # (image weight, frost weight)
_FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))      # (fog strength, roughness decay)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)                       # added to HSV value
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)                        # factor on the deviation from the mean
_ELASTIC_ALPHA = tuple(250 * a for a in (0.05, 0.065, 0.085, 0.1, 0.12))
_PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)                        # downscale factor
_JPEG_QUALITY = (25, 18, 15, 10, 7)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply one ImageNet-C corruption.

    image: (H, W, 3) uint8 RGB, any size.
    name: one of :data:`CORRUPTIONS`.
    severity: 1 (mild) .. 5 (strong).
    seed: every random choice comes from ``np.random.default_rng(seed)``: same seed, same output.
    Returns a new (H, W, 3) uint8 array; the input is not modified.
    """
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"image must be an (H, W, 3) uint8 array (convert grayscale to 3 channels "
                         f"first), got shape {shape} dtype {dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    rng = np.random.default_rng(seed)
    out = _FUNCTIONS[name](np.ascontiguousarray(image), int(severity) - 1, rng)
    return to_uint8(out)


# ---- noise ---------------------------------------------------------------------------------------

def _gaussian_noise(image, s, rng):
    x = to_float(image)
    return x + rng.normal(0.0, _GAUSSIAN_NOISE_STD[s], x.shape).astype(np.float32)


def _shot_noise(image, s, rng):
    photons = _SHOT_NOISE_PHOTONS[s]
    return rng.poisson(to_float(image) * photons).astype(np.float32) / photons


def _impulse_noise(image, s, rng):
    # salt-and-pepper on every channel value independently, salt and pepper equally likely
    x = to_float(image)
    hit = rng.random(x.shape) < _IMPULSE_AMOUNT[s]
    salt = rng.random(x.shape) < 0.5
    x[hit & salt] = 1.0
    x[hit & ~salt] = 0.0
    return x


# ---- blur ----------------------------------------------------------------------------------------

def _defocus_blur(image, s, rng):
    radius, alias_sigma = _DEFOCUS[s]
    return cv2.filter2D(to_float(image), -1, disk_kernel(radius, alias_sigma))


def _local_shuffle(x: np.ndarray, max_shift: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Replace each interior pixel by a random neighbour, ``iterations`` times (vectorised glass blur).

    Offsets are drawn from [-max_shift, max_shift - 1] per axis like the reference's swaps (whose
    range is half-open); pixels within ``max_shift`` of the border are sources only, never moved.
    """
    h, w = x.shape[:2]
    rows = np.arange(max_shift + 1, h - max_shift + 1)
    cols = np.arange(max_shift + 1, w - max_shift + 1)
    if rows.size == 0 or cols.size == 0:
        return x
    rows, cols = rows[:, None], cols[None, :]
    shape = (rows.shape[0], cols.shape[1])
    for _ in range(iterations):
        src_r = rows + rng.integers(-max_shift, max_shift, shape)
        src_c = cols + rng.integers(-max_shift, max_shift, shape)
        shuffled = x.copy()
        shuffled[rows, cols] = x[src_r, src_c]
        x = shuffled
    return x


def _glass_blur(image, s, rng):
    sigma, max_shift, iterations = _GLASS[s]
    x = gaussian_blur(to_float(image), sigma)
    x = np.floor(x * 255.0).astype(np.uint8)  # the reference quantises between the two blurs
    x = _local_shuffle(x, max_shift, iterations, rng)
    return gaussian_blur(to_float(x), sigma)


def _motion_blur(image, s, rng):
    radius, sigma = _MOTION[s]
    angle = rng.uniform(-45.0, 45.0)
    return motion_blur_array(to_float(image), radius, sigma, angle)


def _zoom_blur(image, s, rng):
    x = to_float(image)
    factors = _ZOOM_FACTORS[s]
    total = x.copy()
    for factor in factors:
        total += central_zoom(x, float(factor))
    return total / (len(factors) + 1)


# ---- weather -------------------------------------------------------------------------------------

def _snow(image, s, rng):
    mean, std, zoom, threshold, blur_radius, blur_sigma, image_weight = _SNOW[s]
    x = to_float(image)
    h, w = x.shape[:2]
    # flakes: thresholded Gaussian noise, enlarged by zooming into it
    flakes = rng.normal(mean, std, (h, w)).astype(np.float32)
    flakes = central_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0.0
    flakes = np.clip(flakes, 0.0, 1.0)
    # falling streaks: motion blur, mostly downward
    flakes = motion_blur_array(flakes, blur_radius, blur_sigma, rng.uniform(-135.0, -45.0))
    flakes = np.rint(np.clip(flakes, 0.0, 1.0) * 255.0) / 255.0
    flakes = flakes[..., None].astype(np.float32)
    # a whitened, washed-out scene behind the snow
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = image_weight * x + (1.0 - image_weight) * np.maximum(x, gray * 1.5 + 0.5)
    return x + flakes + flakes[::-1, ::-1]


def _frost_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural frost on glass: patchy ice haze, granular rime and fern-like dendritic crystals.

    Generated at the image's own size, with feature sizes proportional to the longer side.
    Returns (h, w, 3) float32 RGB in [0, 1], blue-white, mean about 0.4.
    """
    side = max(h, w)
    # patchy ice: a smooth plasma field, contrast-stretched so thick and clear areas alternate
    haze = plasma_fractal(next_power_of_two(side), 1.5, rng)[:h, :w] ** 1.5
    # rime: thresholded fine noise, denser where the ice is thick
    grains = gaussian_blur(rng.random((h, w), dtype=np.float32), max(0.5, side / 900.0))
    grains = (grains > np.quantile(grains, 0.8)).astype(np.float32) * haze
    # crystals: curved stems with side branches at about 60 degrees (hexagonal ice), recursively
    crystals = np.zeros((h, w), np.float32)
    thickness = max(1, round(side / 500))
    step = max(2.0, side / 120.0)
    stack = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * math.pi),
              int(rng.integers(6, 20)), 0) for _ in range(max(4, round(h * w / 4000.0)))]
    while stack:
        x, y, angle, num_steps, depth = stack.pop()
        brightness = float(rng.uniform(0.6, 1.0)) * 0.75 ** depth
        points = [(x, y)]
        for i in range(num_steps):
            angle += rng.normal(0.0, 0.12)
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            points.append((x, y))
            if depth < 2 and rng.random() < 0.45:
                branch = angle + (math.pi / 3) * (1.0 if rng.random() < 0.5 else -1.0)
                stack.append((x, y, branch, max(1, (num_steps - i) // 2), depth + 1))
        cv2.polylines(crystals, [np.round(np.array(points)).astype(np.int32)], False, brightness,
                      thickness, lineType=cv2.LINE_AA)
    glow = gaussian_blur(crystals, max(1.0, side / 200.0))
    texture = 0.6 * haze + 0.35 * grains + np.clip(crystals + 1.5 * glow, 0.0, 1.0) * (0.4 + 0.6 * haze)
    texture = gaussian_blur(texture, max(0.5, side / 800.0))
    texture = np.clip(texture / max(float(np.quantile(texture, 0.995)), 1e-6), 0.0, 1.0)
    texture = np.clip(texture * (0.45 / max(float(texture.mean()), 1e-6)), 0.0, 1.0)
    tint = np.array([0.80, 0.90, 1.0], np.float32)  # RGB: frost is blue-white
    return texture[..., None] * tint


def _frost(image, s, rng):
    image_weight, frost_weight = _FROST[s]
    h, w = image.shape[:2]
    return image_weight * to_float(image) + frost_weight * _frost_texture(h, w, rng)


def _fog(image, s, rng):
    strength, decay = _FOG[s]
    x = to_float(image)
    h, w = x.shape[:2]
    peak = float(x.max())
    fog = plasma_fractal(next_power_of_two(max(h, w)), decay, rng)[:h, :w]
    x = x + strength * fog[..., None]
    # renormalise so the scene keeps its range under the added fog
    return x * peak / (peak + strength)


# ---- digital -------------------------------------------------------------------------------------

def _brightness(image, s, rng):
    # In HSV, raising V = max(R, G, B) with H and S fixed scales all three channels by V'/V.
    # Black pixels (V = 0, S = 0 by convention) become gray (c, c, c).
    x = to_float(image)
    value = x.max(axis=2, keepdims=True)
    new_value = np.minimum(value + _BRIGHTNESS[s], 1.0)
    scale = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, new_value)


def _contrast(image, s, rng):
    x = to_float(image)
    means = x.mean(axis=(0, 1), keepdims=True)  # per channel
    return (x - means) * _CONTRAST[s] + means


def _elastic_transform(image, s, rng):
    x = to_float(image)
    h, w = x.shape[:2]
    # smooth random displacement fields; std ~1 % of each side, amplitude relative to the height
    max_shift = 0.005 * h
    sigma_y, sigma_x = 0.01 * h, 0.01 * w
    ksize = (2 * math.ceil(3 * sigma_x) + 1, 2 * math.ceil(3 * sigma_y) + 1)
    fields = []
    for _ in range(2):
        noise = rng.uniform(-max_shift, max_shift, (h, w)).astype(np.float32)
        fields.append(cv2.GaussianBlur(noise, ksize, sigmaX=sigma_x, sigmaY=sigma_y,
                                       borderType=cv2.BORDER_REFLECT) * _ELASTIC_ALPHA[s])
    dx, dy = fields
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(x, grid_x + dx, grid_y + dy, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def _pixelate(image, s, rng):
    h, w = image.shape[:2]
    factor = _PIXELATE[s]
    small = cv2.resize(image, (max(1, int(w * factor)), max(1, int(h * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _jpeg_compression(image, s, rng):
    # OpenCV codes BGR; swap so the chroma planes are computed from the true colours
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY[s]])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


_FUNCTIONS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}
assert tuple(_FUNCTIONS) == CORRUPTIONS
