"""Exact nearest neighbours between batched point sets (no gradient: indices only).

Losses gather the neighbours' coordinates with these indices, so their gradients are exact. On the
CPU a k-d tree per sample (scipy) is about five times faster than PyTorch3D's ``knn_points``
(measured: 8 × 4,910 × 2,048 points, 0.25 s against 1.3 s); on a GPU ``knn_points`` is used.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


@torch.no_grad()
def nearest_indices(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of ``points`` ``(B, M, 3)`` for each of ``query`` ``(B, N, 3)``.

    Non-finite coordinates are searched as zeros, so a NaN prediction gives some index (and a
    NaN loss, which the optimiser step skips) instead of an error.

    Returns:
        ``(B, N)`` long tensor on ``query``'s device.
    """
    if query.dim() != 3 or points.dim() != 3 or query.shape[0] != points.shape[0]:
        raise ValueError(
            f"nearest_indices expects (B, N, 3) and (B, M, 3) with one batch size, got "
            f"{tuple(query.shape)} and {tuple(points.shape)}"
        )
    query, points = (torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0) for x in (query, points))
    if query.is_cuda:
        from pytorch3d.ops import knn_points

        return knn_points(query, points, K=1).idx[..., 0]
    found = [cKDTree(p.numpy()).query(q.numpy())[1] for q, p in zip(query.cpu(), points.cpu())]
    return torch.from_numpy(np.stack(found)).to(torch.long)


def gather_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points`` ``(B, M, C)`` picked by ``index`` ``(B, N)`` → ``(B, N, C)`` (differentiable)."""
    return torch.gather(points, 1, index[..., None].expand(-1, -1, points.shape[-1]))
