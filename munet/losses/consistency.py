"""Body/cloth consistency losses: the body lies inside the clothes, and clothes stay close to it."""

from __future__ import annotations

import torch

from munet.losses.nearest import gather_points, nearest_indices


def inside_loss(body_points: torch.Tensor, cloth_vertices: torch.Tensor, cloth_normals: torch.Tensor) -> torch.Tensor:
    """Mean penetration of body points through the clothed surface, metres.

    A body point ``b`` is outside when it lies in front of the tangent plane of its nearest cloth
    vertex ``c`` (outward unit normal ``n``): the penalty is ``max(0, (b - c) · n)``, averaged
    over all body points (inside points count as 0).

    Args:
        body_points: ``(B, P, 3)`` body vertices.
        cloth_vertices: ``(B, V, 3)``; cloth_normals: ``(B, V, 3)`` their outward unit normals.
    """
    nearest = nearest_indices(body_points, cloth_vertices)
    offset = body_points - gather_points(cloth_vertices, nearest)
    signed = (offset * gather_points(cloth_normals, nearest)).sum(dim=-1)
    return torch.relu(signed).mean()


def tight_loss(offsets: torch.Tensor) -> torch.Tensor:
    """Mean squared length of the body → cloth displacements ``(B, V, 3)``, m²: most of the
    clothed surface is tight garment, so large offsets must be paid for by the data terms."""
    return offsets.square().sum(dim=-1).mean()
