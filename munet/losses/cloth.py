"""Clothed-surface losses: Chamfer, point-to-surface, normals, edge length, Laplacian.

The prediction is a mesh (vertices on the cloth graph); the target is a fixed-size set of points
with unit normals sampled on the ground-truth clothed surface. All inputs are in one frame (the
caller root-aligns them), metres; every loss is a mean, so it does not grow with the batch size.
The losses against a target take a ``weight`` ``(B,)``: the samples that have one
(:func:`munet.losses.weighting.weighted_mean`; ``None``: all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from munet.geometry import uniform_laplacian
from munet.losses.nearest import gather_points, nearest_indices
from munet.losses.weighting import weighted_mean
from munet.metrics import point_to_surface_distance

_TINY = 1e-12
"""Added under square roots so a zero distance has a zero (not NaN) gradient."""


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b).square().sum(dim=-1) + _TINY).sqrt()


def chamfer_and_normal_loss(
    pred_vertices: torch.Tensor,
    pred_normals: torch.Tensor,
    gt_points: torch.Tensor,
    gt_normals: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chamfer distance and normal inconsistency between predicted vertices and target points.

    Each point is matched with its nearest neighbour in the other set (both directions).

    - Chamfer: ``(mean_p |p - nn(p)| + mean_q |q - nn(q)|) / 2`` — mean Euclidean (not squared)
      nearest-neighbour distance, averaged over the two directions, metres.
    - Normal: ``1 - cos`` between each point's normal and its neighbour's, averaged the same way
      (0 when all matched normals agree, 2 when all are opposite).

    Args:
        pred_vertices, pred_normals: ``(B, V, 3)`` predicted vertices and unit vertex normals.
        gt_points, gt_normals: ``(B, N, 3)`` target points and unit normals.
        weight: ``(B,)`` samples that count.
    """
    to_gt = nearest_indices(pred_vertices, gt_points)
    to_pred = nearest_indices(gt_points, pred_vertices)
    chamfer = 0.5 * (
        weighted_mean(_distance(pred_vertices, gather_points(gt_points, to_gt)), weight)
        + weighted_mean(_distance(gt_points, gather_points(pred_vertices, to_pred)), weight)
    )
    cos_pred = F.cosine_similarity(pred_normals, gather_points(gt_normals, to_gt), dim=-1)
    cos_gt = F.cosine_similarity(gt_normals, gather_points(pred_normals, to_pred), dim=-1)
    normal = 0.5 * (weighted_mean(1.0 - cos_pred, weight) + weighted_mean(1.0 - cos_gt, weight))
    return chamfer, normal


def point_to_surface_loss(
    gt_points: torch.Tensor, pred_vertices: torch.Tensor, faces: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean Euclidean distance from the target points ``(B, N, 3)`` to the predicted triangle
    surface (``pred_vertices`` ``(B, V, 3)``, ``faces`` ``(F, 3)``), metres, over the samples that
    ``weight`` ``(B,)`` counts. Exact (nearest point on any triangle,
    :func:`munet.metrics.point_to_surface_distance`); NaN if an input is not finite."""
    if not (torch.isfinite(gt_points).all() and torch.isfinite(pred_vertices).all()):
        return pred_vertices.new_tensor(float("nan"))
    return weighted_mean(point_to_surface_distance(gt_points, pred_vertices, faces), weight)


def edge_loss(vertices: torch.Tensor, reference: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean squared relative change of edge lengths, ``mean((|e| / |e_ref| - 1)²)`` (unitless).

    Args:
        vertices: ``(B, V, 3)`` the deformed mesh.
        reference: ``(B, V, 3)`` the same graph before deformation (e.g. the body under the
            clothes); its lengths are treated as constants.
        edges: ``(E, 2)`` long vertex pairs.
    """

    def lengths(v: torch.Tensor) -> torch.Tensor:
        return _distance(v[:, edges[:, 0]], v[:, edges[:, 1]])

    ratio = lengths(vertices) / lengths(reference.detach()).clamp_min(1e-6)
    return (ratio - 1.0).square().mean()


def laplacian_loss(field: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean norm of the uniform graph Laplacian of a per-vertex field ``(B, V, C)``.

    ``L(f)_i = f_i - mean_{j ~ i} f_j`` over the graph neighbours of ``i`` given by ``edges``
    ``(E, 2)`` (:func:`munet.geometry.uniform_laplacian`). Applied to the clothed displacements it
    asks for a smooth offset field (a clothed surface that follows the body's detail), rather than
    a flat surface.
    """
    laplacian = uniform_laplacian(field, edges)
    return _distance(laplacian, torch.zeros_like(laplacian)).mean()
