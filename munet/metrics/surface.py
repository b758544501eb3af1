"""Surface metrics of the clothed mesh: Chamfer, point-to-surface (P2S), normal consistency.

The protocol is ICON's (Xiu et al., CVPR 2022), measured from predictions alone:

- sample ``num_samples`` points uniformly (by area) on the predicted and on the ground-truth
  surface (default 10,000 each, for a lower sampling variance; ICON used 1,000);
- **P2S** is the mean Euclidean distance from the ground-truth samples to the predicted surface
  (the nearest point on any triangle, not the nearest sample);
- **Chamfer** is the mean of the two point-to-surface directions: ``(P2S + mean distance from
  predicted samples to the ground-truth surface) / 2``;
- **normal consistency** is defined on the meshes (ICON instead compares rendered normal images):
  for every sample, ``|cos|`` between the normal of the face it lies on and the normal of the
  nearest face of the other surface, averaged over each direction and then over both directions.
  1 means the normals agree everywhere (up to orientation), 0 means they are perpendicular.

Distances are returned in centimetres (inputs are in metres). Point-to-triangle distances come
from PyTorch3D's exact kernel, which returns *squared* distances: they are square-rooted here.
Two details of that kernel are handled so that distances are exact at human scale:

- triangles below ``min_triangle_area`` are treated as segments, and the default (5e-3) exceeds
  the area of every triangle of a body mesh in metres, so every distance would be measured to
  the nearest *edge*; and the plane normal is normalised with an absolute epsilon that biases
  millimetre-sized triangles. Both are avoided by measuring in units of the mesh's mean edge
  length and using a negligible area threshold in those units.
- the kernel compares every point with every triangle (about 10 million pairs per second on one
  CPU core: 20 s for 10k points and a 20k-face mesh). On the CPU each point is compared only
  with the triangles that can be nearest: triangles are grouped by size (radius about the
  centroid, in factors of 2) with a k-d tree of centroids per group; the nearest centroid gives
  an upper bound ``d`` on the distance (a centroid lies on its triangle), and a triangle of
  radius at most ``r`` whose centroid is farther than ``d + r`` cannot be nearer. The result is
  the exhaustive one, 10 to 100 times faster (``python -m munet.bench metrics``); on the GPU
  the exhaustive kernel is used directly.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from pytorch3d import _C
from pytorch3d.loss.point_mesh_distance import point_face_distance
from pytorch3d.ops import sample_points_from_meshes
from pytorch3d.structures import Meshes
from scipy.spatial import cKDTree

from munet.metrics._checks import check_points

MeshVertices = torch.Tensor | Sequence[torch.Tensor]
"""Padded ``(B, V, 3)`` vertices, or a list of ``(V_i, 3)`` (variable vertex counts)."""
MeshFaces = torch.Tensor | Sequence[torch.Tensor]
"""``(B, F, 3)`` faces (rows of ``-1`` are padding), one ``(F, 3)`` shared by the batch, or a list
of ``(F_i, 3)``; integer vertex indices."""

_M_TO_CM = 100.0
_MIN_TRIANGLE_AREA = 1e-6
"""Area (in squared mean edge lengths) below which the kernel treats a triangle as segments."""
_SIZE_CLASSES = 4
"""Triangles are grouped by radius in factors of 2; the last class also holds all smaller ones."""
_MAX_PAIRS = 1 << 21
"""Candidate point-triangle pairs handled at once (about 150 MB of working memory)."""
_SLACK = 1e-3
"""Added to search radii (in mean edge lengths) so that rounding never drops a candidate."""


def point_to_surface_distance(points: torch.Tensor, vertices: MeshVertices, faces: MeshFaces) -> torch.Tensor:
    """Euclidean distance from each point to the nearest point of a triangle mesh, in metres.

    Exact (the nearest point may lie inside a triangle, on an edge or at a vertex) and
    differentiable with respect to ``points`` and ``vertices``. Computed in float32.

    Args:
        points: ``(B, P, 3)`` query points, metres.
        vertices: the ``B`` meshes' vertices (see :data:`MeshVertices`), metres.
        faces: their triangles (see :data:`MeshFaces`).

    Returns:
        ``(B, P)`` float32 distances, metres.
    """
    check_points("points", points, "(B, P, 3)")
    meshes = _as_meshes("vertices", vertices, "faces", faces)
    _check_batch("points", points.shape[0], "meshes", len(meshes))
    if points.device != meshes.device:
        raise ValueError(f"points ({points.device}) and meshes ({meshes.device}) must be on one device")
    distances, _ = _nearest_faces(points, meshes)
    return distances


def chamfer_p2s(
    pred_vertices: MeshVertices,
    pred_faces: MeshFaces,
    gt_vertices: MeshVertices,
    gt_faces: MeshFaces,
    num_samples: int = 10_000,
    seed: int | None = None,
) -> dict[str, torch.Tensor]:
    """Chamfer distance, P2S and normal consistency of predicted vs ground-truth surfaces (ICON).

    See the module documentation for the exact definitions. Meshes may have different
    topologies and vertex counts, within a sample and across the batch. Differentiable with
    respect to the vertices (the samples move with their triangles).

    Args:
        pred_vertices, pred_faces: the ``B`` predicted meshes (metres).
        gt_vertices, gt_faces: the ``B`` ground-truth meshes (metres).
        num_samples: points sampled on *each* surface of each sample (default 10,000).
        seed: seeds the surface sampling, for reproducible values; ``None`` uses (and advances)
            torch's global generator. A seed leaves the global generator untouched.

    Returns:
        ``{"chamfer_cm": (B,), "p2s_cm": (B,), "normal_consistency": (B,)}``, float32 tensors.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    pred = _as_meshes("pred_vertices", pred_vertices, "pred_faces", pred_faces)
    gt = _as_meshes("gt_vertices", gt_vertices, "gt_faces", gt_faces)
    _check_batch("pred meshes", len(pred), "gt meshes", len(gt))
    if pred.device != gt.device:
        raise ValueError(f"pred and gt meshes must be on one device, got {pred.device} and {gt.device}")
    with _seeded(seed, pred.device):
        pred_points, pred_normals = sample_points_from_meshes(pred, num_samples, return_normals=True)
        gt_points, gt_normals = sample_points_from_meshes(gt, num_samples, return_normals=True)
    pred_to_gt, gt_faces_hit = _nearest_faces(pred_points, gt)
    gt_to_pred, pred_faces_hit = _nearest_faces(gt_points, pred)
    normal_pred = _abs_cosine(pred_normals, gt.faces_normals_packed()[gt_faces_hit])
    normal_gt = _abs_cosine(gt_normals, pred.faces_normals_packed()[pred_faces_hit])
    p2s = gt_to_pred.mean(dim=1)
    return {
        "chamfer_cm": (pred_to_gt.mean(dim=1) + p2s) * (_M_TO_CM / 2),
        "p2s_cm": p2s * _M_TO_CM,
        "normal_consistency": (normal_pred.mean(dim=1) + normal_gt.mean(dim=1)) / 2,
    }


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with torch's generator seeded by ``seed``, restoring it afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _nearest_faces(points: torch.Tensor, meshes: Meshes) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance (metres, ``(B, P)``, differentiable) and packed index of the nearest face."""
    distances, face_ids = [], []
    first_face = meshes.mesh_to_faces_packed_first_idx()
    for b, (verts, faces) in enumerate(zip(meshes.verts_list(), meshes.faces_list(), strict=True)):
        tris = verts[faces].float()
        # Unit = mean edge length of this mesh: keeps the kernel's epsilons negligible.
        unit = (tris - tris.roll(1, dims=1)).norm(dim=-1).mean().detach()
        unit = unit.clamp_min(torch.finfo(torch.float32).tiny)
        tris = (tris / unit).contiguous()
        query = (points[b] / unit).float().contiguous()
        nearest = _nearest_triangle(query.detach(), tris.detach())
        rows = torch.arange(len(query), device=query.device)
        squared = point_face_distance(query, rows, tris[nearest], rows, 1, _MIN_TRIANGLE_AREA)
        # Clamped before the root, so a point on the surface gets a zero (not NaN) gradient.
        distances.append(squared.clamp_min(1e-24).sqrt() * unit)
        face_ids.append(nearest + first_face[b])
    return torch.stack(distances), torch.stack(face_ids)


@torch.no_grad()
def _nearest_triangle(points: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Index into ``tris`` ``(F, 3, 3)`` of the triangle nearest to each point ``(P, 3)``.

    Exact. On the CPU only the triangles that can be nearest are compared (see the module
    documentation); on the GPU every triangle is, which is fast there.
    """
    if tris.is_cuda:
        return _exhaustive_nearest(points, tris)
    classes = _size_classes(tris)
    query = points.numpy()
    # A centroid lies on its triangle: the nearest one bounds the distance from above, and a
    # triangle whose centroid is farther than that bound plus the triangle's radius is farther.
    reach = np.minimum.reduce([tree.query(query, workers=-1)[0] for _, tree, _ in classes])
    radii = [reach + radius + _SLACK for _, _, radius in classes]
    load = sum(
        tree.query_ball_point(query, r, workers=-1, return_length=True)
        for (_, tree, _), r in zip(classes, radii, strict=True)
    )
    # Chunks of about _MAX_PAIRS candidate pairs bound the memory, however far the points are.
    splits = np.flatnonzero(np.diff((np.cumsum(load) - 1) // _MAX_PAIRS)) + 1
    nearest = torch.empty(len(points), dtype=torch.long)
    for chunk in np.split(np.arange(len(query)), splits):
        counts, candidates = _candidates(classes, query[chunk], [r[chunk] for r in radii])
        starts = torch.from_numpy(np.cumsum(counts) - counts)
        _, hit = _C.point_face_dist_forward(
            points[chunk],
            torch.arange(len(chunk)),
            tris[candidates].contiguous(),
            starts,
            1,
            _MIN_TRIANGLE_AREA,
        )
        nearest[chunk] = candidates[hit]
    return nearest


def _size_classes(tris: torch.Tensor) -> list[tuple[np.ndarray, cKDTree, float]]:
    """Triangles grouped by radius (largest vertex distance from the centroid) in factors of 2.

    Returns, per class: the triangle indices, a k-d tree of their centroids, the largest radius.
    """
    centroids = tris.mean(dim=1)
    radii = (tris - centroids[:, None]).norm(dim=-1).amax(dim=1)
    ratio = radii.max() / radii.clamp_min(torch.finfo(radii.dtype).tiny)
    level = ratio.log2().floor().clamp(0, _SIZE_CLASSES - 1).long()
    classes = []
    for value in level.unique():
        ids = (level == value).nonzero()[:, 0]
        classes.append((ids.numpy(), cKDTree(centroids[ids].numpy()), radii[ids].max().item()))
    return classes


def _candidates(
    classes: list[tuple[np.ndarray, cKDTree, float]], query: np.ndarray, radii: list[np.ndarray]
) -> tuple[np.ndarray, torch.Tensor]:
    """Triangles of each class whose centroid lies within that class's radius of each point.

    Returns the number of candidates per point ``(n,)`` and their indices, grouped by point.
    """
    owners, faces = [], []
    for (ids, tree, _), radius in zip(classes, radii, strict=True):
        found = tree.query_ball_point(query, radius, workers=-1)
        counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        owners.append(np.repeat(np.arange(len(query)), counts))
        faces.append(ids[np.fromiter(itertools.chain.from_iterable(found), np.int64, counts.sum())])
    owner = np.concatenate(owners)
    grouped = np.concatenate(faces)[np.argsort(owner, kind="stable")]
    return np.bincount(owner, minlength=len(query)), torch.from_numpy(grouped)


def _exhaustive_nearest(points: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Nearest triangle of every point by comparing it with all triangles."""
    start = torch.zeros(1, dtype=torch.long, device=points.device)
    _, hit = _C.point_face_dist_forward(points, start, tris, start, len(points), _MIN_TRIANGLE_AREA)
    return hit


def _abs_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|cos|`` of the angle between corresponding vectors ``(..., 3)`` (0 for a zero vector)."""
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).abs()


def _as_meshes(vertices_name: str, vertices: MeshVertices, faces_name: str, faces: MeshFaces) -> Meshes:
    """Validate padded or listed vertices/faces and wrap them in a PyTorch3D ``Meshes``."""
    if isinstance(vertices, torch.Tensor):
        verts_list = list(check_points(vertices_name, vertices, "(B, V, 3)"))
    elif isinstance(vertices, Sequence) and len(vertices) > 0:
        verts_list = [check_points(f"{vertices_name}[{i}]", v, "(V, 3)") for i, v in enumerate(vertices)]
    else:
        raise ValueError(
            f"{vertices_name} must be a (B, V, 3) tensor or a non-empty list of (V_i, 3) tensors, "
            f"got {type(vertices).__name__}"
        )
    if isinstance(faces, torch.Tensor) and faces.ndim == 2:
        faces_list = [faces] * len(verts_list)
    elif (isinstance(faces, torch.Tensor) and faces.ndim == 3) or (
        isinstance(faces, Sequence) and not isinstance(faces, torch.Tensor)
    ):
        faces_list = list(faces)
    else:
        shape = tuple(faces.shape) if isinstance(faces, torch.Tensor) else type(faces).__name__
        raise ValueError(
            f"{faces_name} must be a (B, F, 3) tensor, one (F, 3) tensor shared by the batch, "
            f"or a list of (F_i, 3) tensors, got {shape}"
        )
    if len(faces_list) != len(verts_list):
        raise ValueError(
            f"{faces_name} holds {len(faces_list)} meshes but {vertices_name} holds "
            f"{len(verts_list)}: give one face array per mesh"
        )
    for i, (verts, tri) in enumerate(zip(verts_list, faces_list, strict=True)):
        _check_faces(f"{faces_name}[{i}]", tri, len(verts))
    return Meshes(verts=verts_list, faces=[tri.long() for tri in faces_list])


def _check_faces(name: str, faces: object, num_vertices: int) -> None:
    """Faces must be an integer ``(F, 3)`` tensor with indices in ``[0, V)`` (or ``-1`` padding)."""
    if not isinstance(faces, torch.Tensor) or faces.is_floating_point() or faces.is_complex():
        raise TypeError(f"{name} must be an integer torch.Tensor of shape (F, 3), got {faces!r:.80}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{name} must have shape (F, 3), got {tuple(faces.shape)}")
    real = faces[(faces >= 0).all(dim=1)]
    if len(real) == 0:
        raise ValueError(f"{name} has no triangles: a surface metric needs at least one face")
    if (faces < -1).any() or (faces == -1).any(dim=1).ne((faces == -1).all(dim=1)).any():
        raise ValueError(f"{name}: indices must be >= 0 (whole rows of -1 mark padding)")
    if int(real.max()) >= num_vertices:
        raise ValueError(f"{name} refers to vertex {int(real.max())} but its mesh has {num_vertices} vertices")


def _check_batch(name_a: str, size_a: int, name_b: str, size_b: int) -> None:
    """Raise ``ValueError`` unless two batch sizes agree."""
    if size_a != size_b:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {size_a} and {size_b}")
