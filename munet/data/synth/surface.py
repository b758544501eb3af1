"""The clothed surface: one watertight, outward-facing 2-manifold around the body.

The solid is defined implicitly on a voxel grid over the body:

1. unsigned distance ``d`` from voxel centres to the posed body mesh (Warp's BVH closest-point
   query), computed only where it matters: within a voxel of the thinnest layer everywhere, and
   outside the body out to the local garment offsets (see :func:`_body_layer`);
2. the body-following layer ``d - offset``, ``offset`` interpolated from the per-vertex garment
   offsets at the closest surface point; loose volumes are smoothly unioned in;
3. the inside is everything the outside (the voxels 6-connected to the grid border through
   positive values) cannot reach. This needs no inside/outside test on the body mesh, seals
   self-contacts, and cannot leak: every grid edge that crosses the skin has an end within half a
   voxel of it, inside the layer as long as every offset exceeds half a voxel;
4. marching cubes (scikit-image, Lewiner) at level 0, the largest connected component, and a
   check that the mesh is closed, consistently oriented, edge- and vertex-manifold, with positive
   volume (:class:`SurfaceError` otherwise).

Face labels come from the label field at each face's nearest voxel: the primitive with the
smallest distance there, else the label of the closest body vertex.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import warp as wp
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes

from munet.console import quiet_warp
from munet.data.synth.garments import Volume
from munet.geometry import manifold_defects

quiet_warp()  # no Warp banner per process (munet.console)


class SurfaceError(RuntimeError):
    """The extracted surface is not a closed, oriented 2-manifold (resample the garments)."""


@wp.kernel
def _closest_points(
    mesh: wp.uint64,
    points: wp.array(dtype=wp.vec3),
    max_distance: wp.array(dtype=float),
    distance: wp.array(dtype=float),
    face: wp.array(dtype=int),
    bary_u: wp.array(dtype=float),
    bary_v: wp.array(dtype=float),
):
    i = wp.tid()
    query = wp.mesh_query_point_no_sign(mesh, points[i], max_distance[i])
    if query.result:
        closest = wp.mesh_eval_position(mesh, query.face, query.u, query.v)
        distance[i] = wp.length(points[i] - closest)
        face[i] = query.face
        bary_u[i] = query.u
        bary_v[i] = query.v
    else:
        distance[i] = max_distance[i]
        face[i] = -1
        bary_u[i] = 0.0
        bary_v[i] = 0.0


class MeshDistance:
    """Closest-point queries on a triangle mesh (a Warp BVH, built once, CPU).

    Args:
        vertices: (V, 3); faces: (F, 3), metres.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        points = np.ascontiguousarray(vertices, dtype=np.float32)
        indices = np.ascontiguousarray(faces, dtype=np.int32).reshape(-1)
        self._mesh = wp.Mesh(
            points=wp.array(points, dtype=wp.vec3, device="cpu"),
            indices=wp.array(indices, dtype=wp.int32, device="cpu"),
            bvh_constructor="sah",  # Warp builds LBVH trees on GPUs only
        )

    def __call__(
        self, points: np.ndarray, max_distance: float | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closest points to ``points`` (N, 3) within ``max_distance`` (a scalar or (N,)).

        Returns:
            distance (N,) float32 (``max_distance`` when nothing is that close), face (N,) int32
            (-1 then) and barycentric weights (N, 3) float32 of the face's three corners.
        """
        n = len(points)
        radius = np.broadcast_to(np.asarray(max_distance, dtype=np.float32), (n,))
        inputs = [
            wp.array(np.ascontiguousarray(points, dtype=np.float32), dtype=wp.vec3, device="cpu"),
            wp.array(np.ascontiguousarray(radius), dtype=float, device="cpu"),
        ]
        outputs = [wp.empty(n, dtype=t, device="cpu") for t in (float, int, float, float)]
        wp.launch(_closest_points, dim=n, inputs=[self._mesh.id, *inputs, *outputs], device="cpu")
        distance, face, u, v = (a.numpy() for a in outputs)
        return distance, face, np.stack([u, v, 1 - u - v], axis=1)


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distance fields (blend radius ``k`` metres)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k / 4


def largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected component (through shared vertices) with the most faces, reindexed."""
    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    face_component = component[faces[:, 0]]
    keep = face_component == np.bincount(face_component).argmax()
    used, remap = np.unique(faces[keep], return_inverse=True)
    return vertices[used], remap.reshape(-1, 3)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh, positive when its faces wind counter-clockwise outward."""
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


@dataclass(frozen=True)
class _Grid:
    """A regular grid of voxel centres: ``low + voxel * (i, j, k)`` for ``(i, j, k) < dims``."""

    low: np.ndarray
    dims: np.ndarray
    voxel: float

    @classmethod
    def around(cls, low: np.ndarray, high: np.ndarray, voxel: float) -> _Grid:
        return cls(low.astype(np.float32), np.ceil((high - low) / voxel).astype(int) + 1, voxel)

    def points(self) -> np.ndarray:
        """(N, 3) float32 voxel centres, in C order of ``dims``."""
        steps = [np.arange(n, dtype=np.float32) for n in self.dims]
        axes = [low + self.voxel * step for low, step in zip(self.low, steps)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)

    def lookup(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Values (N,) of the voxels nearest to positions (M, 3) -> (M,)."""
        index = np.clip(np.rint((positions - self.low) / self.voxel).astype(int), 0, self.dims - 1)
        return values.reshape(self.dims)[index[:, 0], index[:, 1], index[:, 2]]


def enclosed(positive: np.ndarray) -> np.ndarray:
    """Cells of a 3D boolean array that are True but not 6-connected to the array's border
    through True cells (the pockets)."""
    components, count = ndimage.label(positive)
    faces = (components[[0, -1]], components[:, [0, -1]], components[..., [0, -1]])
    pocket = np.ones(count + 1, dtype=bool)
    pocket[0] = False
    pocket[np.concatenate([face.ravel() for face in faces])] = False
    return pocket[components]


def _near_mask(vertices: np.ndarray, grid: _Grid, reach: float, cell: int = 2) -> np.ndarray:
    """(N,) bool over the grid points: a superset of the voxels within ``reach`` of the vertices.

    Vertices are binned into blocks of ``cell`` voxels and the occupied blocks are dilated by
    ``reach`` plus one block. A point of the mesh surface lies within an edge length (< a block)
    of a vertex, so no voxel within ``reach`` of the surface is left out either.
    """
    blocks = -(-grid.dims // cell)
    occupied = np.zeros(blocks, dtype=bool)
    index = np.floor((vertices - grid.low) / (grid.voxel * cell)).astype(int)
    occupied[index[:, 0], index[:, 1], index[:, 2]] = True
    steps = int(np.ceil(reach / (grid.voxel * cell))) + 1
    occupied = ndimage.binary_dilation(occupied, np.ones((3, 3, 3), dtype=bool), iterations=steps)
    full = occupied.repeat(cell, 0).repeat(cell, 1).repeat(cell, 2)
    return full[: grid.dims[0], : grid.dims[1], : grid.dims[2]].reshape(-1)


@dataclass
class ClothedSurface:
    """The extracted surface.

    Attributes:
        vertices: (N, 3) float32 metres. faces: (F, 3) int32, outward (counter-clockwise).
        face_labels: (F,) uint8 and vertex_labels: (N,) uint8 region labels.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    vertex_labels: np.ndarray


def _body_layer(
    grid: _Grid,
    points: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    offsets: np.ndarray,
    labels: np.ndarray,
    blend: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Field ``distance - offset`` of the body layer at the grid points, and the label there.

    Two Warp passes keep the exact distance queries few. First a thin shell at the smallest
    offset, which gives the body's inside (what the shell encloses, set to ``-voxel``). Then, for
    outside voxels only, the distance out to the offsets of the nearby vertices plus 1.5 voxels
    (or the blend radius if larger): the voxels around the zero level are exact, and voxels
    beyond (+1 m here) are too far for the smooth union with a volume to change.
    """
    voxel = grid.voxel
    closest = MeshDistance(vertices, faces)
    distance = np.full(len(points), np.inf, dtype=np.float32)
    face = np.full(len(points), -1, dtype=np.int32)
    bary = np.zeros((len(points), 3), dtype=np.float32)
    skin = float(offsets.min())
    first = np.flatnonzero(_near_mask(vertices, grid, skin + voxel))
    distance[first], face[first], bary[first] = closest(points[first], skin + voxel)
    inside = enclosed((distance >= skin).reshape(grid.dims)).reshape(-1)
    # Per-voxel reach, in whole voxels, from the needs of the vertices around (cheap masks).
    need = offsets + max(1.5 * voxel, blend)
    reach = np.zeros(len(points), dtype=np.float32)
    for level in np.unique(np.ceil(need / voxel)):
        reach[_near_mask(vertices[need > (level - 1) * voxel], grid, level * voxel)] = level * voxel
    second = np.flatnonzero((reach > skin + voxel) & (face < 0) & ~inside)
    distance[second], face[second], bary[second] = closest(points[second], reach[second])
    hit = np.flatnonzero(face >= 0)
    corners = faces[face[hit]]
    field = np.ones(len(points), dtype=np.float32)
    field[hit] = distance[hit] - np.einsum("nk,nk->n", bary[hit], offsets[corners])
    field[inside] = -voxel
    label = np.zeros(len(points), dtype=np.uint8)
    label[hit] = labels[corners[np.arange(len(hit)), bary[hit].argmax(axis=1)]]
    return field, label


def extract_surface(
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    offsets: np.ndarray,
    labels: np.ndarray,
    volumes: list[Volume],
    voxel: float,
    blend: float,
    timings: dict[str, float] | None = None,
) -> ClothedSurface:
    """Build the clothed surface around a posed body (see the module docstring).

    Args:
        body_vertices: (V, 3) posed body; body_faces: (F, 3) its triangles.
        offsets: (V,) distance of the clothed surface from each body vertex, metres; every value
            must exceed half a voxel.
        labels: (V,) uint8 label seen at each body vertex.
        volumes: loose garment volumes to union in.
        voxel: grid spacing, metres. blend: smooth-union radius, metres.
        timings: if given, seconds per stage are added under ``sdf``, ``marching_cubes`` and
            ``cleanup``.

    Raises:
        ValueError: an offset is not larger than half a voxel (the inside could leak out).
        SurfaceError: the result is not a closed, oriented 2-manifold.
    """
    if offsets.min() <= voxel / 2:
        raise ValueError(
            f"every offset must exceed half a voxel ({voxel / 2:.4f} m) for a sealed surface; "
            f"got {offsets.min():.4f} m: raise the skin offset or use smaller voxels"
        )
    timings = {} if timings is None else timings
    with timed(timings, "sdf"):
        margin = float(offsets.max()) + 2 * voxel
        low, high = body_vertices.min(axis=0) - margin, body_vertices.max(axis=0) + margin
        for volume in volumes:
            v_low, v_high = volume.shape.bounds()
            low, high = np.minimum(low, v_low - 2 * voxel), np.maximum(high, v_high + 2 * voxel)
        grid = _Grid.around(low, high, voxel)
        points = grid.points()
        field, label = _body_layer(grid, points, body_vertices, body_faces, offsets, labels, blend)
        nearest = field.copy()
        for volume in volumes:
            primitive = volume.shape.sdf(points, reach=margin)
            label = np.where(primitive < nearest, np.uint8(volume.label), label)
            nearest = np.minimum(nearest, primitive)
            field = smooth_min(field, primitive, blend)
        field = field.reshape(grid.dims)
        field[enclosed(field > 0)] = -voxel
        field[field == 0] = 1e-6
    with timed(timings, "marching_cubes"):
        vertices, faces, _, _ = marching_cubes(field, 0.0, spacing=(voxel,) * 3)
    if len(faces) == 0:
        raise SurfaceError("marching cubes found no surface (is the body inside the grid?)")
    with timed(timings, "cleanup"):
        vertices, faces = largest_component((vertices + grid.low).astype(np.float32), faces)
        if signed_volume(vertices, faces) < 0:
            faces = faces[:, ::-1]
        defects = manifold_defects(faces, len(vertices))
        if defects:
            raise SurfaceError(f"clothed surface rejected: {'; '.join(defects)}")
        return ClothedSurface(
            vertices=vertices,
            faces=np.ascontiguousarray(faces, dtype=np.int32),
            face_labels=grid.lookup(label, vertices[faces].mean(axis=1)).astype(np.uint8),
            vertex_labels=grid.lookup(label, vertices).astype(np.uint8),
        )


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall-clock seconds spent in the ``with`` block to ``timings[name]``."""
    clock = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - clock
