"""Face and vertex normals of triangle meshes.

Faces wind counter-clockwise seen from outside, so ``(v1 - v0) × (v2 - v0)`` points out of a closed
mesh. PyTorch3D computes the same vertex normals inside its ``Meshes`` structure
(``verts_normals_packed``) but clamps their length at 1e-6 (normals of sub-millimetre faces would
not come out unit length) and needs a ``Meshes`` built per call; these functions work on plain
batched tensors, and on NumPy arrays for data generation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from munet.geometry._arrays import ArrayOrTensor, as_tensor, like


def face_normals(vertices: ArrayOrTensor, faces: np.ndarray | torch.Tensor) -> ArrayOrTensor:
    """Area-weighted face normals ``(v1 - v0) × (v2 - v0)``, not normalised.

    Each points out of an outward-wound face and is as long as twice the face's area, so their
    norms give the areas and summing them weights faces by area. Differentiable.

    Args:
        vertices: ``(..., V, 3)`` positions (any frame, any unit).
        faces: ``(F, 3)`` vertex indices.

    Returns:
        ``(..., F, 3)`` in the frame of ``vertices``, units². NumPy positions give float64 NumPy.
    """
    vertices_t = as_tensor(vertices, torch.float64)
    faces_t = as_tensor(faces, torch.long, vertices_t.device)
    _check(vertices_t, faces_t)
    corners = vertices_t[..., faces_t, :]  # (..., F, 3, 3)
    normals = torch.linalg.cross(
        corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :], dim=-1
    )
    return like(normals, vertices)


def vertex_normals(vertices: ArrayOrTensor, faces: np.ndarray | torch.Tensor) -> ArrayOrTensor:
    """Unit area-weighted vertex normals: the normalised sum of the incident :func:`face_normals`.

    Oriented like the faces (outward for an outward-wound closed mesh). A vertex used by no face
    (or only by faces of zero area) gets a zero vector. Differentiable.

    Args:
        vertices: ``(..., V, 3)`` positions (any frame, any unit).
        faces: ``(F, 3)`` vertex indices, counter-clockwise seen from outside.

    Returns:
        ``(..., V, 3)`` unit normals in the frame of ``vertices``. NumPy positions give float64
        NumPy.
    """
    vertices_t = as_tensor(vertices, torch.float64)
    faces_t = as_tensor(faces, torch.long, vertices_t.device)
    corners = faces_t.reshape(-1)
    per_corner = face_normals(vertices_t, faces_t).repeat_interleave(3, dim=-2)  # (..., 3 F, 3), as ``corners``
    if isinstance(vertices, np.ndarray) and vertices_t.dim() == 2:
        # One NumPy mesh (data generation, pictures): np.bincount adds each vertex's terms in the
        # order index_add does (the same bits), sequentially whatever the thread count, twice as fast.
        index, weights = corners.numpy(), per_corner.numpy()
        sums = [np.bincount(index, weights=weights[:, k], minlength=len(vertices)) for k in range(3)]
        summed = torch.from_numpy(np.stack(sums, axis=1))
    else:
        summed = torch.zeros_like(vertices_t).index_add(-2, corners, per_corner)
    return like(F.normalize(summed, dim=-1, eps=1e-12), vertices)


def _check(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    if vertices.dim() < 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (..., V, 3), got {tuple(vertices.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
