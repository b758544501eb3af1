"""Joints regressed from mesh vertices: each joint a fixed linear combination of the vertices."""

from __future__ import annotations

import torch


def regress_joints(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """``J = R V``: joints as the weighted sums of vertices a joint regressor prescribes.

    Args:
        regressor: ``(J, V)`` weights, dense or sparse (COO or CSR); rows usually sum to one (each
            joint a weighted mean of vertices, so it moves with the mesh). Cast to the vertices'
            dtype.
        vertices: ``(..., V, 3)`` mesh vertices of the regressor's topology, any frame and unit.

    Returns:
        ``(..., J, 3)`` joints in the frame and unit of ``vertices``. Differentiable with respect to
        ``vertices``.
    """
    if vertices.dim() < 2 or vertices.shape[-2] != regressor.shape[1]:
        raise ValueError(
            f"vertices must have shape (..., {regressor.shape[1]}, 3) for a {tuple(regressor.shape)} "
            f"regressor, got {tuple(vertices.shape)}"
        )
    regressor = regressor.to(vertices.dtype)
    if regressor.layout == torch.strided:
        return torch.einsum("jv,...vc->...jc", regressor, vertices)
    flat = vertices.movedim(-2, 0).reshape(vertices.shape[-2], -1)  # (V, prod(...) * C)
    joints = (regressor @ flat).reshape(regressor.shape[0], *vertices.shape[:-2], vertices.shape[-1])
    return joints.movedim(0, -2)
