"""Image-space alignment: how well a predicted mesh, drawn through the camera, covers the person."""

from __future__ import annotations

import numpy as np

from munet.geometry import project


def fraction_on_mask(points: np.ndarray, K: np.ndarray, mask: np.ndarray, orthographic: bool = False) -> float:
    """Fraction of camera-frame points ``(N, 3)`` (metres) that project through intrinsics ``K``
    ``(3, 3)`` (an orthographic camera's when ``orthographic``, see :func:`munet.geometry.project`)
    onto a true pixel of ``mask`` ``(H, W)``; 1 is best.

    A point projects to the pixel whose centre is nearest (pixel centres at integer coordinates).
    Points outside the image or at/behind the camera plane count as off the mask.

    Raises:
        ValueError: wrong shapes.
    """
    points, K, mask = np.asarray(points, np.float64), np.asarray(K, np.float64), np.asarray(mask, bool)
    if points.ndim != 2 or points.shape[1] != 3 or K.shape != (3, 3) or mask.ndim != 2:
        raise ValueError(f"expected points (N, 3), K (3, 3), mask (H, W); got {points.shape}, {K.shape}, {mask.shape}")
    front = points[:, 2] > 1e-6
    cols, rows = np.round(project(points[front], K, orthographic)).astype(np.int64).T
    inside = (cols >= 0) & (cols < mask.shape[1]) & (rows >= 0) & (rows < mask.shape[0])
    hits = np.count_nonzero(mask[rows[inside], cols[inside]])
    return hits / max(len(points), 1)
