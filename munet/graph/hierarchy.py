"""Sampling matrices between two meshes of the same body: a fine mesh and a coarse graph.

Both meshes are given in the same rest pose. Each vertex of one mesh is written as the barycentric
combination of the three corners of the closest triangle of the other mesh (the closest point on its
surface, found with trimesh's closest-point query), which gives

- ``up``   ``(V_fine, V_coarse)``: coarse per-vertex features → fine mesh,
- ``down`` ``(V_coarse, V_fine)``: fine per-vertex features → coarse graph.

Every row holds at most three non-negative weights that sum to 1, so both matrices reproduce
constant fields exactly and linear fields up to the distance between the two surfaces.

The matrices depend only on the two meshes; :func:`load_or_build_hierarchy` computes them once and
caches them in a ``.npz`` file whose name holds both meshes' fingerprints.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from munet.graph.mesh_graph import MeshGraph
from munet.graph.sparse import sparse_matrix

CACHE_FORMAT_VERSION = 2
"""Bumped whenever the way the matrices are computed or stored changes."""

MIN_WEIGHT = 1e-6
"""Barycentric weights below this are dropped (and the row renormalised). A query point on an edge
or a corner of the closest triangle has weights that are zero up to rounding; whether such a weight
comes out as ``+1e-17`` or ``-1e-17`` depends on the CPU's floating-point kernels, and it must not
decide how many non-zeros a matrix has."""


def closest_point_weights(points: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
    """Barycentric weights of the closest point on ``mesh``'s surface to each query point.

    Args:
        points: ``(N, 3)`` query positions, same units and frame as ``mesh.vertices``.
        mesh: the surface to project onto.

    Returns:
        Sparse COO ``(N, V)`` float32 matrix with at most three non-zeros per row (the corners of
        the closest triangle), non-negative and summing to 1, so that ``weights @ mesh.vertices``
        is the closest surface point.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    surface = trimesh.Trimesh(mesh.vertices.detach().cpu().double().numpy(), mesh.faces.cpu().numpy(), process=False)
    queries = points.detach().cpu().double().numpy()
    closest, _, triangle = trimesh.proximity.closest_point(surface, queries)
    corners = surface.triangles[triangle]  # (N, 3, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = trimesh.triangles.points_to_barycentric(corners, closest)
    # A sliver triangle has no stable barycentric frame: snap to its nearest corner instead.
    unstable = ~np.isfinite(weights).all(axis=1)
    if unstable.any():
        nearest = np.linalg.norm(corners[unstable] - closest[unstable, None], axis=-1).argmin(axis=1)
        weights[unstable] = np.eye(3)[nearest]
    weights = np.where(weights < MIN_WEIGHT, 0.0, weights)
    weights /= weights.sum(axis=1, keepdims=True)

    rows = np.repeat(np.arange(len(queries)), 3)
    cols = surface.faces[triangle].reshape(-1)
    values = weights.reshape(-1)
    keep = values > 0
    indices = torch.from_numpy(np.stack([rows[keep], cols[keep]]))
    matrix = sparse_matrix(indices, torch.from_numpy(values[keep]).float(), (len(queries), mesh.num_vertices))
    return matrix.to(points.device)


@dataclass(frozen=True, eq=False)
class SamplingMatrices:
    """Up/down-sampling between a fine mesh and a coarse graph of the same body.

    Attributes:
        down: sparse COO ``(V_coarse, V_fine)`` float32; ``sparse_bmm(down, fine_features)``.
        up: sparse COO ``(V_fine, V_coarse)`` float32; ``sparse_bmm(up, coarse_features)``.
        fine_fingerprint: :meth:`MeshGraph.fingerprint` of the fine mesh they were built from.
        coarse_fingerprint: same for the coarse graph.
    """

    down: torch.Tensor
    up: torch.Tensor
    fine_fingerprint: str
    coarse_fingerprint: str

    def __post_init__(self) -> None:
        if self.down.shape[::-1] != self.up.shape:
            raise ValueError(f"down {tuple(self.down.shape)} and up {tuple(self.up.shape)} must have transposed shapes")

    def matches(self, fine: MeshGraph, coarse: MeshGraph) -> bool:
        """Whether these matrices were built from exactly these two meshes."""
        return self.fine_fingerprint == fine.fingerprint() and self.coarse_fingerprint == coarse.fingerprint()

    def to(self, device: torch.device | str) -> SamplingMatrices:
        """A copy with both matrices on ``device``."""
        return SamplingMatrices(
            self.down.to(device), self.up.to(device), self.fine_fingerprint, self.coarse_fingerprint
        )

    def save(self, path: str | Path) -> None:
        """Write to ``path`` (``.npz``), atomically: a reader never sees a half-written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "version": np.array(CACHE_FORMAT_VERSION),
            "fine_fingerprint": np.array(self.fine_fingerprint),
            "coarse_fingerprint": np.array(self.coarse_fingerprint),
        }
        for name, matrix in (("down", self.down), ("up", self.up)):
            matrix = matrix.detach().cpu().coalesce()
            arrays[f"{name}_indices"] = matrix.indices().numpy()
            arrays[f"{name}_values"] = matrix.values().numpy()
            arrays[f"{name}_shape"] = np.array(matrix.shape)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str | Path) -> SamplingMatrices:
        """Read a file written by :meth:`save` (matrices on the CPU)."""
        with np.load(path) as data:
            version = int(data["version"]) if "version" in data else None
            if version != CACHE_FORMAT_VERSION:
                raise ValueError(
                    f"{path}: sampling-matrix cache format {version}, expected "
                    f"{CACHE_FORMAT_VERSION}; delete the file to rebuild it"
                )
            matrices = {
                name: sparse_matrix(
                    torch.from_numpy(data[f"{name}_indices"]),
                    torch.from_numpy(data[f"{name}_values"]),
                    tuple(int(n) for n in data[f"{name}_shape"]),
                    check=True,
                )
                for name in ("down", "up")
            }
            return cls(
                matrices["down"],
                matrices["up"],
                str(data["fine_fingerprint"]),
                str(data["coarse_fingerprint"]),
            )


def build_sampling_matrices(fine: MeshGraph, coarse: MeshGraph) -> SamplingMatrices:
    """Geometric up/down-sampling matrices between two meshes in the same rest pose.

    ``up`` row ``i`` holds the barycentric weights of the point of the coarse surface closest to
    fine vertex ``i``; ``down`` row ``j`` those of the point of the fine surface closest to coarse
    vertex ``j``. About a second for a 13k-vertex fine mesh; see :func:`load_or_build_hierarchy`.
    """
    return SamplingMatrices(
        down=closest_point_weights(coarse.vertices, fine).cpu(),
        up=closest_point_weights(fine.vertices, coarse).cpu(),
        fine_fingerprint=fine.fingerprint(),
        coarse_fingerprint=coarse.fingerprint(),
    )


def hierarchy_cache_path(cache_dir: str | Path, fine: MeshGraph, coarse: MeshGraph) -> Path:
    """The cache file of the matrices between ``fine`` and ``coarse``: unique per pair of meshes."""
    fine_key, coarse_key = fine.fingerprint()[:16], coarse.fingerprint()[:16]
    return Path(cache_dir) / f"sampling_v{CACHE_FORMAT_VERSION}_{fine_key}_{coarse_key}.npz"


def load_or_build_hierarchy(fine: MeshGraph, coarse: MeshGraph, cache_dir: str | Path) -> SamplingMatrices:
    """The sampling matrices between ``fine`` and ``coarse``, built once and then read from disk.

    Safe to call from several processes at once: each may build, and the file is replaced
    atomically. A file whose recorded fingerprints do not match is rebuilt.

    Returns:
        Matrices on the CPU (move them with :meth:`SamplingMatrices.to`).
    """
    path = hierarchy_cache_path(cache_dir, fine, coarse)
    if path.exists():
        cached = SamplingMatrices.load(path)
        if cached.matches(fine, coarse):
            return cached
    matrices = build_sampling_matrices(fine, coarse)
    matrices.save(path)
    return matrices
