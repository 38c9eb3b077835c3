"""Odd image files: every one is either decoded to (H, W, 3) uint8 RGB upright, or reported by name.

Covers ``read_image`` / ``image_size`` directly, the folder reader, ``Predictor.predict_samples`` and the
``posekit predict FOLDER`` command (which must finish and list the bad files).
"""
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posekit.codecs import HeatmapCodec
from posekit.data.formats import read_image_folder
from posekit.data.io import MAX_IMAGE_PIXELS, image_size, read_image
from posekit.data.sample import DataError, Sample
from posekit.inference.predictor import Predictor
from posekit.skeletons import get_skeleton

REPO_ROOT = Path(__file__).resolve().parents[2]
EXIF_ORIENTATION = 0x0112


# -- image makers ----------------------------------------------------------------------------------
def jpeg_bytes(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **save_kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR declaring ``width x height`` RGB, then IEND: no pixel data at all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def noise_rgb(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def marker_image(width: int, height: int) -> Image.Image:
    """Black ``width x height`` RGB image with a white 8x8 block in the stored top-left corner."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:8, :8] = 255
    return Image.fromarray(array)


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return jpeg_bytes(image, exif=exif)


# -- decodable odd images: known answers ------------------------------------------------------------
def test_grayscale_is_replicated_to_three_equal_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    rgb = read_image(tmp_path / "gray.png")
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], np.uint8)  # clear, opaque blue, half black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    rgb = read_image(tmp_path / "rgba.png").astype(int)
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, 0].tolist() == [255, 255, 255]  # fully transparent -> white background
    assert rgb[0, 1].tolist() == [0, 0, 255]
    assert np.all(np.abs(rgb[0, 2] - 127) <= 1)  # 50 % black over white


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], np.uint16)  # 257 = one 8-bit step, 32896 = 128 * 257
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = read_image(tmp_path / "deep.png")
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.all(rgb[..., 0] == rgb[..., 2])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    (tmp_path / "cmyk.jpg").write_bytes(jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0))))  # pure red ink mix
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    rgb = read_image(tmp_path / "cmyk.jpg").astype(int)
    assert rgb.shape == (16, 16, 3)
    assert np.all(np.abs(rgb - [255, 0, 0]) <= 8)


@pytest.mark.parametrize("orientation, displayed_shape, marker_corner", [
    (1, (30, 20), (0, 0)),          # as stored: 20 wide, 30 high, marker top-left
    (3, (30, 20), (29, 19)),        # rotated 180 degrees: marker bottom-right
    (6, (20, 30), (0, 29)),         # rotate 90 clockwise to display: top-left -> top-right
    (8, (20, 30), (19, 0)),         # rotate 90 counter-clockwise: top-left -> bottom-left
])
def test_exif_orientation_is_applied(tmp_path, orientation, displayed_shape, marker_corner):
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(with_orientation(marker_image(20, 30), orientation))
    rgb = read_image(path)
    assert rgb.shape[:2] == displayed_shape
    assert image_size(path) == (displayed_shape[1], displayed_shape[0])  # header agrees with the pixels
    row, col = marker_corner
    assert rgb[row, col].min() > 200  # the white marker moved to the expected corner
    assert rgb[displayed_shape[0] - 1 - row, displayed_shape[1] - 1 - col].max() < 50  # the opposite corner is black


def test_palette_with_transparency_and_multi_frame_gif(tmp_path):
    frames = [Image.new("P", (6, 4), color) for color in (1, 2)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    rgb = read_image(tmp_path / "anim.gif")
    assert rgb.shape == (4, 6, 3)
    assert rgb[0, 0].tolist() == [255, 0, 0]  # first frame only


def test_png_content_with_jpg_extension_is_read_by_content(tmp_path):
    (tmp_path / "really_png.jpg").write_bytes(png_bytes(Image.new("RGB", (5, 7), (1, 2, 3))))
    rgb = read_image(tmp_path / "really_png.jpg")
    assert rgb.shape == (7, 5, 3) and rgb[3, 3].tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [(1, 1), (2, 3)])
def test_very_small_images_decode(tmp_path, size):
    Image.new("RGB", size, (9, 8, 7)).save(tmp_path / "tiny.png")
    rgb = read_image(tmp_path / "tiny.png")
    assert rgb.shape == (size[1], size[0], 3) and rgb[0, 0].tolist() == [9, 8, 7]


def test_very_wide_image_decodes(tmp_path):
    Image.new("RGB", (12000, 200), (10, 20, 30)).save(tmp_path / "wide.png")
    assert image_size(tmp_path / "wide.png") == (12000, 200)
    rgb = read_image(tmp_path / "wide.png")
    assert rgb.shape == (200, 12000, 3) and rgb[199, 11999].tolist() == [10, 20, 30]


# -- undecodable files: one DataError that names the file -----------------------------------------
def truncated_jpeg(path):
    data = jpeg_bytes(noise_rgb(64, 64, seed=1))
    path.write_bytes(data[: len(data) // 2])


def truncated_png(path):
    data = png_bytes(noise_rgb(64, 64, seed=2))
    path.write_bytes(data[: len(data) // 2])


BROKEN_FILES = {
    "zero.jpg": lambda p: p.write_bytes(b""),
    "truncated.jpg": truncated_jpeg,
    "truncated.png": truncated_png,
    "header_cut.jpg": lambda p: p.write_bytes(jpeg_bytes(noise_rgb(8, 8, seed=3))[:12]),
    "text.jpg": lambda p: p.write_text("this is not an image"),
    "folder.jpg": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_broken_files_raise_one_data_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    BROKEN_FILES[name](path)
    with pytest.raises(DataError) as info:
        read_image(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert "unreadable image" in str(info.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(DataError, match="no such file"):
        image_size(tmp_path / "absent.png")


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1000  # beyond the limit: decoding would need > 1.2 GB
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    assert image_size(path) == (side, side)  # the header alone is harmless to read
    with pytest.raises(DataError, match="too large"):
        read_image(path)


# -- through the predictor and the command line -----------------------------------------------------
class RedChannelPeaks(torch.nn.Module):
    """A fixed 'model': every joint's heatmap is the crop's red channel pooled to stride 4."""

    output_stride = 4

    def __init__(self, num_keypoints: int):
        super().__init__()
        self.num_keypoints = num_keypoints

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x[:, :1], 4).repeat(1, self.num_keypoints, 1, 1)

    def forward_all(self, x):
        return [self.forward(x)]


def predictor_config(num_keypoints: int = 17, size: int = 64) -> dict:
    skeleton = get_skeleton("coco")
    return {"model": {"name": "red_channel_peaks", "kwargs": {"num_keypoints": num_keypoints}},
            "input_size": [size, size], "num_keypoints": num_keypoints, "skeleton": "coco",
            "flip_index": skeleton.flip_index.tolist(), "padding": 1.25,
            "codec": HeatmapCodec(input_size=(size, size), decode="argmax").to_config()}


GOOD_IMAGES = {
    "gray.png": lambda p: Image.new("L", (40, 30), 100).save(p),
    "rgba.png": lambda p: Image.new("RGBA", (30, 40), (200, 10, 10, 128)).save(p),
    "deep16.png": lambda p: Image.fromarray(np.full((24, 24), 40000, np.uint16)).save(p),
    "cmyk.jpg": lambda p: p.write_bytes(jpeg_bytes(Image.new("CMYK", (32, 32), (0, 200, 200, 0)))),
    "rotated.jpg": lambda p: p.write_bytes(with_orientation(marker_image(20, 30), 6)),
    "tiny.png": lambda p: Image.new("RGB", (1, 1), (255, 0, 0)).save(p),
    "wide.png": lambda p: Image.new("RGB", (12000, 200), (0, 0, 0)).save(p),
}
UNREADABLE_BY_HEADER = ("zero.jpg", "text.jpg", "header_cut.jpg")  # refused already by the folder reader
UNREADABLE_BY_PIXELS = ("truncated.jpg", "truncated.png")       # header fine, pixels broken


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd_images")
    for name, make in GOOD_IMAGES.items():
        make(folder / name)
    for name in UNREADABLE_BY_HEADER + UNREADABLE_BY_PIXELS:
        BROKEN_FILES[name](folder / name)
    return folder


def test_folder_reader_skips_header_failures_by_name(odd_folder, caplog):
    caplog.set_level("WARNING", logger="posekit")
    samples = list(read_image_folder(odd_folder))
    names = sorted(s.file_name for s in samples)
    assert names == sorted(list(GOOD_IMAGES) + list(UNREADABLE_BY_PIXELS))
    for name in UNREADABLE_BY_HEADER:
        assert name in caplog.text
    rotated = next(s for s in samples if s.file_name == "rotated.jpg")
    assert rotated.box.tolist() == [0, 0, 30, 20]  # the box is in upright pixels


def test_predictor_streams_the_odd_folder_and_reports_bad_files(odd_folder):
    predictor = Predictor(RedChannelPeaks(17), predictor_config(), flip_test=True, batch_size=4)
    errors = []
    results = list(predictor.predict_samples(read_image_folder(odd_folder), on_error=lambda s, e: errors.append((s, e))))
    assert sorted(s.file_name for s, _ in results) == sorted(GOOD_IMAGES)
    for sample, keypoints in results:
        assert keypoints.shape == (17, 3) and np.all(np.isfinite(keypoints)), sample.file_name
    assert sorted(s.file_name for s, _ in errors) == sorted(UNREADABLE_BY_PIXELS)
    for sample, error in errors:
        assert isinstance(error, DataError) and sample.file_name in str(error)


def test_predictor_handles_a_box_larger_than_a_tiny_image():
    predictor = Predictor(RedChannelPeaks(17), predictor_config(), flip_test=False)
    image = np.zeros((3, 2, 3), np.uint8)
    image[1, 1, 0] = 255
    keypoints = predictor.predict(image, [[-50, -50, 100, 100]])
    assert keypoints.shape == (1, 17, 3) and np.all(np.isfinite(keypoints))


def write_tiny_checkpoint(path: Path) -> None:
    from posekit.checkpoint import save_checkpoint
    from posekit.models import build_model

    torch.manual_seed(0)
    kwargs = {"num_keypoints": 17, "width": 0.25, "deconv_channels": 32}
    model = build_model("simplebaseline_r18", **kwargs)
    config = predictor_config() | {"model": {"name": "simplebaseline_r18", "kwargs": kwargs}}
    save_checkpoint(path, {"model": model.state_dict(), "config": config})


def test_cli_predict_on_the_odd_folder_finishes_and_names_bad_files(odd_folder, tmp_path):
    checkpoint = tmp_path / "tiny.pt"
    write_tiny_checkpoint(checkpoint)
    out = tmp_path / "predictions.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "posekit.cli", "predict", str(odd_folder), "--checkpoint",
                          str(checkpoint), "--out", str(out), "--no-flip", "--detector", "none"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    records = json.loads(out.read_text())
    assert sorted(r["file_name"] for r in records) == sorted(GOOD_IMAGES)
    assert all(len(r["keypoints"]) == 17 for r in records)
    for name in UNREADABLE_BY_HEADER + UNREADABLE_BY_PIXELS:
        assert name in run.stderr, name
    assert f"{len(UNREADABLE_BY_PIXELS)} images skipped" in run.stdout


def test_predictor_skips_a_sample_with_a_bad_box_by_name(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    good = Sample(str(tmp_path / "ok.png"), np.array([0, 0, 10, 10], np.float32), np.zeros((17, 3), np.float32),
                  "coco", file_name="ok.png")
    bad = Sample(str(tmp_path / "ok.png"), np.array([0, 0, np.inf, 10], np.float32), np.zeros((17, 3), np.float32),
                 "coco", file_name="bad_box.png")
    predictor = Predictor(RedChannelPeaks(17), predictor_config(), flip_test=False)
    errors = []
    results = list(predictor.predict_samples([bad, good], on_error=lambda s, e: errors.append(s.file_name)))
    assert [s.file_name for s, _ in results] == ["ok.png"] and errors == ["bad_box.png"]
