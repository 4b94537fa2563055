"""Image IO: Bayer mosaics, PNG reading/writing, resizing, undistortion.

OpenCV is imported inside the functions (``import seqvpr`` must not import it).
Arrays are ``uint8``; colour images are RGB, shape (H, W, 3); mosaics are (H, W).

Bayer pattern names follow the physical 2x2 tile starting at pixel (0, 0): RobotCar's
stereo camera is **GBRG** (row 0: G B G B ..., row 1: R G R G ...), decoded by OpenCV's
``COLOR_BayerGR2RGB`` (OpenCV names a pattern after the tile starting at (1, 1); its
newer alias is ``COLOR_BayerGBRG2RGB``); RobotCar's mono cameras are RGGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seqvpr.data.tables import atomic_write_bytes
from seqvpr.errors import SeqvprError

__all__ = [
    "BAYER_PATTERNS",
    "bayer_mosaic",
    "demosaic",
    "read_image",
    "read_rgb",
    "write_png",
    "resize_long_side",
    "load_undistortion_lut",
    "undistort",
]

# Offsets (row, column) of R, G (first of the two), B in the 2x2 tile.
BAYER_PATTERNS = {
    "gbrg": {"r": (1, 0), "g": ((0, 0), (1, 1)), "b": (0, 1)},
    "rggb": {"r": (0, 0), "g": ((0, 1), (1, 0)), "b": (1, 1)},
    "grbg": {"r": (0, 1), "g": ((0, 0), (1, 1)), "b": (1, 0)},
    "bggr": {"r": (1, 1), "g": ((0, 1), (1, 0)), "b": (0, 0)},
}
# OpenCV code names for each physical pattern (see module docstring).
_OPENCV_CODE = {"gbrg": "COLOR_BayerGR2RGB", "rggb": "COLOR_BayerBG2RGB",
                "grbg": "COLOR_BayerGB2RGB", "bggr": "COLOR_BayerRG2RGB"}


def _pattern(name: str) -> dict:
    key = name.lower()
    if key not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {name!r}; expected one of {sorted(BAYER_PATTERNS)}")
    return BAYER_PATTERNS[key]


def bayer_mosaic(rgb: np.ndarray, pattern: str = "gbrg") -> np.ndarray:
    """Sample an RGB image the way a colour-filter-array sensor would.

    Args:
        rgb: shape (H, W, 3) uint8, H and W even.
        pattern: physical 2x2 tile, e.g. ``gbrg`` (RobotCar stereo).

    Returns:
        the raw mosaic, shape (H, W) uint8.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
        raise ValueError(f"expected an RGB image (H, W, 3) with even H and W, got {rgb.shape}")
    tile = _pattern(pattern)
    mosaic = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    (rr, rc), (br, bc) = tile["r"], tile["b"]
    mosaic[rr::2, rc::2] = rgb[rr::2, rc::2, 0]
    mosaic[br::2, bc::2] = rgb[br::2, bc::2, 2]
    for gr, gc in tile["g"]:
        mosaic[gr::2, gc::2] = rgb[gr::2, gc::2, 1]
    return mosaic


def demosaic(mosaic: np.ndarray, pattern: str = "gbrg") -> np.ndarray:
    """Demosaic a raw Bayer image with OpenCV (bilinear), returning RGB (H, W, 3) uint8."""
    import cv2

    _pattern(pattern)
    if mosaic.ndim != 2:
        raise ValueError(f"expected a single-channel Bayer mosaic (H, W), got shape {mosaic.shape}")
    return cv2.cvtColor(mosaic, getattr(cv2, _OPENCV_CODE[pattern.lower()]))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as stored (mosaic or colour); colour comes back as RGB.

    Raises:
        SeqvprError: the file does not exist or is not a readable 8-bit image (corrupt,
            truncated or empty); names the file.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SeqvprError(f"{path}: not a readable image (corrupt, truncated or empty file)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:
        raise SeqvprError(f"{path}: expected 8-bit pixels, got {image.dtype}")
    return image


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image (H, W, 3) uint8; grey images are replicated to three channels."""
    image = read_image(path)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image


def write_png(path: str | os.PathLike, image: np.ndarray, compression: int = 1) -> None:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8 image as PNG, atomically.

    Args:
        compression: zlib level 0..9 (1 is fast and still compact for these images).
    """
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the image, shape {image.shape}")
    atomic_write_bytes(path, encoded.tobytes())


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that the longer side is ``long_side`` pixels, keeping the aspect ratio.

    Uses area interpolation (the right filter for shrinking); returns the input
    unchanged when it already has that size.
    """
    import cv2

    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def load_undistortion_lut(path: str | os.PathLike, image_shape: tuple[int, int]) -> np.ndarray:
    """Load an Oxford RobotCar SDK undistortion lookup table (``*_distortion_lut.bin``).

    The SDK file holds float64 values, first all x (column) source coordinates, then all
    y (row) source coordinates, one pair per output pixel in row-major order. The user
    supplies it from their own SDK copy (it is not redistributable).

    Args:
        path: the ``.bin`` file.
        image_shape: (H, W) of the raw images it belongs to.

    Returns:
        maps, shape (2, H, W) float32: source x and source y for each output pixel.
    """
    path = Path(path)
    values = np.fromfile(path, dtype=np.float64)
    height, width = image_shape
    if values.size != 2 * height * width:
        raise SeqvprError(
            f"{path}: {values.size} values, expected 2 x {height} x {width} = "
            f"{2 * height * width} for images of {width}x{height}"
        )
    return values.reshape(2, height, width).astype(np.float32)


def undistort(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Undistort an image with a lookup table from :func:`load_undistortion_lut` (bilinear)."""
    import cv2

    if image.shape[:2] != lut.shape[1:]:
        raise ValueError(f"image is {image.shape[:2]} but the lookup table is for {lut.shape[1:]}")
    return cv2.remap(image, lut[0], lut[1], interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)
