"""The network's cameras: normalised image coordinates, weak → full camera (perspective or
orthographic).

Conventions: the camera frame, intrinsics and the two projections of
:mod:`munet.geometry.projection` (OpenCV axes, metres; ``K`` ``(B, 3, 3)`` in pixels of the
``S × S`` square crop, pixel centres at integer coordinates; a per-sample ``orthographic`` flag),
and

- *normalised image coordinates* map the crop to ``[-1, 1]²`` (``-1`` = left/top edge, ``+1`` =
  right/bottom edge), exactly the convention of ``F.grid_sample(..., align_corners=False)``:
  ``n = (2 u + 1) / S - 1``.

Weak perspective. The network predicts ``(s, t_x, t_y)`` so that a root-relative point ``X``
projects to ``n = s X_xy + t`` in normalised coordinates. A pinhole camera with focal lengths
``f_x, f_y`` and principal point ``(c_x, c_y)`` looking at a body whose root is at ``T = (T_x, T_y,
T_z)`` gives, to first order in ``X / T_z``::

    n_x = 2 (f_x (T_x + X_x) / T_z + c_x) / S + 1 / S - 1
        ≈ (2 f_x / (S T_z)) X_x + 2 (f_x T_x / T_z + c_x) / S + 1 / S - 1

Matching both terms (using ``f_x`` for the scale) yields the translation :func:`weak_to_translation`
returns for a perspective sample::

    T_z = 2 f_x / (S s)
    T_x = (t_x + 1 - (2 c_x + 1) / S) S T_z / (2 f_x) = (t_x + 1 - (2 c_x + 1) / S) / s
    T_y = (t_y + 1 - (2 c_y + 1) / S) S T_z / (2 f_y)

Orthographic. ``n_x = (2 f_x / S) X_x + 2 (f_x T_x + c_x) / S + 1 / S - 1`` exactly, whatever the
depth: the scale is fixed by ``K`` (``s = 2 f_x / S``) and cannot tell the distance. The predicted
scale is therefore ignored for an orthographic sample (it gets no gradient from it; the body's
size in the image comes from the body itself), ``T_x, T_y`` follow from ``(t_x, t_y)`` by the
formulas above with ``T_z`` replaced by 1::

    T_x = (t_x + 1 - (2 c_x + 1) / S) S / (2 f_x),   T_y = (t_y + 1 - (2 c_y + 1) / S) S / (2 f_y)

and ``T_z`` is the nominal depth :data:`ORTHOGRAPHIC_DEPTH` (it only keeps the body in front of
the camera; the losses and metrics compare root-relative 3D shapes and 2D projections, neither of
which sees it).
"""

from __future__ import annotations

import torch

from munet.geometry import MIN_DEPTH, orthographic_flag

ORTHOGRAPHIC_DEPTH = 10.0
"""Nominal camera-frame depth (metres) of the root of a body seen by an orthographic camera: the
``T_z`` of :func:`weak_to_translation` (the distance of the scan converters' cameras for a 1.8 m
person)."""


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


def weak_to_translation(
    weak: torch.Tensor, K: torch.Tensor, image_size: int, orthographic: torch.Tensor | bool | None = None
) -> torch.Tensor:
    """Translation of the root that makes the sample's camera match a weak-perspective one.

    Args:
        weak: ``(B, 3)`` weak-perspective camera ``(s, t_x, t_y)`` in normalised image
            coordinates per metre (``s > 0``).
        K: ``(B, 3, 3)`` intrinsics, pixels of the ``image_size`` crop.
        image_size: ``S``, the side of the square crop in pixels.
        orthographic: ``(B,)`` flag (nonzero: orthographic ``K``) or one bool; ``None``: all
            perspective.

    Returns:
        ``(B, 3)`` camera-frame translation of the root, metres (formulas in the module doc: an
        orthographic sample ignores ``s`` and sits at :data:`ORTHOGRAPHIC_DEPTH`).
    """
    if weak.dim() != 2 or weak.shape[1] != 3:
        raise ValueError(f"weak camera must have shape (B, 3) as (s, tx, ty), got {tuple(weak.shape)}")
    _check_intrinsics(K, weak.shape[0])
    flat = orthographic_flag(orthographic, (weak.shape[0],), weak.device)
    scale, shift = weak[:, 0], weak[:, 1:]
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=1)
    centre = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1)
    depth = 2.0 * focal[:, 0] / (image_size * scale)
    planar_depth = torch.where(flat, torch.ones_like(depth), depth)
    offset = shift + 1.0 - (2.0 * centre + 1.0) / image_size
    planar = offset * image_size * planar_depth[:, None] / (2.0 * focal)
    depth = torch.where(flat, torch.full_like(depth, ORTHOGRAPHIC_DEPTH), depth)
    return torch.cat([planar, depth[:, None]], dim=1)


def translation_to_weak(
    translation: torch.Tensor, K: torch.Tensor, image_size: int, orthographic: torch.Tensor | bool | None = None
) -> torch.Tensor:
    """The weak-perspective camera ``(B, 3)`` whose :func:`weak_to_translation` is ``translation``
    ``(B, 3)`` (camera-frame root, metres, ``T_z > 0``); ``K`` ``(B, 3, 3)`` in crop pixels;
    ``orthographic`` as there (an orthographic sample gets the scale of its ``K``, ``2 f_x / S``,
    and its ``T_z`` is not read)."""
    if translation.dim() != 2 or translation.shape[1] != 3:
        raise ValueError(f"translation must have shape (B, 3), got {tuple(translation.shape)}")
    _check_intrinsics(K, translation.shape[0])
    flat = orthographic_flag(orthographic, (translation.shape[0],), translation.device)
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=1)
    centre = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1)
    depth = translation[:, 2:].clamp_min(MIN_DEPTH)
    depth = torch.where(flat[:, None], torch.ones_like(depth), depth)
    scale = 2.0 * focal[:, :1] / (image_size * depth)
    shift = translation[:, :2] * 2.0 * focal / (image_size * depth) - 1.0 + (2.0 * centre + 1.0) / image_size
    return torch.cat([scale, shift], dim=1)
