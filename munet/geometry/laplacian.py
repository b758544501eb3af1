"""The uniform (graph) Laplacian of a per-vertex field.

PyTorch3D's ``ops.laplacian`` builds the same operator, negated (``mean - f``), as a float32 sparse
``(V, V)`` matrix of the open neighbourhood only; here it is applied directly to a batched field
of any dtype, and optionally over the closed one-ring.
"""

from __future__ import annotations

import torch


def uniform_laplacian(field: torch.Tensor, edges: torch.Tensor, closed: bool = False) -> torch.Tensor:
    """``L(f)_i = f_i - mean_{j ∈ N(i)} f_j``: each vertex's value minus the mean of its neighbours'.

    Zero on a constant field, and on a field linear along a path graph's interior. With ``closed``
    the mean runs over the closed one-ring ``N(i) ∪ {i}`` instead (the vertex counts itself), which
    is ``deg(i) / (deg(i) + 1)`` times the open one: ``f - Â f`` for the row-normalised adjacency
    with self loops ``Â`` of :func:`munet.graph.normalized_adjacency`. A vertex without
    neighbours has ``L(f)_i = f_i`` (open) or 0 (closed). Differentiable with respect to ``field``.

    Args:
        field: ``(..., V, C)`` per-vertex values (any unit; the Laplacian has the same unit).
        edges: ``(E, 2)`` long vertex indices, each undirected edge once.
        closed: average over the closed one-ring instead of the neighbours only.

    Returns:
        ``(..., V, C)``.
    """
    if field.dim() < 2:
        raise ValueError(f"field must have shape (..., V, C), got {tuple(field.shape)}")
    edges = edges.to(field.device)
    index = torch.cat([edges[:, 0], edges[:, 1]])
    neighbour = torch.cat([edges[:, 1], edges[:, 0]])
    summed = torch.zeros_like(field).index_add(-2, index, field[..., neighbour, :])
    degree = torch.bincount(index, minlength=field.shape[-2]).to(field.dtype)
    if closed:
        summed, degree = summed + field, degree + 1
    return field - summed / degree.clamp_min(1)[:, None]
