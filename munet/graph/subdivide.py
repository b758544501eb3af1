"""Midpoint (1 → 4) subdivision of a mesh graph, with the explicit matrix that maps features up.

One step adds a vertex at the midpoint of every edge and splits each face ``(a, b, c)`` with edge
midpoints ``ab, bc, ca`` into the four faces ``(a, ab, ca)``, ``(ab, b, bc)``, ``(ca, bc, c)`` and
``(ab, bc, ca)``, all oriented like their parent. So ``V' = V + E``, ``E' = 2E + 3F``, ``F' = 4F``:
the Euler characteristic is kept, and a closed, consistently oriented 2-manifold stays one. The
surface does not move (no smoothing): subdivision only adds degrees of freedom.

Numbering: the first ``V`` vertices are the original ones, vertex ``V + e`` is the midpoint of
``graph.edges[e]``; the children of face ``f`` are faces ``4f … 4f + 3``.
"""

from __future__ import annotations

import warnings

import torch

from munet.graph.mesh_graph import MeshGraph
from munet.graph.sparse import sparse_matrix


def _subdivide_once(graph: MeshGraph) -> tuple[MeshGraph, torch.Tensor]:
    num_vertices, num_edges = graph.num_vertices, graph.num_edges
    device = graph.device
    originals = torch.arange(num_vertices, device=device)
    midpoints = torch.arange(num_vertices, num_vertices + num_edges, device=device)
    rows = torch.cat([originals, midpoints, midpoints])
    cols = torch.cat([originals, graph.edges[:, 0], graph.edges[:, 1]])
    values = torch.cat([torch.ones(num_vertices, device=device), torch.full((2 * num_edges,), 0.5, device=device)])
    up = sparse_matrix(torch.stack([rows, cols]), values, (num_vertices + num_edges, num_vertices))

    a, b, c = graph.faces.unbind(dim=1)
    ab, bc, ca = (graph.face_edges + num_vertices).unbind(dim=1)
    children = torch.stack(
        [
            torch.stack([a, ab, ca], dim=1),
            torch.stack([ab, b, bc], dim=1),
            torch.stack([ca, bc, c], dim=1),
            torch.stack([ab, bc, ca], dim=1),
        ],
        dim=1,
    ).reshape(-1, 3)
    vertices = torch.sparse.mm(up, graph.vertices)
    return MeshGraph(vertices, children), up


def subdivide(graph: MeshGraph, times: int = 1) -> tuple[MeshGraph, torch.Tensor]:
    """Midpoint-subdivide ``graph`` ``times`` times.

    Args:
        graph: the mesh to refine.
        times: number of 1 → 4 steps (0 returns the same mesh and the identity).

    Returns:
        ``(fine, up)``: the subdivided mesh and the sparse COO ``(V_fine, V)`` float32 matrix that
        maps per-vertex features of ``graph`` to ``fine`` (``fine.vertices == up @ graph.vertices``;
        a new vertex averages its edge's endpoints). Apply it to batches with
        :func:`munet.graph.sparse_bmm`.
    """
    if times < 0:
        raise ValueError(f"times must be >= 0, got {times}")
    up = sparse_matrix(
        torch.arange(graph.num_vertices, device=graph.device).expand(2, -1),
        torch.ones(graph.num_vertices, device=graph.device),
        (graph.num_vertices, graph.num_vertices),
    )
    for _ in range(times):
        graph, step = _subdivide_once(graph)
        with warnings.catch_warnings():  # torch's COO @ COO goes through CSR, which it calls beta
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            up = torch.sparse.mm(step, up).coalesce()
    return graph, up


def subdivide_face_labels(face_labels: torch.Tensor, times: int = 1) -> torch.Tensor:
    """Per-face values (labels, colours, …) ``(F, ...)`` of a mesh → ``(4**times * F, ...)`` of
    the mesh :func:`subdivide` returns: every child face inherits its parent's value."""
    if times < 0:
        raise ValueError(f"times must be >= 0, got {times}")
    return face_labels.repeat_interleave(4**times, dim=0)
