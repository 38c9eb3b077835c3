"""Reading images and annotation files robustly, and keeping annotation file names inside their root.

Every failure becomes a :class:`~posekit.data.sample.DataError` that names the file, so a broken image
or a hostile file name in an annotation file never surfaces as a bare PIL/OS traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import threading

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from posekit.data.sample import DataError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')

#: Largest image (in pixels) :func:`read_image` decodes: 20000 x 20000. PIL's own decompression-bomb
#: guard (about 89 MP warning, 179 MP error) would reject ordinary panoramas and scans; above this
#: limit the decoded RGB array alone would need more than 1.2 GB.
MAX_IMAGE_PIXELS = 20000 * 20000

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # the EXIF orientations that swap width and height
_PIL_LIMIT_LOCK = threading.Lock()


def _open_unlimited(path) -> Image.Image:
    """``Image.open`` (lazy: header only) without PIL's decompression-bomb check; callers check sizes.

    PIL's limit is a module global, so it is lifted only for the instant of opening, under a lock.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_not_empty(path: pathlib.Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(path, "unreadable image: no such file") from None
    except OSError as err:
        raise DataError(path, f"unreadable image: {err}") from None
    if not path.is_file():
        raise DataError(path, "unreadable image: not a regular file")
    if size == 0:
        raise DataError(path, "unreadable image: empty (zero-byte) file")


def _exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation from what :func:`Image.open` already read (the header), never decoding pixels.

    ``PngImageFile.getexif()`` decodes the whole image to look for an eXIf chunk after the pixel data: on a
    decompression bomb that is gigabytes, spent by the very check meant to refuse it. The base class's
    ``getexif`` reads only the header's EXIF, so that is the one asked (:func:`image_size` and
    :func:`read_image` alike, so both agree on which way up an image is).
    """
    try:
        return int(Image.Image.getexif(img).get(_EXIF_ORIENTATION, 1))
    except Exception:  # a corrupt EXIF block must not make the pixels unreadable
        return 1


def image_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`read_image` would return it, from the header only.

    EXIF orientations 5-8 (rotations by 90 degrees) swap width and height.
    """
    path = pathlib.Path(path)
    _check_not_empty(path)
    try:
        with _open_unlimited(path) as img:
            width, height = img.size
            if _exif_orientation(img) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(path, f"unreadable image: {err}") from None
    if width <= 0 or height <= 0:
        raise DataError(path, f"unreadable image: header gives size {width}x{height}")
    return int(width), int(height)


def _high_bit_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """(H, W) uint8 from a 16-bit, 32-bit integer or float single-channel image, by scaling, not clipping.

    16-bit data (mode ``I;16*``, or ``I`` with values in [0, 65535] as PIL gives for 16-bit PNGs)
    maps 0..65535 -> 0..255. Float data in [0, 1] maps to 0..255; anything else is min-max scaled.
    """
    values = np.asarray(img, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and low >= 0 and high <= 65535):
        scaled = values * (255.0 / 65535.0)
    elif img.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any PIL mode.

    Transparent pixels are composited over white: cut-outs with a transparent background then look
    like studio photos instead of showing whatever colour happens to be stored under alpha = 0.
    """
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        gray = _high_bit_depth_to_uint8(img)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    array = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(array)


def read_image(path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB, upright.

    The EXIF orientation is applied; grayscale, RGBA, palette, CMYK and 16-bit images are converted
    (16-bit values are scaled to 8 bits). Only the first frame of a multi-frame file is read.
    Raises DataError for missing, zero-byte, truncated or non-image files and for images larger
    than :data:`MAX_IMAGE_PIXELS`.
    """
    path = pathlib.Path(path)
    _check_not_empty(path)
    try:
        with _open_unlimited(path) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(path, f"image too large to decode: {width}x{height} pixels "
                                      f"(limit {MAX_IMAGE_PIXELS} pixels, e.g. 20000x20000)")
            orientation = _exif_orientation(img)  # from the header, as image_size reads it
            img.load()  # decode now so truncation is reported here, as a DataError
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
            return _to_rgb_array(img)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataError(path, f"unreadable image: {err}") from None


def resolve_inside(root, relative) -> pathlib.Path:
    """The absolute, symlink-resolved path of ``root/relative``; DataError if it lies outside ``root``.

    Guards every file name that comes from an annotation file: ``../../etc/passwd``, absolute paths
    and symlinks pointing out of the dataset are refused. (A symlinked *root* is fine: the root is
    resolved too.)
    """
    root_text = os.path.realpath(os.fspath(root))
    if not isinstance(relative, (str, os.PathLike)):
        raise DataError(root_text, f"file name must be a string, got {type(relative).__name__}: {relative!r}")
    text = os.fspath(relative)
    if not isinstance(text, str) or not text.strip() or text.strip() == ".":
        raise DataError(root_text, f"empty or invalid file name {text!r}")
    if "\x00" in text:
        raise DataError(root_text, f"file name contains a NUL byte: {text!r}")
    if os.path.isabs(text) or text.startswith(("/", "\\")) or pathlib.PureWindowsPath(text).drive:
        raise DataError(root_text, f"absolute file name {text!r} is not allowed (must be relative to the root)")
    try:
        # realpath follows symlinks, so a link that points out of the root is caught below
        resolved = os.path.realpath(os.path.join(root_text, text))
    except (OSError, ValueError) as err:
        raise DataError(root_text, f"cannot resolve file name {text!r}: {err}") from None
    if resolved != root_text and not resolved.startswith(root_text.rstrip(os.sep) + os.sep):
        raise DataError(root_text, f"file name {text!r} points outside the dataset root (to {resolved})")
    return pathlib.Path(resolved)


def load_json(path):
    """Parse a JSON file; a missing, unreadable, non-UTF-8 or truncated file becomes a DataError."""
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(path, "annotation file not found") from None
    except OSError as err:
        raise DataError(path, f"cannot read annotation file: {err}") from None
    if not raw.strip():
        raise DataError(path, "annotation file is empty")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(path, f"annotation file is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise DataError(path, f"invalid or truncated JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply") from None


def write_atomic(path, data: str | bytes) -> pathlib.Path:
    """Write text or bytes to ``path`` atomically: a hidden ``.NAME.tmp`` next to it, then ``os.replace``, so a
    reader (or a rerun after a crash) sees the old file or the new one, never half of it."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def file_sha256(path) -> str:
    """The sha256 hex digest of a file (e.g. a checkpoint's identity), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
