"""Projection of camera-frame points to pixels: pinhole (perspective) or orthographic.

Conventions (shared by the whole project):

- camera frame = OpenCV: x right, y down, z forward, metres;
- ``K`` ``(3, 3)`` intrinsics in pixels, last row ``(0, 0, 1)``; pixel centres at integer
  coordinates (the top-left pixel covers ``[-0.5, 0.5]²``), so a point on the optical axis lands
  on ``(c_x, c_y)``;
- a *perspective* camera divides by the depth: ``u = f_x x / z + s y / z + c_x``,
  ``v = f_y y / z + c_y``;
- an *orthographic* camera does not: ``u = f_x x + s y + c_x``, ``v = f_y y + c_y`` (``f`` in
  pixels per metre). Its points keep a nominal depth ``z > 0`` (the camera's distance), so both
  kinds share one camera frame and "in front of the camera" means the same for both.

A crop, resize or flip of the image is the same 2D affine map of ``K``'s first two rows for both
kinds, so every intrinsics update works on either.
"""

from __future__ import annotations

import torch

from munet.geometry._arrays import ArrayOrTensor, as_tensor, like

MIN_DEPTH = 1e-3
"""Depths (metres) are clamped to at least this before dividing, so projection never gives inf."""


def project(points: ArrayOrTensor, K: ArrayOrTensor, orthographic: bool | ArrayOrTensor | None = None) -> ArrayOrTensor:
    """Pixel coordinates of camera-frame points, perspective or orthographic (module doc).

    Differentiable. Perspective depths are clamped to :data:`MIN_DEPTH` (a point at or behind the
    camera plane projects far off the image instead of to inf or NaN), so check ``z > 0`` first
    where such a point would be a bug. NumPy arrays are projected in float64 and give a NumPy array.

    Args:
        points: ``(..., N, 3)`` camera-frame points (OpenCV axes), metres.
        K: ``(..., 3, 3)`` intrinsics in pixels, one per point set (the leading dimensions of
            ``points``), e.g. ``(B, N, 3)`` with ``(B, 3, 3)`` or ``(N, 3)`` with ``(3, 3)``.
        orthographic: which point sets are seen by an orthographic camera: one ``bool`` for all,
            or ``(...)`` per point set (bool, or numbers where nonzero means orthographic, e.g. the
            decoded batch's ``orthographic`` flag). ``None``/``False``: all perspective.

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
    if orthographic is not None and orthographic is not False:
        flag = orthographic_flag(orthographic, batch, points_t.device)
        depth = torch.where(flag[..., None, None], torch.ones_like(depth), depth)
    normalized = points_t[..., None, :2] / depth[..., None]  # (..., N, 1, 2)
    # K's first two rows applied by broadcasting: faster than a skinny batched matmul on CPU.
    pixels = (normalized * K_t[..., None, :2, :2]).sum(dim=-1) + K_t[..., None, :2, 2]
    return like(pixels, points)


def orthographic_flag(
    orthographic: bool | ArrayOrTensor | None, batch: tuple[int, ...], device: torch.device | None = None
) -> torch.Tensor:
    """``orthographic`` (see :func:`project`) as a bool tensor of shape ``batch``, the leading
    dimensions of the point sets (``None``: all perspective).

    Raises:
        ValueError: a per-set flag whose shape is not ``batch``.
    """
    if orthographic is None or isinstance(orthographic, bool):
        return torch.full(batch, bool(orthographic), dtype=torch.bool, device=device)
    flag = torch.as_tensor(orthographic, device=device)
    if tuple(flag.shape) != batch:
        raise ValueError(
            f"orthographic must be one bool or one flag per point set, shape {batch}, got {tuple(flag.shape)}"
        )
    return flag != 0
