"""Left/right symmetry of a template mesh: the vertex each vertex is the mirror image of.

A horizontal flip of a training sample mirrors the body mesh through the person's sagittal plane;
the mirrored mesh has the same topology only after its vertices are renumbered, vertex ``i``
becoming its mirror partner ``mirror[i]`` (a left-hand vertex becomes the matching right-hand one).

The correspondence is found geometrically, so it needs a mesh that is symmetric to well under its
vertex spacing. Anny's template mesh (``anny.Anny.template_vertices``) is exactly symmetric; its
bodies are not quite: the phenotype blend shapes move mirror vertices differently, by up to 0.4 mm
for the mean phenotypes and a few millimetres for extreme ones (4.5 mm at age 0). That is more
than the 0.25 mm between the closest vertices of the fine mesh, so nearest neighbours on a body
are not one-to-one. Compute the correspondence on the template
(:meth:`munet.body.anny_backend.AnnyBody.vertex_mirror`); it holds for every body of the topology.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def mirror_indices(vertices: torch.Tensor, axis: int = 0, tolerance: float = 1e-5) -> torch.Tensor:
    """The mirror partner of every vertex of a left/right-symmetric mesh.

    The mirror is the plane where coordinate ``axis`` is 0: vertex ``i``'s partner is the vertex
    nearest to ``i`` with that coordinate negated; vertices on the plane are their own partners.

    Args:
        vertices: ``(V, 3)`` vertices of the symmetric mesh, metres, in a frame whose ``axis`` is
            the left/right direction with the plane of symmetry at 0 (Anny's frame, X; the
            pelvis-centred camera orientation of :mod:`munet.model.templates`, x).
        axis: the coordinate (0, 1 or 2) that the mirror negates.
        tolerance: largest distance (metres) accepted between a reflected vertex and its partner.

    Returns:
        ``(V,)`` long ``mirror``: a permutation that is its own inverse (``mirror[mirror] == i``),
        such that ``reflect(vertices)[mirror]`` equals ``vertices`` within ``tolerance``.

    Raises:
        ValueError: the input is not ``(V, 3)`` or ``axis`` is not 0, 1 or 2; or the mesh is not
            symmetric within ``tolerance`` (the message gives the largest mismatch and how many
            vertices are off), or two vertices share a partner.
    """
    if vertices.dim() != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {tuple(vertices.shape)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    points = vertices.detach().cpu().to(torch.float64).numpy()
    reflected = points.copy()
    reflected[:, axis] *= -1.0
    distance, partner = cKDTree(points).query(reflected)
    off = distance > tolerance
    if off.any():
        worst = int(np.argmax(distance))
        raise ValueError(
            f"the mesh is not mirror-symmetric along axis {axis} within {tolerance:g} m: "
            f"{int(off.sum())} of {len(points)} reflected vertices are farther than that from every "
            f"vertex (largest gap {distance[worst]:.3g} m, at vertex {worst}); a shaped or posed "
            "body is only nearly symmetric: use the body model's template mesh"
        )
    if np.bincount(partner, minlength=len(points)).max() > 1 or not np.array_equal(
        partner[partner], np.arange(len(points))
    ):
        raise ValueError(
            f"the mirror correspondence along axis {axis} is not one-to-one: the mesh's asymmetry "
            f"(up to {tolerance:g} m allowed) is not small against its vertex spacing, or vertices "
            "are duplicated; use a more symmetric mesh (a body model's template) or merge them"
        )
    return torch.from_numpy(partner.astype(np.int64))
