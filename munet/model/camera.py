"""The network's cameras: normalised image coordinates, weak → full perspective.

Conventions: the camera frame and intrinsics of :mod:`munet.geometry.projection` (OpenCV axes,
metres; ``K`` ``(B, 3, 3)`` in pixels of the ``S × S`` square crop, pixel centres at integer
coordinates), and

- *normalised image coordinates* map the crop to ``[-1, 1]²`` (``-1`` = left/top edge, ``+1`` =
  right/bottom edge), exactly the convention of ``F.grid_sample(..., align_corners=False)``:
  ``n = (2 u + 1) / S - 1``.

Weak perspective. The network predicts ``(s, t_x, t_y)`` so that a root-relative point ``X``
projects to ``n = s X_xy + t`` in normalised coordinates. A pinhole camera with focal lengths
``f_x, f_y`` and principal point ``(c_x, c_y)`` looking at a body whose root is at ``T = (T_x, T_y,
T_z)`` gives, to first order in ``X / T_z``::

    n_x = 2 (f_x (T_x + X_x) / T_z + c_x) / S + 1 / S - 1
        ≈ (2 f_x / (S T_z)) X_x + 2 (f_x T_x / T_z + c_x) / S + 1 / S - 1

Matching both terms (using ``f_x`` for the scale) yields the translation :func:`weak_to_perspective`
returns::

    T_z = 2 f_x / (S s)
    T_x = (t_x + 1 - (2 c_x + 1) / S) S T_z / (2 f_x) = (t_x + 1 - (2 c_x + 1) / S) / s
    T_y = (t_y + 1 - (2 c_y + 1) / S) S T_z / (2 f_y)
"""

from __future__ import annotations

import torch

from munet.geometry import MIN_DEPTH


def _check_intrinsics(K: torch.Tensor, batch: int) -> None:
    if K.shape != (batch, 3, 3):
        raise ValueError(f"K must have shape ({batch}, 3, 3) (one intrinsics matrix per sample), got {tuple(K.shape)}")


def pixels_to_normalized(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` → normalised image coordinates in ``[-1, 1]`` (see module doc)."""
    return (2.0 * pixels + 1.0) / image_size - 1.0


def pixels_to_normalized_matrix(image_size: int) -> torch.Tensor:
    """:func:`pixels_to_normalized` as a ``(3, 3)`` float64 map of homogeneous pixels (for
    composing with other pixel maps, e.g. image warps through ``F.affine_grid``)."""
    scale = 2.0 / image_size
    offset = 1.0 / image_size - 1.0
    return torch.tensor([[scale, 0.0, offset], [0.0, scale, offset], [0.0, 0.0, 1.0]], dtype=torch.float64)


def weak_to_perspective(weak: torch.Tensor, K: torch.Tensor, image_size: int) -> torch.Tensor:
    """Translation of the root that makes a pinhole camera match a weak-perspective one.

    Args:
        weak: ``(B, 3)`` weak-perspective camera ``(s, t_x, t_y)`` in normalised image
            coordinates per metre (``s > 0``).
        K: ``(B, 3, 3)`` intrinsics, pixels of the ``image_size`` crop.
        image_size: ``S``, the side of the square crop in pixels.

    Returns:
        ``(B, 3)`` camera-frame translation of the root, metres (formula in the module doc).
    """
    if weak.dim() != 2 or weak.shape[1] != 3:
        raise ValueError(f"weak camera must have shape (B, 3) as (s, tx, ty), got {tuple(weak.shape)}")
    _check_intrinsics(K, weak.shape[0])
    scale, shift = weak[:, 0], weak[:, 1:]
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=1)
    centre = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1)
    depth = 2.0 * focal[:, 0] / (image_size * scale)
    offset = shift + 1.0 - (2.0 * centre + 1.0) / image_size
    planar = offset * image_size * depth[:, None] / (2.0 * focal)
    return torch.cat([planar, depth[:, None]], dim=1)


def perspective_to_weak(translation: torch.Tensor, K: torch.Tensor, image_size: int) -> torch.Tensor:
    """The weak-perspective camera ``(B, 3)`` whose :func:`weak_to_perspective` is ``translation``
    ``(B, 3)`` (camera-frame root, metres, ``T_z > 0``); ``K`` ``(B, 3, 3)`` in crop pixels."""
    if translation.dim() != 2 or translation.shape[1] != 3:
        raise ValueError(f"translation must have shape (B, 3), got {tuple(translation.shape)}")
    _check_intrinsics(K, translation.shape[0])
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=1)
    centre = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1)
    depth = translation[:, 2:].clamp_min(MIN_DEPTH)
    scale = 2.0 * focal[:, :1] / (image_size * depth)
    shift = translation[:, :2] * 2.0 * focal / (image_size * depth) - 1.0 + (2.0 * centre + 1.0) / image_size
    return torch.cat([scale, shift], dim=1)
