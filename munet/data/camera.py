"""Cameras (perspective or orthographic) for rendering and for the sample schema.

Frames: the *world* is the body model's frame (Anny: Z up, front −Y, metres); the *camera* frame is
OpenCV's (x right, y down, z forward, metres). Intrinsics ``K`` are in pixels of a square ``S × S``
crop with OpenCV's pixel convention: pixel ``(i, j)`` has its centre at ``(u, v) = (j, i)``, so the
crop spans ``[-0.5, S - 0.5]`` in both axes.

A camera's ``projection`` says how ``K`` maps the camera frame to pixels
(:func:`munet.geometry.project`): ``"perspective"`` (a pinhole, ``u = f_x x / z + c_x``) or
``"orthographic"`` (``u = f_x x + c_x``, ``f`` in pixels per metre; points keep a nominal depth, the
camera's distance, so they stay in front of it). Records written before the field existed are
perspective.

:func:`sample_camera` places a camera around a person and chooses the crop so that the person fits
with a margin: the sampled quantities are the distance (perspective strength), elevation, yaw,
roll, an aim jitter (so the principal point is off the crop centre, as in real crops) and the
fraction of the crop the person fills. The focal length in crop pixels follows from those: it is
whatever makes the person fill that fraction of the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch3d.transforms import axis_angle_to_matrix

WORLD_UP = np.array([0.0, 0.0, 1.0])
"""The world's up direction (Anny: +Z)."""
WORLD_FRONT = np.array([0.0, -1.0, 0.0])
"""The direction the body faces in the world (Anny: −Y)."""


PERSPECTIVE = "perspective"
"""A pinhole camera: ``K`` divides by the depth."""
ORTHOGRAPHIC = "orthographic"
"""A parallel projection: ``K`` maps camera-frame metres to pixels without the division by depth
(the camera ICON-style renders of scans use)."""
PROJECTIONS = (PERSPECTIVE, ORTHOGRAPHIC)
"""The values of :attr:`Camera.projection`."""


@dataclass(frozen=True)
class Camera:
    """A camera: world → camera extrinsics, crop intrinsics and the kind of projection.

    Attributes:
        K: (3, 3) intrinsics in pixels of the ``image_size``² crop (OpenCV convention).
        R: (3, 3) rotation world → camera.
        t: (3,) translation world → camera, metres: ``x_cam = R @ x_world + t``.
        image_size: side S of the square crop, pixels.
        projection: one of :data:`PROJECTIONS` (module doc); ``"perspective"`` by default.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    image_size: int
    projection: str = PERSPECTIVE

    def __post_init__(self) -> None:
        for name, shape in (("K", (3, 3)), ("R", (3, 3)), ("t", (3,))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Camera.{name} must have shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)
        if int(self.image_size) <= 0:
            raise ValueError(f"Camera.image_size must be positive, got {self.image_size}")
        object.__setattr__(self, "image_size", int(self.image_size))
        if self.projection not in PROJECTIONS:
            raise ValueError(f"Camera.projection must be one of {PROJECTIONS}, got {self.projection!r}")

    @property
    def orthographic(self) -> bool:
        """Whether ``K`` is an orthographic camera's (the ``orthographic`` flag of
        :func:`munet.geometry.project`)."""
        return self.projection == ORTHOGRAPHIC

    @property
    def center(self) -> np.ndarray:
        """The optical centre in world coordinates, (3,) metres."""
        return -self.R.T @ self.t

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) world → (N, 3) camera frame, float64 metres."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def directions_to_camera(self, vectors: np.ndarray) -> np.ndarray:
        """Directions such as normals (N, 3) world → camera frame (rotation only)."""
        return np.asarray(vectors, dtype=np.float64) @ self.R.T

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``K``, ``R``, ``t`` as nested lists, ``image_size``, ``projection``)."""
        return {
            "K": self.K.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "image_size": self.image_size,
            "projection": self.projection,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Camera:
        """Inverse of :meth:`to_dict`; a dict without ``projection`` (written before it existed)
        is a perspective camera.

        Raises:
            ValueError: a key is missing (the message lists the expected keys) or ``projection``
                is not one of :data:`PROJECTIONS`.
        """
        missing = [k for k in ("K", "R", "t", "image_size") if k not in values]
        if missing:
            raise ValueError(f"camera dict lacks {missing}; expected keys K, R, t, image_size (and projection)")
        return cls(
            K=values["K"],
            R=values["R"],
            t=values["t"],
            image_size=values["image_size"],
            projection=values.get("projection", PERSPECTIVE),
        )


def resize_intrinsics(K: np.ndarray, scale: float) -> np.ndarray:
    """Intrinsics (..., 3, 3) of the same view on an image resized by ``scale`` (pixel-centre exact).

    With OpenCV's convention a point at pixel ``u`` moves to ``(u + 0.5) * scale - 0.5``. The map is
    affine in the pixels, so it holds for perspective and orthographic intrinsics alike.
    """
    resized = np.asarray(K, dtype=np.float64).copy()
    resized[..., :2, :] *= scale
    resized[..., :2, 2] += 0.5 * (scale - 1)
    return resized


def resize_pixels(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Pixel coordinates (..., 2) on an image resized by ``scale`` (see :func:`resize_intrinsics`)."""
    return (np.asarray(pixels, dtype=np.float64) + 0.5) * scale - 0.5


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = WORLD_UP) -> np.ndarray:
    """World → camera rotation (3, 3) of an OpenCV camera at ``eye`` looking at ``target``.

    The image's "down" (camera +y) is the world's ``-up`` made perpendicular to the view axis.

    Raises:
        ValueError: ``eye == target`` or the view axis is parallel to ``up``.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("look_at: eye and target coincide")
    forward /= norm
    down = -np.asarray(up, dtype=np.float64)
    down = down - forward * (down @ forward)
    if np.linalg.norm(down) < 1e-6:
        raise ValueError("look_at: the view axis is parallel to the up direction")
    down /= np.linalg.norm(down)
    right = np.cross(down, forward)
    return np.stack([right, down, forward])


def crop_intrinsics(
    points_cam: np.ndarray, image_size: int, fill: float, offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Intrinsics of the square crop that frames ``points_cam`` (N, 3).

    The crop is centred on the bounding box of the points' normalised projections ``(x/z, y/z)``,
    shifted by ``offset`` (fractions of the crop side), and sized so that the longer side of the
    box covers ``fill`` of the crop.

    Returns:
        K (3, 3) in pixels of the ``image_size``² crop.
    """
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    points_cam = np.asarray(points_cam, dtype=np.float64)
    if (points_cam[:, 2] <= 0).any():
        raise ValueError("crop_intrinsics: some points are behind the camera")
    normalised = points_cam[:, :2] / points_cam[:, 2:3]
    low, high = normalised.min(axis=0), normalised.max(axis=0)
    side = float((high - low).max()) / fill
    centre = (low + high) / 2 + np.asarray(offset) * side
    focal = image_size / side
    principal = image_size / 2 - 0.5 - centre * focal
    return np.array([[focal, 0.0, principal[0]], [0.0, focal, principal[1]], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CameraSettings:
    """Ranges of the random camera (angles in degrees, distances in metres).

    ``yaw`` 0 puts the camera in front of the body (on the world's front axis); ``elevation`` > 0
    puts it above the target, looking down. ``fill`` is the fraction of the crop side covered by
    the person's longer projected extent; ``offset`` the largest shift of the person from the crop
    centre, as a fraction of the crop side (kept small enough for the person to stay inside).
    ``aim_jitter`` shifts the point the optical axis goes through, in metres. ``min_margin`` is
    the smallest gap left between the person and the crop border, as a fraction of the side.
    """

    distance: tuple[float, float] = (2.0, 6.0)
    elevation: tuple[float, float] = (-10.0, 30.0)
    yaw: tuple[float, float] = (-180.0, 180.0)
    roll: tuple[float, float] = (-5.0, 5.0)
    aim_jitter: float = 0.15
    fill: tuple[float, float] = (0.75, 0.9)
    offset: float = 0.04
    min_margin: float = 0.02


def sample_camera(
    rng: np.random.Generator,
    points_world: np.ndarray,
    image_size: int,
    settings: CameraSettings = CameraSettings(),
) -> Camera:
    """A random camera that sees ``points_world`` (N, 3), e.g. the clothed mesh's vertices, whole.

    The camera aims at the centre of the points' bounding box (plus jitter) from a sampled distance,
    elevation, yaw and roll; the crop then frames the projected points (see
    :func:`crop_intrinsics`). Deterministic for a given ``rng`` state.
    """
    points_world = np.asarray(points_world, dtype=np.float64)
    if points_world.ndim != 2 or points_world.shape[1] != 3 or len(points_world) == 0:
        raise ValueError(f"points_world must have shape (N>0, 3), got {points_world.shape}")
    target = (points_world.min(axis=0) + points_world.max(axis=0)) / 2
    distance = rng.uniform(*settings.distance)
    elevation = np.radians(rng.uniform(*settings.elevation))
    yaw = np.radians(rng.uniform(*settings.yaw))
    roll = np.radians(rng.uniform(*settings.roll))
    aim = target + rng.uniform(-settings.aim_jitter, settings.aim_jitter, size=3)
    side = np.cross(WORLD_UP, WORLD_FRONT)
    horizontal = np.cos(yaw) * WORLD_FRONT + np.sin(yaw) * side
    eye = target + distance * (np.cos(elevation) * horizontal + np.sin(elevation) * WORLD_UP)
    # Roll about the optical axis (camera z), applied after the camera looks at the aim point.
    rolled = axis_angle_to_matrix(torch.tensor([0.0, 0.0, roll], dtype=torch.float64)).numpy()
    R = rolled @ look_at(eye, aim)
    t = -R @ eye
    points_cam = points_world @ R.T + t
    fill = rng.uniform(*settings.fill)
    max_offset = max(0.0, min(settings.offset, (1.0 - fill) / 2 - settings.min_margin))
    offset = tuple(rng.uniform(-max_offset, max_offset, size=2))
    K = crop_intrinsics(points_cam, image_size, fill, offset)
    return Camera(K=K, R=R, t=t, image_size=image_size)
