"""Reading and writing images: any band count and bit depth in, clear errors naming the file.

Reading refuses, before decoding, an image over the pixel limit; writing is atomic.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from earth_lib.errors import DEFAULT_MAX_PIXELS, BadImageError
from earth_lib.io import atomic_write_bytes

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
TIFF_EXTENSIONS = {".tif", ".tiff"}


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (any depth), by extension, hidden files left out."""
    return sorted(f for f in Path(root).rglob("*") if f.is_file() and not f.name.startswith(".")
                  and f.suffix.lower() in IMAGE_EXTENSIONS)


def image_suffix(bands: int) -> str:
    """File type used for processed images: PNG for gray/RGB, TIFF for other band counts."""
    return ".png" if bands in (1, 3) else ".tif"


def atomic_write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 (H, W[, C]) image atomically; PNG for 1 or 3 bands, TIFF otherwise."""
    path = Path(path)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if path.suffix.lower() in TIFF_EXTENSIONS:
        buf = io.BytesIO()
        tifffile.imwrite(buf, image, photometric="minisblack" if image.ndim == 2 or
                         image.shape[-1] != 3 else "rgb", planarconfig="contig")
        data = buf.getvalue()
    else:  # OpenCV's encoder: the same pixels as Pillow's, about 4 times faster
        ok, encoded = cv2.imencode(".png", image if image.ndim == 2 else
                                   cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{path}: OpenCV could not encode a {image.shape} {image.dtype} PNG")
        data = encoded.tobytes()
    atomic_write_bytes(path, data)


def _to_hwc(arr: np.ndarray, path: Path, tiff: bool) -> np.ndarray:
    arr = np.asarray(arr)
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim == 3:
        # Band-first rasters (GeoTIFF written band-sequential): move bands last. Only TIFF
        # stores bands first; a one-row RGB PNG (1, W, 3) stays as it is.
        if tiff and arr.shape[0] < min(arr.shape[1], arr.shape[2]) \
                and arr.shape[-1] > arr.shape[0]:
            arr = np.moveaxis(arr, 0, -1)
        return arr
    raise BadImageError(f"{path}: unsupported image layout with shape {arr.shape}")


def _check_pixels(path: Path, shape: tuple[int, ...], max_pixels: int) -> None:
    """Refuse, before decoding, an image larger than ``max_pixels`` (height x width)."""
    dims = sorted(int(v) for v in shape)[-2:]  # the two largest: height and width
    pixels = int(np.prod(dims)) if dims else 0
    if pixels > max_pixels:
        raise BadImageError(f"{path}: {pixels:,} pixels ({' x '.join(map(str, shape))}) is over "
                            f"the limit of {max_pixels:,} pixels (data.max_image_pixels); "
                            "raise the limit if the image is genuine.")


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image as (H, W, bands), keeping its dtype (uint8, uint16, float...).

    JPEG/PNG/BMP go through Pillow (alpha dropped, palettes expanded); TIFF/GeoTIFF
    through tifffile, so that any number of bands and 16-bit data are kept. An image of
    more than ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) is refused before it is
    decoded, whatever its format.

    Raises:
        BadImageError: the file is empty, truncated, corrupt, too large or not an image.
    """
    path = Path(path)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    tiff = path.suffix.lower() in TIFF_EXTENSIONS
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes)")
        if tiff:
            with tifffile.TiffFile(path) as tf:
                _check_pixels(path, tf.series[0].shape, limit)
                arr = tf.asarray()
        else:
            with Image.open(path) as im:
                _check_pixels(path, (im.height, im.width), limit)
                im.load()
                if im.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info
                                    else "RGB")
                if im.mode in ("RGBA", "LA"):
                    im = im.convert(im.mode[:-1])
                if im.mode == "1":
                    im = im.convert("L")
                arr = np.array(im)
    except BadImageError:
        raise
    except Exception as err:  # Pillow and tifffile raise many types for bad files
        raise BadImageError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    if np.asarray(arr).size == 0:
        raise BadImageError(f"{path}: cannot read image (no pixel data; corrupt or truncated)")
    arr = _to_hwc(arr, path, tiff)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return arr
