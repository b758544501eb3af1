"""Mesh graphs for the body and clothed GCNs.

- :class:`MeshGraph`: a triangle mesh template with its edges and normalized adjacency (its
  vertex normals and manifold check are in :mod:`munet.geometry`).
- :func:`load_or_build_hierarchy`: cached geometric up/down-sampling matrices between a fine mesh
  and a coarse graph of the same body (:class:`SamplingMatrices`).
- :func:`subdivide`: midpoint subdivision with its explicit up-sampling matrix.
- :func:`mirror_indices`: the left/right mirror partner of every vertex of a symmetric mesh.
- :class:`GraphConv`, :class:`GraphResBlock`, :class:`SparseOperator`: layers on ``(B, V, C)``
  per-vertex features; :func:`sparse_bmm` applies any sparse matrix to such a batch;
  :func:`sparse_matrix` builds every sparse matrix (checked when read from a file).
"""

from munet.graph.conv import GraphConv, GraphResBlock, SparseOperator, VertexGroupNorm
from munet.graph.hierarchy import (
    SamplingMatrices,
    build_sampling_matrices,
    closest_point_weights,
    hierarchy_cache_path,
    load_or_build_hierarchy,
)
from munet.graph.mesh_graph import MeshGraph, normalized_adjacency, sparse_bmm
from munet.graph.sparse import sparse_matrix
from munet.graph.subdivide import subdivide, subdivide_face_labels
from munet.graph.symmetry import mirror_indices

__all__ = [
    "GraphConv",
    "GraphResBlock",
    "MeshGraph",
    "SamplingMatrices",
    "SparseOperator",
    "VertexGroupNorm",
    "build_sampling_matrices",
    "closest_point_weights",
    "hierarchy_cache_path",
    "load_or_build_hierarchy",
    "mirror_indices",
    "normalized_adjacency",
    "sparse_bmm",
    "sparse_matrix",
    "subdivide",
    "subdivide_face_labels",
]
