"""Reading image files for prediction: 8-bit RGB upright, with the person's mask when the file has one.

Any image OpenCV decodes (JPEG, PNG, BMP, TIFF, WebP, …) in 8 or 16 bits, grey, RGB or RGBA is
read (:func:`read_image`); EXIF orientation is applied; images whose longer side exceeds
``max_side`` are downscaled first (the geometry is still reported in pixels of the original file).
An image of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`) is refused before its
pixels are decoded: its size is read from the file's header (a small file can hold a huge image).
An alpha channel that is not fully opaque is the person's mask, and the colour is composited over
grey; otherwise a companion file ``<stem>_mask.<ext>`` next to the image (non-zero = person) is
the mask (:func:`find_mask_file`, :func:`read_mask_file`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File suffixes taken from a folder (files given by name are tried whatever their suffix)."""
MASK_SUFFIX = "_mask"
"""A file ``<stem>_mask.<ext>`` beside an image is that image's person mask."""
MAX_SIDE = 4096
"""Images with a longer side above this (pixels) are downscaled to it when read."""
MAX_PIXELS = 120_000_000
"""Most pixels (width × height) of an image that is read, by default; larger ones are refused
before decoding (``munet predict --max-pixels``). 120 million admits the photos of 108-megapixel
phone cameras; decoding one takes about 0.4 GB."""
OPENCV_MAX_PIXELS = 1 << 30
"""OpenCV's own limit on the pixels of a decoded image: the highest ``max_pixels`` can be."""
_COMPOSITE_GREY = 128
"""Background behind transparent pixels of an RGBA image."""

# EXIF orientation tag (0x0112) → the operation that shows the image upright.
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (H, W[, C]) turned upright according to an EXIF orientation (1–8)."""
    turn = _ORIENTATIONS.get(orientation)
    return np.ascontiguousarray(pixels if turn is None else turn(pixels))


class ImageError(ValueError):
    """An input image that cannot be used.

    Attributes:
        path: the file at fault (the image, or its mask file).
        reason: what is wrong with it (the message is ``"<path>: <reason>"``).
    """

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class LoadedImage:
    """An image ready to crop.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB at working resolution (the file's, or downscaled).
        mask: ``(H, W)`` bool person mask, or ``None``.
        mask_source: where the mask came from (``"alpha channel"``, the mask file's name) or ``None``.
        original_size: ``(width, height)`` of the image in the file (after EXIF orientation).
        scale: working resolution / original resolution (1, or < 1 when downscaled).
    """

    rgb: np.ndarray
    mask: np.ndarray | None
    mask_source: str | None
    original_size: tuple[int, int]
    scale: float


def _to_uint8(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.float32) / 257.0) + 0.5).astype(np.uint8)
    if pixels.dtype in (np.float32, np.float64):
        return (np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ImageError(path, f"unsupported pixel type {pixels.dtype} (use 8- or 16-bit images)")


_PIL_LIMIT = threading.Lock()
"""Held while PIL's own decompression-bomb limit is lifted to read a header (see :func:`_header`)."""


def check_max_pixels(max_pixels: int) -> None:
    """Raise ``ValueError`` unless ``max_pixels`` is between 1 and :data:`OPENCV_MAX_PIXELS`."""
    if not 1 <= max_pixels <= OPENCV_MAX_PIXELS:
        raise ValueError(f"max_pixels must be between 1 and {OPENCV_MAX_PIXELS} (OpenCV's limit), got {max_pixels}")


def _refuse_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Raise :class:`ImageError` when a ``width × height`` image exceeds ``max_pixels``."""
    if width * height > max_pixels:
        raise ImageError(
            path,
            f"the image is {width}×{height} px ({width * height / 1e6:.1f} megapixels), more than the "
            f"limit of {max_pixels / 1e6:g} megapixels (max_pixels={max_pixels}); downscale the file "
            f"first, or raise the limit (munet predict --max-pixels, at most {OPENCV_MAX_PIXELS})",
        )


def _header(path: Path, max_pixels: int) -> tuple[bool, int]:
    """Check the size an image file's header states against ``max_pixels`` without decoding the
    pixels, and read its EXIF orientation.

    Returns:
        ``(size_checked, orientation)``: ``size_checked`` is False when PIL cannot parse the header
        (the caller checks the decoded size instead); ``orientation`` is 1 (upright) when absent.

    Raises:
        ImageError: the stated size exceeds ``max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError

    readable = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)
    # PIL refuses headers above 2 × Image.MAX_IMAGE_PIXELS before saying the size: lift that limit
    # for the header alone (our own, the caller's, is checked right after) and restore it.
    with _PIL_LIMIT:
        pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as image:
                width, height = image.size
                _refuse_size(path, width, height, max_pixels)
                try:  # PNG reads its EXIF by decoding the image: only once the size is known to be fine
                    return True, int(image.getexif().get(0x0112, 1))
                except readable:
                    return True, 1
        except readable:
            return False, 1
        finally:
            Image.MAX_IMAGE_PIXELS = pil_limit


def _decode(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, int]:
    """Decoded pixels (H, W[, C]) as stored, and the EXIF orientation; images above ``max_pixels``
    are refused (before decoding when the header can be read)."""
    try:
        size_checked, orientation = _header(path, max_pixels)
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    pixels = None
    if data:
        try:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise ImageError(path, f"cannot decode the image ({exc.err})") from exc
    if pixels is None or pixels.size == 0:
        raise ImageError(path, "not an image file (or a corrupt one): use JPEG, PNG, BMP, TIFF or WebP")
    if not size_checked:
        _refuse_size(path, pixels.shape[1], pixels.shape[0], max_pixels)
    return pixels, orientation


def _downscale(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def read_mask_file(path: str | Path, size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A person mask ``(H, W)`` bool from a grey or colour image file (any channel > 127 is the
    person); ``size`` is the expected ``(width, height)``.

    Raises:
        ImageError: unreadable, more than ``max_pixels`` pixels, another size than the image, or empty.
    """
    path = Path(path)
    pixels, orientation = _decode(path, max_pixels)
    pixels = _upright(_to_uint8(pixels, path), orientation)
    mask = (pixels > 127) if pixels.ndim == 2 else (pixels[..., :3] > 127).any(axis=-1)
    if mask.shape[::-1] != size:
        raise ImageError(path, f"mask is {mask.shape[1]}×{mask.shape[0]} px but its image is {size[0]}×{size[1]} px")
    if not mask.any():
        raise ImageError(path, "the mask is empty (no pixel above 127)")
    return mask


def find_mask_file(path: str | Path) -> Path | None:
    """The companion mask ``<stem>_mask.<ext>`` of image ``path``, if one exists."""
    path = Path(path)
    for suffix in IMAGE_SUFFIXES:
        for candidate in (suffix, suffix.upper()):
            mask = path.with_name(f"{path.stem}{MASK_SUFFIX}{candidate}")
            if mask.is_file():
                return mask
    return None


def read_image(path: str | Path, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image file as 8-bit RGB (plus its person mask, if it has one).

    Grey images become RGB; 16-bit and float images are scaled to 8 bits; an alpha channel that is
    not fully opaque becomes the mask (alpha ≥ 128) and the colour is composited over grey;
    otherwise a companion ``<stem>_mask.<ext>`` file is the mask. EXIF orientation is applied.
    An image whose longer side exceeds ``max_side`` pixels is downscaled to it (area filter).

    Raises:
        ImageError: the file cannot be read or decoded, has more than ``max_pixels`` pixels (checked
            before decoding), has an unsupported pixel format, is fully transparent, or its mask
            file does not fit.
    """
    path = Path(path)
    pixels, orientation = _decode(path, max_pixels)
    pixels = _to_uint8(pixels, path)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    if channels not in (1, 3, 4):
        raise ImageError(path, f"{channels} channels are not supported (use grey, RGB or RGBA)")
    pixels = _upright(pixels, orientation)
    if channels == 1:
        rgb = np.repeat(pixels, 3, axis=2)
    else:
        rgb = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_BGR2RGB)
    mask, mask_source = None, None
    if channels == 4 and (pixels[..., 3] < 255).any():
        alpha = pixels[..., 3:4].astype(np.float32) / 255.0
        if not (alpha >= 0.5).any():
            raise ImageError(path, "the image is fully transparent (its alpha channel shows nothing)")
        rgb = (rgb * alpha + _COMPOSITE_GREY * (1.0 - alpha) + 0.5).astype(np.uint8)
        mask, mask_source = alpha[..., 0] >= 0.5, "alpha channel"
    height, width = rgb.shape[:2]
    if mask is None and (mask_file := find_mask_file(path)) is not None:
        mask, mask_source = read_mask_file(mask_file, (width, height), max_pixels), mask_file.name
    scale = 1.0
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = _downscale(rgb, size)
        if mask is not None:
            mask = _downscale(mask.astype(np.float32), size) >= 0.5
    return LoadedImage(rgb=rgb, mask=mask, mask_source=mask_source, original_size=(width, height), scale=scale)
