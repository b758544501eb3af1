"""A triangle mesh seen as a graph: positions, faces, edges, adjacency.

Everything here is plain torch (vertex normals and the manifold check of a mesh's faces are in
:mod:`munet.geometry`). Sparse matrices are ``torch.sparse_coo`` tensors, coalesced, and are
applied to batched per-vertex features with :func:`sparse_bmm`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from munet.graph.sparse import sparse_matrix

Normalization = Literal["row", "symmetric"]


def sparse_bmm(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply one sparse matrix to every item of a batch of per-vertex features.

    Args:
        matrix: sparse ``(N, M)`` tensor (COO or CSR).
        x: dense ``(B, M, C)`` features.

    Returns:
        ``(B, N, C)``: ``out[b] = matrix @ x[b]``, computed as one sparse product on ``(M, B*C)``
        in the matrix's dtype (also under autocast). Differentiable with respect to ``x``.
    """
    if x.dim() != 3:
        raise ValueError(f"sparse_bmm expects features of shape (B, V, C), got {tuple(x.shape)}")
    rows, cols = matrix.shape
    if x.shape[1] != cols:
        raise ValueError(
            f"sparse_bmm: the matrix has {cols} columns but the features have {x.shape[1]} "
            f"vertices (shape {tuple(x.shape)}); pass features of the mesh the matrix was built for"
        )
    batch, _, channels = x.shape
    flat = x.transpose(0, 1).reshape(cols, batch * channels).to(matrix.dtype)
    # In the matrix's precision (float32) also under autocast: its backward has no mixed-dtype path.
    with torch.autocast(x.device.type, enabled=False):
        out = torch.sparse.mm(matrix, flat)
    return out.reshape(rows, batch, channels).transpose(0, 1)


def normalized_adjacency(edges: torch.Tensor, num_vertices: int, normalization: Normalization = "row") -> torch.Tensor:
    """Normalized adjacency with self loops of an undirected graph, as a sparse ``(V, V)`` matrix.

    With ``A`` the 0/1 adjacency and ``D`` the diagonal of vertex degrees of ``A + I``:

    - ``"row"``: ``D^-1 (A + I)``, the mean over the closed one-ring. Rows sum to 1, so a constant
      field stays constant (a smoothing operator, the natural choice for geometry).
    - ``"symmetric"``: ``D^-1/2 (A + I) D^-1/2`` (Kipf & Welling). Symmetric with spectral radius 1.

    Args:
        edges: ``(E, 2)`` long, each undirected edge once.
        num_vertices: ``V``.
        normalization: ``"row"`` or ``"symmetric"``.

    Returns:
        Coalesced sparse COO ``(V, V)`` float32 tensor on the device of ``edges``.
    """
    if normalization not in ("row", "symmetric"):
        raise ValueError(f"normalization must be 'row' or 'symmetric', got {normalization!r}")
    loops = torch.arange(num_vertices, device=edges.device)
    rows = torch.cat([edges[:, 0], edges[:, 1], loops])
    cols = torch.cat([edges[:, 1], edges[:, 0], loops])
    degree = torch.bincount(rows, minlength=num_vertices).to(torch.float32)
    if normalization == "row":
        values = 1.0 / degree[rows]
    else:
        values = torch.rsqrt(degree[rows] * degree[cols])
    return sparse_matrix(torch.stack([rows, cols]), values, (num_vertices, num_vertices))


def _unique_edges(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undirected edges ``(E, 2)`` (``i < j``, sorted) and ``face_edges`` ``(F, 3)``.

    ``face_edges[f, k]`` indexes the edge from corner ``k`` to corner ``k + 1 (mod 3)`` of face
    ``f``.
    """
    half_edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edges, inverse = torch.unique(half_edges.sort(dim=1).values, dim=0, return_inverse=True)
    return edges, inverse.reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class MeshGraph:
    """A triangle mesh template and the graph derived from it.

    Attributes:
        vertices: ``(V, 3)`` float32 rest positions, metres.
        faces: ``(F, 3)`` long vertex indices, counter-clockwise seen from outside (the normal
            ``(v1 - v0) x (v2 - v0)`` points out).
        edges: ``(E, 2)`` long, derived: each undirected edge once, ``edges[:, 0] < edges[:, 1]``,
            sorted lexicographically.
        face_edges: ``(F, 3)`` long, derived: ``face_edges[f, k]`` is the index in ``edges`` of the
            edge from corner ``k`` to corner ``k + 1 (mod 3)`` of face ``f``.

    Build with :meth:`from_arrays` from numpy arrays or tensors of any dtype.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    edges: torch.Tensor = field(init=False, repr=False)
    face_edges: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vertices, faces = self.vertices, self.faces
        if vertices.dim() != 2 or vertices.shape[1] != 3 or vertices.dtype != torch.float32:
            raise ValueError(
                f"MeshGraph.vertices must be a (V, 3) float32 tensor, got {tuple(vertices.shape)} "
                f"{vertices.dtype}; use MeshGraph.from_arrays to convert"
            )
        if faces.dim() != 2 or faces.shape[1] != 3 or faces.dtype != torch.long:
            raise ValueError(
                f"MeshGraph.faces must be a (F, 3) long tensor, got {tuple(faces.shape)} "
                f"{faces.dtype}; use MeshGraph.from_arrays to convert"
            )
        if faces.shape[0] == 0:
            raise ValueError("MeshGraph needs at least one face")
        if vertices.device != faces.device:
            raise ValueError(f"vertices are on {vertices.device} but faces on {faces.device}; move both together")
        low, high = int(faces.min()), int(faces.max())
        if low < 0 or high >= vertices.shape[0]:
            raise ValueError(
                f"face indices must lie in [0, {vertices.shape[0] - 1}] (V = {vertices.shape[0]}), "
                f"found the range [{low}, {high}]"
            )
        edges, face_edges = _unique_edges(faces)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "face_edges", face_edges)

    @classmethod
    def from_arrays(cls, vertices: np.ndarray | torch.Tensor, faces: np.ndarray | torch.Tensor) -> MeshGraph:
        """Build from ``(V, 3)`` positions and ``(F, 3)`` faces of any numeric dtype (copied).

        Positions are cast to float32 and faces to int64; both land on the device of ``vertices``
        when it is a tensor, else on the CPU.
        """
        vertices_t = torch.as_tensor(vertices).detach().to(torch.float32).clone()
        faces_t = torch.as_tensor(faces).detach().to(vertices_t.device, torch.long).clone()
        return cls(vertices_t, faces_t)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    def euler_characteristic(self) -> int:
        """``V - E + F`` (2 for a closed genus-0 surface)."""
        return self.num_vertices - self.num_edges + self.num_faces

    def to(self, device: torch.device | str) -> MeshGraph:
        """A copy on ``device`` (derived fields are rebuilt there)."""
        return MeshGraph(self.vertices.to(device), self.faces.to(device))

    def adjacency(self, normalization: Normalization = "row") -> torch.Tensor:
        """Sparse ``(V, V)`` normalized adjacency with self loops (:func:`normalized_adjacency`)."""
        return normalized_adjacency(self.edges, self.num_vertices, normalization)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the float32 positions and int64 faces: equal iff the arrays are."""
        digest = hashlib.sha256()
        for array in (self.vertices, self.faces):
            data = array.detach().cpu().contiguous().numpy()
            digest.update(str(data.shape).encode())
            digest.update(data.tobytes())
        return digest.hexdigest()
