import numpy as np
import pytest

from seqvpr.data.images import (
    bayer_mosaic,
    demosaic,
    load_undistortion_lut,
    read_image,
    read_rgb,
    resize_long_side,
    undistort,
    write_png,
)
from seqvpr.errors import SeqvprError


def test_gbrg_mosaic_layout():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    mosaic = bayer_mosaic(rgb, "gbrg")
    # Row 0: G B G B, row 1: R G R G.
    np.testing.assert_array_equal(mosaic[:2], [[20, 30, 20, 30], [10, 20, 10, 20]])
    np.testing.assert_array_equal(bayer_mosaic(rgb, "rggb")[:2], [[10, 20, 10, 20], [20, 30, 20, 30]])


@pytest.mark.parametrize("pattern", ["gbrg", "rggb", "grbg", "bggr"])
@pytest.mark.parametrize("colour", [(200, 30, 20), (20, 180, 40), (30, 40, 210), (90, 90, 90)])
def test_flat_colours_survive_opencv_demosaicing(pattern, colour):
    rgb = np.empty((16, 20, 3), np.uint8)
    rgb[:] = colour
    decoded = demosaic(bayer_mosaic(rgb, pattern), pattern)
    np.testing.assert_array_equal(decoded[2:-2, 2:-2], rgb[2:-2, 2:-2])


def test_bad_shapes_and_patterns():
    with pytest.raises(ValueError, match="even"):
        bayer_mosaic(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown Bayer pattern"):
        demosaic(np.zeros((4, 4), np.uint8), "rgbg")


def test_png_round_trip_rgb_and_mosaic(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    write_png(tmp_path / "a" / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a" / "rgb.png"), rgb)
    write_png(tmp_path / "m.png", rgb[..., 0])
    assert read_image(tmp_path / "m.png").shape == (6, 10)
    np.testing.assert_array_equal(read_rgb(tmp_path / "m.png")[..., 2], rgb[..., 0])
    assert not list(tmp_path.glob("**/*.tmp"))


def test_corrupt_and_missing_images_raise_naming_the_file(tmp_path):
    write_png(tmp_path / "good.png", np.zeros((8, 8), np.uint8))
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("truncated.png", "garbage.png", "empty.png"):
        with pytest.raises(ValueError, match=f"{name}: not a readable image"):
            read_image(tmp_path / name)
    with pytest.raises(SeqvprError, match="nothing.png"):
        read_image(tmp_path / "nothing.png")


def test_resize_long_side():
    assert resize_long_side(np.zeros((960, 1280, 3), np.uint8), 240).shape == (180, 240, 3)
    assert resize_long_side(np.zeros((1280, 960), np.uint8), 240).shape == (240, 180)
    image = np.zeros((180, 240, 3), np.uint8)
    assert resize_long_side(image, 240) is image


def test_undistortion_lut_in_sdk_layout(tmp_path):
    height, width = 6, 8
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    # Output pixel (r, c) samples source (r, c + 1): the image moves one pixel left.
    np.concatenate([(columns + 1).ravel(), rows.ravel()]).tofile(tmp_path / "lut.bin")
    lut = load_undistortion_lut(tmp_path / "lut.bin", (height, width))
    image = (np.arange(height * width, dtype=np.uint8).reshape(height, width) * 3)
    shifted = undistort(image, lut)
    np.testing.assert_array_equal(shifted[:, :-1], image[:, 1:])
    with pytest.raises(ValueError, match="expected 2 x 5 x 8"):
        load_undistortion_lut(tmp_path / "lut.bin", (5, 8))
