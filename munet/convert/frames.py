"""Frames of the original videos → the square person crops of the sample schema, with their
intrinsics, and the joint-index maps into COCO-17.

The crop is a square around the person (:func:`joint_box` or a data set's own box), cut from the
frame and resized to ``S × S`` with :func:`munet.predict.crop.crop_square` (the outside of the
frame is padded with its mean colour); its intrinsics come from the frame's by
:func:`munet.predict.crop.crop_camera`, so camera-frame points project onto the crop with
``K_crop``, pixel-centre convention (:mod:`munet.data.camera`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from munet.body.joints import COCO17_NAMES
from munet.data.camera import Camera
from munet.data.schema import BodyRecord, SampleRecord
from munet.predict.crop import PERSON_FILL, crop_camera, crop_square, square_around

JOINT_BOX_FILL = 0.75
"""Fraction of the crop side covered by the longer side of the box around the 2D joints (the
joints lie inside the silhouette, so the person itself covers a little more)."""
MIN_BOX_SIDE = 8.0
"""Person boxes whose longer side is below this (pixels of the frame) are skipped."""


def coco17_map(source_names: Sequence[str], aliases: dict[str, str] | None = None) -> np.ndarray:
    """For each COCO-17 joint, its index among ``source_names`` (``-1`` where the source has none).

    Args:
        source_names: a data set's joint names, in its order.
        aliases: ``{COCO name: source name}`` for joints named differently.
    """
    aliases = aliases or {}
    index = {name: i for i, name in enumerate(source_names)}
    return np.array([index.get(aliases.get(name, name), -1) for name in COCO17_NAMES], dtype=np.int64)


def to_coco17(joints: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joints ``(J, D)`` of a data set → ``(17, D)`` COCO-17 (zeros where absent) and the
    ``(17,)`` float32 validity (1 where :func:`coco17_map` found the joint)."""
    joints = np.asarray(joints, dtype=np.float64)
    out = np.zeros((len(mapping), joints.shape[-1]), dtype=np.float64)
    present = mapping >= 0
    out[present] = joints[mapping[present]]
    return out, present.astype(np.float32)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points ``(N, 3)`` (metres or mm, z > 0) → pixels ``(N, 2)`` through ``K``."""
    points = np.asarray(points, dtype=np.float64)
    homogeneous = points @ np.asarray(K, dtype=np.float64).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def joint_box(joints_2d: np.ndarray, valid: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(left, top, right, bottom)`` of the valid 2D joints ``(J, 2)``, pixels; ``None`` when
    fewer than two joints are valid or the box is degenerate."""
    points = np.asarray(joints_2d, dtype=np.float64)[np.asarray(valid) > 0]
    if len(points) < 2 or not np.isfinite(points).all():
        return None
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    if max(right - left, bottom - top) <= 0:
        return None
    return float(left), float(top), float(right), float(bottom)


@dataclass(frozen=True)
class Crop:
    """A square crop ``(left, top, side)`` in pixel-edge coordinates of the frame (integers)."""

    left: int
    top: int
    side: int

    def image(self, frame: np.ndarray, size: int) -> np.ndarray:
        """The crop of ``frame`` (H, W, 3) uint8 RGB resized to ``(size, size, 3)``."""
        return crop_square(frame, self.left, self.top, self.side, size)

    def intrinsics(self, K_frame: np.ndarray, size: int) -> np.ndarray:
        """``(3, 3)`` intrinsics of the ``size``² crop from those of the frame."""
        return crop_camera(K_frame, self.left, self.top, self.side, size)

    def pixels(self, points: np.ndarray, size: int) -> np.ndarray:
        """Frame pixels ``(N, 2)`` → pixels of the ``size``² crop (pixel-centre convention)."""
        scale = size / self.side
        shifted = np.asarray(points, dtype=np.float64) - [self.left, self.top]
        return (shifted + 0.5) * scale - 0.5

    def sample(
        self,
        key: str,
        frame: np.ndarray,
        K_frame: np.ndarray,
        size: int,
        body: BodyRecord,
        meta: dict[str, Any],
    ) -> SampleRecord:
        """A body data set's sample: this crop of ``frame`` at ``size``², its intrinsics, geometry in
        the camera frame (``R = I``, ``t = 0``), ``body``'s targets and no mask or clothed surface."""
        camera = Camera(K=self.intrinsics(K_frame, size), R=np.eye(3), t=np.zeros(3), image_size=size)
        return SampleRecord(
            key=key,
            image=self.image(frame, size),
            mask=None,
            camera=camera,
            body=body,
            cloth=None,
            garments=[],
            extra_meta=meta,
        )


def square_crop(box: tuple[float, float, float, float], fill: float = PERSON_FILL) -> Crop | None:
    """The integer square crop centred on ``box`` whose side is its longer side / ``fill``;
    ``None`` for a box smaller than :data:`MIN_BOX_SIDE`."""
    if max(box[2] - box[0], box[3] - box[1]) < MIN_BOX_SIDE:
        return None
    left, top, side = square_around(box, fill)
    return Crop(round(left), round(top), max(1, round(side)))


def centred_crop(centre: Sequence[float], side: float) -> Crop | None:
    """The integer square crop of side ``side`` centred on ``centre`` (x, y) pixels."""
    if not side >= MIN_BOX_SIDE:
        return None
    return Crop(round(centre[0] - side / 2), round(centre[1] - side / 2), max(1, round(side)))


def read_frame(path: Path) -> np.ndarray | None:
    """An image file as ``(H, W, 3)`` uint8 RGB; ``None`` when missing or undecodable."""
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def fit_translation(points: np.ndarray, pixels: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """The translation ``T`` (3,) that makes ``points + T`` project onto ``pixels`` through ``K``
    best (linear least squares on the cross-product equations; ``None`` with fewer than 3 joints or
    a solution behind the camera).

    Args:
        points: ``(J, 3)`` camera-oriented points relative to any origin (e.g. the pelvis), metres.
        pixels: ``(J, 2)`` their image positions, pixels of the image ``K`` belongs to.
        K: ``(3, 3)`` intrinsics.
    """
    points, pixels = np.asarray(points, np.float64), np.asarray(pixels, np.float64)
    if len(points) < 3:
        return None
    rays = np.c_[pixels, np.ones(len(pixels))] @ np.linalg.inv(np.asarray(K, np.float64)).T
    x, y = rays[:, 0], rays[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # (X + Tx) - x (Z + Tz) = 0 and (Y + Ty) - y (Z + Tz) = 0, for each joint.
    A = np.concatenate([np.c_[ones, zeros, -x], np.c_[zeros, ones, -y]])
    b = np.concatenate([x * points[:, 2] - points[:, 0], y * points[:, 2] - points[:, 1]])
    translation = np.linalg.lstsq(A, b, rcond=None)[0]
    if ((points[:, 2] + translation[2]) <= 0).any():
        return None
    return translation
