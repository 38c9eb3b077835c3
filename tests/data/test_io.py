import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from posekit.data.io import (IMAGE_EXTENSIONS, file_sha256, image_size, load_json, read_image, resolve_inside,
                             write_atomic)
from posekit.data.sample import DataError


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_rgb_png_is_read_exactly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path / "rgb.png")
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (7, 11, 3)
    np.testing.assert_array_equal(out, pixels)
    assert image_size(path) == (11, 7)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = read_image(_save(Image.fromarray(gray, mode="L"), tmp_path / "gray.png"))
    assert out.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: kept
    rgba[0, 1] = (10, 20, 30, 0)  # fully transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black: mid grey
    rgba[1, 1] = (200, 100, 0, 255)
    out = read_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png"))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    assert np.all(np.abs(out[1, 0].astype(int) - 127) <= 1)
    np.testing.assert_array_equal(out[1, 1], [200, 100, 0])


def test_palette_image_uses_its_palette(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2])
    out = read_image(_save(image, tmp_path / "palette.png"))
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 65535, 32768, 2570]], dtype=np.uint16)  # 2570 = 10 * 257
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as check:
        assert check.mode in ("I;16", "I")  # really stored as 16-bit
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 255, 128, 10])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    image = Image.new("CMYK", (16, 8), (0, 0, 0, 0))  # no ink: white
    image.paste((0, 255, 255, 0), (8, 0, 16, 8))  # magenta + yellow: red
    path = _save(image, tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    out = read_image(path).astype(int)
    assert out.shape == (8, 16, 3)
    assert np.all(np.abs(out[:, :4] - 255) <= 6)
    assert np.all(np.abs(out[:, 12:] - [255, 0, 0]) <= 12)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)  # stored 30 wide, 20 high
    pixels[:6, :6] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = _save(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (30, 20, 3)
    assert image_size(path) == (20, 30)
    # rotating clockwise moves the top-left corner to the top-right
    assert out[1, -2, 0] > 200 and out[1, -2, 1] < 60
    assert out[1, 1, 0] < 60


def test_zero_byte_file_is_a_data_error(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg.*unreadable image.*zero-byte"):
        read_image(path)
    with pytest.raises(DataError, match="empty.jpg"):
        image_size(path)


def test_truncated_jpeg_is_a_data_error(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    full = _save(Image.fromarray(pixels), tmp_path / "full.jpg", quality=90)
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert image_size(cut) == (64, 64)  # the header survives
    with pytest.raises(DataError, match="cut.jpg: unreadable image"):
        read_image(cut)


def test_text_file_named_jpg_is_a_data_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(DataError, match="notes.jpg: unreadable image"):
        read_image(path)
    with pytest.raises(DataError, match="notes.jpg: unreadable image"):
        image_size(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nothing.png: unreadable image: no such file"):
        read_image(tmp_path / "nothing.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data worth decoding)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def test_huge_image_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(30000, 30000))
    assert image_size(path) == (30000, 30000)  # the header alone is fine
    with pytest.raises(DataError, match="huge.png: image too large to decode: 30000x30000"):
        read_image(path)


def test_pil_limit_is_left_unchanged(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "small.png")
    read_image(path)
    image_size(path)
    assert Image.MAX_IMAGE_PIXELS == before


def test_image_extensions_are_lower_case_with_dot():
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    assert ".jpg" in IMAGE_EXTENSIONS and ".png" in IMAGE_EXTENSIONS


def test_resolve_inside_accepts_names_inside_the_root(tmp_path):
    (tmp_path / "images").mkdir()
    assert resolve_inside(tmp_path, "images/a.jpg") == (tmp_path / "images" / "a.jpg").resolve()
    assert resolve_inside(tmp_path, "images/../b.jpg") == (tmp_path / "b.jpg").resolve()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "images/../../x.jpg", "", "a\x00b.jpg"])
def test_resolve_inside_refuses_escapes_and_bad_names(tmp_path, name):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="root"):
        resolve_inside(root, name)


def test_resolve_inside_refuses_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    os.symlink(outside, root / "link.jpg")
    os.symlink(root / "real.jpg", root / "inner_link.jpg")
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_inside(root, "link.jpg")
    assert resolve_inside(root, "inner_link.jpg") == (root / "real.jpg").resolve()


def test_resolve_inside_follows_a_symlinked_root(tmp_path):
    real = tmp_path / "real_root"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    assert resolve_inside(tmp_path / "alias", "a.jpg") == (real / "a.jpg").resolve()


def test_load_json_errors_name_the_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert load_json(good) == {"a": [1, 2]}
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"a": [1, 2')
    with pytest.raises(DataError, match="truncated.json: invalid or truncated JSON at line 1"):
        load_json(truncated)
    with pytest.raises(DataError, match="missing.json: annotation file not found"):
        load_json(tmp_path / "missing.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="binary.json"):
        load_json(binary)


def test_write_atomic_text_and_bytes_leave_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    assert write_atomic(path, "new\n") == path and path.read_text() == "new\n"
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "out.json"]


def test_file_sha256_known_digests(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
