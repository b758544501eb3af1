"""Pinhole projection of camera-frame points to pixels.

Conventions (shared by the whole project):

- camera frame = OpenCV: x right, y down, z forward, metres;
- ``K`` ``(3, 3)`` intrinsics in pixels, last row ``(0, 0, 1)``; pixel centres at integer
  coordinates (the top-left pixel covers ``[-0.5, 0.5]²``), so a point on the optical axis lands
  on ``(c_x, c_y)``.
"""

from __future__ import annotations

import torch

from munet.geometry._arrays import ArrayOrTensor, as_tensor, like

MIN_DEPTH = 1e-3
"""Depths (metres) are clamped to at least this before dividing, so projection never gives inf."""


def project(points: ArrayOrTensor, K: ArrayOrTensor) -> ArrayOrTensor:
    """Pixel coordinates of camera-frame points: ``u = f_x x / z + s y / z + c_x``,
    ``v = f_y y / z + c_y``.

    Differentiable. Depths are clamped to :data:`MIN_DEPTH` (a point at or behind the camera plane
    projects far off the image instead of to inf or NaN), so check ``z > 0`` first where such a
    point would be a bug. NumPy arrays are projected in float64 and give a NumPy array.

    Args:
        points: ``(..., N, 3)`` camera-frame points (OpenCV axes), metres.
        K: ``(..., 3, 3)`` intrinsics in pixels, one per point set (the leading dimensions of
            ``points``), e.g. ``(B, N, 3)`` with ``(B, 3, 3)`` or ``(N, 3)`` with ``(3, 3)``.

    Returns:
        ``(..., N, 2)`` pixel coordinates ``(u, v)``.

    Raises:
        ValueError: the shapes do not match.
    """
    points_t = as_tensor(points, torch.float64)
    K_t = as_tensor(K, torch.float64, points_t.device)
    if points_t.dim() < 2 or points_t.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points_t.shape)}")
    batch = tuple(points_t.shape[:-2])
    if tuple(K_t.shape) != (*batch, 3, 3):
        raise ValueError(
            f"K must have shape {(*batch, 3, 3)} (one intrinsics matrix per point set), got {tuple(K_t.shape)}"
        )
    depth = points_t[..., 2:].clamp_min(MIN_DEPTH)
    normalized = points_t[..., None, :2] / depth[..., None]  # (..., N, 1, 2)
    # K's first two rows applied by broadcasting: faster than a skinny batched matmul on CPU.
    pixels = (normalized * K_t[..., None, :2, :2]).sum(dim=-1) + K_t[..., None, :2, 2]
    return like(pixels, points)
