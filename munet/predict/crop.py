"""From an image file to the square person crop the network reads, with its intrinsics.

The image is read by :func:`munet.predict.images.read_image` (8-bit RGB, EXIF orientation applied,
large images downscaled, the person's mask when the file has one).

Where the person is (:func:`person_crop`), in order of precedence:

1. ``box``: the person's bounding box given by the user;
2. a mask: the image's alpha channel, or a companion file ``<stem>_mask.<ext>`` next to the image
   (non-zero = person), or, on request (``segment``), GrabCut's segmentation of the person
   (:mod:`munet.predict.segment`); the box is the mask's bounding box;
3. otherwise the whole image: a square as wide as the image's longer side, centred on it (the short
   side is padded with the image's mean colour).

A person box is made square around its centre and enlarged so that the person covers
:data:`PERSON_FILL` of the side, the framing of the training crops (see
:class:`munet.data.camera.CameraSettings`). No person detector is run: the detectors of well-kept
libraries (torchvision, ultralytics, MediaPipe) fetch their weights from model hubs at run time,
which this project never does, and OpenCV's built-in HOG pedestrian detector only finds upright,
full-length people and is not better than the fallback here. Give ``--box`` or a mask for photos
where the person is small.

Intrinsics: unless the focal length is given, it follows from a :data:`DEFAULT_FOV_DEGREES` field
of view across the longer side of the *original* image, with the principal point at its centre (a
typical phone or consumer camera); the crop's ``K`` is that camera translated to the crop and scaled
to its pixels. Boxes are in pixel-edge coordinates (pixel ``j`` spans ``[j, j + 1)``, like PIL and
most detectors); ``K`` follows the OpenCV pixel-centre convention of :mod:`munet.data.camera`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from munet.data.camera import CameraSettings, resize_intrinsics
from munet.predict.images import MAX_PIXELS, MAX_SIDE, ImageError, read_image
from munet.predict.segment import grabcut_mask, whole_image_box

DEFAULT_FOV_DEGREES = 55.0
"""Field of view across the longer side of the original image when no focal length is given."""
PERSON_FILL = float(np.mean(CameraSettings().fill))
"""Fraction of the crop side the person's longer box side covers (the training framing)."""


@dataclass(frozen=True)
class PersonCrop:
    """The square crop around the person, at the network's input size and at display size.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB, the network's input.
        display: ``(D, D, 3)`` uint8 RGB, the same crop at display size (for the overlay).
        K: ``(3, 3)`` intrinsics in pixels of the ``S × S`` crop.
        K_image: ``(3, 3)`` intrinsics in pixels of the original image.
        box: ``(left, top, right, bottom)`` of the crop in pixel-edge coordinates of the original
            image (may extend past the image: the outside is padding).
        source: how the box was chosen (``"box"``, ``"alpha channel"``, a mask file, ``"GrabCut"``,
            ``"whole image"``).
        original_size: ``(width, height)`` of the original image.
        mask: ``(D, D)`` bool person mask over :attr:`display`, when the image has one (alpha
            channel, mask file, or GrabCut on request), else ``None``.
        mask_source: where that mask came from, or ``None``.
    """

    image: np.ndarray
    display: np.ndarray
    K: np.ndarray
    K_image: np.ndarray
    box: tuple[float, float, float, float]
    source: str
    original_size: tuple[int, int]
    mask: np.ndarray | None = None
    mask_source: str | None = None


def square_around(box: tuple[float, float, float, float], fill: float = PERSON_FILL) -> tuple[float, float, float]:
    """The square ``(left, top, side)`` centred on ``box`` (left, top, right, bottom) whose side is
    the box's longer side divided by ``fill``.

    Raises:
        ValueError: an empty box (right ≤ left or bottom ≤ top) or ``fill`` outside (0, 1].
    """
    left, top, right, bottom = (float(v) for v in box)
    if right <= left or bottom <= top:
        raise ValueError(f"box (left, top, right, bottom) = {box} is empty: need right > left and bottom > top")
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    side = max(right - left, bottom - top) / fill
    return (left + right - side) / 2, (top + bottom - side) / 2, side


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box ``(left, top, right, bottom)`` (pixel edges) of the true pixels of ``mask`` (H, W)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise ValueError("the mask is empty")
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def crop_square(image: np.ndarray, left: int, top: int, side: int, size: int, fill: float | None = None) -> np.ndarray:
    """The ``side``² square of ``image`` (H, W, C) at integer ``(left, top)``, resized to ``size``².

    Parts of the square outside the image are filled with ``fill``, by default the image's mean
    colour. A one-channel image comes back as ``(size, size)``.
    """
    height, width = image.shape[:2]
    pads = (max(0, -top), max(0, top + side - height), max(0, -left), max(0, left + side - width))
    if any(pads):
        means = image.reshape(-1, image.shape[-1]).mean(axis=0)
        values = [float(v) for v in means] if fill is None else [fill] * image.shape[-1]
        image = cv2.copyMakeBorder(image, *pads, cv2.BORDER_CONSTANT, value=values)
    patch = image[top + pads[0] : top + pads[0] + side, left + pads[2] : left + pads[2] + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def image_intrinsics(
    width: int, height: int, focal: float | None = None, fov_degrees: float = DEFAULT_FOV_DEGREES
) -> np.ndarray:
    """Intrinsics ``(3, 3)`` of a ``width × height`` image, principal point at its centre.

    Args:
        focal: focal length in pixels; default: the one giving ``fov_degrees`` across the longer side.
    """
    if focal is None:
        focal = 0.5 * max(width, height) / math.tan(math.radians(fov_degrees) / 2)
    if not focal > 0:
        raise ValueError(f"the focal length must be positive, got {focal}")
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])


def crop_camera(K: np.ndarray, left: float, top: float, side: float, size: int) -> np.ndarray:
    """Intrinsics ``(3, 3)`` of the square crop ``(left, top, side)`` (pixel edges) of an image with
    intrinsics ``K``, resized to ``size``²."""
    shifted = np.asarray(K, dtype=np.float64).copy()
    shifted[0, 2] -= left
    shifted[1, 2] -= top
    return resize_intrinsics(shifted, size / side)


def person_crop(
    path: str | Path,
    size: int,
    display_size: int,
    box: tuple[float, float, float, float] | None = None,
    focal: float | None = None,
    max_side: int = MAX_SIDE,
    segment: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> PersonCrop:
    """Read ``path`` and crop the person (see the module docstring for how the box is chosen).

    Args:
        size: side S of the network input, pixels.
        display_size: side D of the display crop, pixels.
        box: the person's box ``(left, top, right, bottom)`` in pixels of the original image.
        focal: focal length in pixels of the original image (default: from the field of view).
        max_side: larger images are downscaled to this before cropping.
        segment: when the image has no mask, make one with GrabCut inside ``box`` (or the whole
            image less a margin; :mod:`munet.predict.segment`); the crop then frames that mask
            unless ``box`` is given.
        max_pixels: images (and mask files) of more pixels are refused before decoding.

    Raises:
        ImageError: unreadable or too large image, a box that misses the image, or a failed segmentation.
    """
    path = Path(path)
    loaded = read_image(path, max_side, max_pixels)
    width, height = loaded.original_size
    if box is not None and (box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0):
        raise ImageError(path, f"the box {tuple(box)} lies outside the {width}×{height} image")
    if segment and loaded.mask is None:
        around = whole_image_box(width, height) if box is None else box
        try:
            mask = grabcut_mask(loaded.rgb, tuple(v * loaded.scale for v in around))
        except ValueError as exc:
            raise ImageError(path, str(exc)) from None
        loaded = dataclasses.replace(loaded, mask=mask, mask_source="GrabCut")
    if box is not None:
        left, top, side = square_around(box)
        source = "box"
    elif loaded.mask is not None:
        left, top, side = square_around(tuple(v / loaded.scale for v in mask_box(loaded.mask)))
        source = loaded.mask_source
    else:
        side = float(max(width, height))
        left, top = (width - side) / 2, (height - side) / 2
        source = "whole image"
    # Crop on whole pixels of the working image; report that box in original pixels.
    work_left, work_top = round(left * loaded.scale), round(top * loaded.scale)
    work_side = max(1, round(side * loaded.scale))
    K_image = image_intrinsics(width, height, focal)
    K_work = resize_intrinsics(K_image, loaded.scale)
    return PersonCrop(
        image=crop_square(loaded.rgb, work_left, work_top, work_side, size),
        display=crop_square(loaded.rgb, work_left, work_top, work_side, display_size),
        K=crop_camera(K_work, work_left, work_top, work_side, size),
        K_image=K_image,
        box=tuple(v / loaded.scale for v in (work_left, work_top, work_left + work_side, work_top + work_side)),
        source=source,
        original_size=(width, height),
        mask=None
        if loaded.mask is None
        else crop_square(
            loaded.mask.astype(np.float32)[..., None], work_left, work_top, work_side, display_size, fill=0.0
        )
        >= 0.5,
        mask_source=loaded.mask_source,
    )
