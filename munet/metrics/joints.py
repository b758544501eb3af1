"""Correspondence metrics of the body: MPJPE, PA-MPJPE (joints) and PVE (mesh vertices).

All inputs are in metres, all errors are returned per sample in millimetres, shape ``(B,)``:
average over the batch yourself (``.mean()``) so that datasets of uneven batches stay exact.
Every function is differentiable and works on any device and floating dtype.

Root alignment follows the usual HMR protocol: both skeletons are translated so that their roots
coincide before the error is measured. For COCO-17 joints the root is the pelvis, the midpoint of
the two hips (:data:`COCO_PELVIS`), the same definition :mod:`munet.body` uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from munet.body.joints import COCO17_PELVIS
from munet.metrics._checks import check_points, check_same_shape

COCO_PELVIS: tuple[int, int] = COCO17_PELVIS
"""COCO-17 indices (left hip, right hip) whose midpoint is the root used by :func:`mpjpe`."""

Root = int | Sequence[int] | None
"""A root joint: one index, several indices whose mean is the root, or ``None`` (no alignment)."""

_M_TO_MM = 1000.0


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, root: Root = COCO_PELVIS) -> torch.Tensor:
    """Mean per-joint position error after root alignment, in millimetres.

    Args:
        pred: predicted joints ``(B, J, 3)``, metres.
        gt: ground-truth joints ``(B, J, 3)``, metres.
        root: joint index, or indices averaged into the root (default: COCO-17 pelvis, the hip
            midpoint); ``None`` measures the error in the camera frame with no alignment.

    Returns:
        ``(B,)`` mean Euclidean joint error per sample, mm.

    Raises:
        ValueError: shapes differ or are not ``(B, J, 3)``, NaN/inf, or a root index ``>= J``.
    """
    check_points("pred", pred, "(B, J, 3)")
    check_points("gt", gt, "(B, J, 3)")
    check_same_shape("pred", pred, "gt", gt)
    if root is not None:
        index = _root_index(root, pred.shape[1])
        pred = pred - pred[:, index].mean(dim=1, keepdim=True)
        gt = gt - gt[:, index].mean(dim=1, keepdim=True)
    return _mean_distance_mm(pred, gt)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after the similarity Procrustes alignment of ``pred`` onto ``gt``, in millimetres.

    The alignment (rotation, uniform scale, translation; never a reflection) is solved per
    sample by :func:`similarity_procrustes`, so this measures the error of the articulated pose
    alone. Differentiable through the SVD.

    Args:
        pred: predicted joints ``(B, J, 3)``, metres.
        gt: ground-truth joints ``(B, J, 3)``, metres.

    Returns:
        ``(B,)`` mean Euclidean joint error per sample after alignment, mm.
    """
    check_points("pred", pred, "(B, J, 3)")
    check_points("gt", gt, "(B, J, 3)")
    check_same_shape("pred", pred, "gt", gt)
    aligned, _, _, _ = similarity_procrustes(pred, gt)
    return _mean_distance_mm(aligned, gt)


def similarity_procrustes(
    src: torch.Tensor, dst: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform of ``src`` onto ``dst`` (Umeyama 1991), batched.

    Finds, per sample, the rotation ``R`` (``det R = +1``: a reflection is never returned, even
    when one would fit better), scale ``s > 0`` and translation ``t`` minimising
    ``sum_n |s R src_n + t - dst_n|^2``.

    Args:
        src: ``(B, N, 3)`` points to move.
        dst: ``(B, N, 3)`` corresponding target points.

    Returns:
        ``(aligned, R, s, t)``: ``aligned = s * src @ R.T + t`` of shape ``(B, N, 3)``,
        ``R`` ``(B, 3, 3)``, ``s`` ``(B,)``, ``t`` ``(B, 3)``. A sample whose ``src`` points all
        coincide gets ``s = 0`` (every point maps to the centroid of ``dst``).
    """
    check_points("src", src)
    check_points("dst", dst)
    check_same_shape("src", src, "dst", dst)
    src_mean = src.mean(dim=1, keepdim=True)
    dst_mean = dst.mean(dim=1, keepdim=True)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    cross_cov = dst_c.transpose(1, 2) @ src_c / src.shape[1]  # (B, 3, 3): E[dst src^T]
    u, sigma, vh = torch.linalg.svd(cross_cov)
    # Flip the weakest axis when U V^T is a reflection, so that R is a proper rotation.
    flip = torch.where(torch.det(u) * torch.det(vh) < 0, -1.0, 1.0).to(src.dtype)
    signs = torch.cat([torch.ones_like(sigma[:, :2]), flip[:, None]], dim=1)
    rotation = u @ (signs[:, :, None] * vh)
    src_var = src_c.square().sum(dim=(1, 2)) / src.shape[1]
    scale = (sigma * signs).sum(dim=1) / src_var.clamp_min(torch.finfo(src.dtype).tiny)
    rotated_mean = (src_mean @ rotation.transpose(1, 2))[:, 0]
    translation = dst_mean[:, 0] - scale[:, None] * rotated_mean
    aligned = scale[:, None, None] * (src @ rotation.transpose(1, 2)) + translation[:, None, :]
    return aligned, rotation, scale, translation


def pve(
    pred_vertices: torch.Tensor,
    gt_vertices: torch.Tensor,
    root_pred: torch.Tensor | None = None,
    root_gt: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-vertex error of meshes in correspondence (same topology), after root alignment, in mm.

    The standard protocol aligns each mesh by its pelvis: pass the pelvis of each skeleton as
    ``root_pred`` / ``root_gt`` (e.g. ``munet.body.pelvis(joints)``). With no roots, each mesh is
    aligned by its vertex centroid instead (a pure translation-invariant error; values are then
    not comparable with pelvis-aligned PVE from the literature).

    Args:
        pred_vertices: ``(B, V, 3)`` predicted vertices, metres.
        gt_vertices: ``(B, V, 3)`` ground-truth vertices of the same topology, metres.
        root_pred: ``(B, 3)`` root of the prediction, or ``None``.
        root_gt: ``(B, 3)`` root of the ground truth, or ``None``; give both roots or neither.

    Returns:
        ``(B,)`` mean Euclidean vertex error per sample, mm.
    """
    check_points("pred_vertices", pred_vertices, "(B, V, 3)")
    check_points("gt_vertices", gt_vertices, "(B, V, 3)")
    check_same_shape("pred_vertices", pred_vertices, "gt_vertices", gt_vertices)
    if (root_pred is None) != (root_gt is None):
        raise ValueError("pve: give both root_pred and root_gt (each (B, 3)), or neither")
    if root_pred is None or root_gt is None:
        root_pred = pred_vertices.mean(dim=1)
        root_gt = gt_vertices.mean(dim=1)
    batch = pred_vertices.shape[0]
    for name, root in (("root_pred", root_pred), ("root_gt", root_gt)):
        check_points(name, root, "(B, 3)")
        if root.shape[0] != batch:
            raise ValueError(f"{name} must have shape ({batch}, 3), got {tuple(root.shape)}")
    return _mean_distance_mm(pred_vertices - root_pred[:, None], gt_vertices - root_gt[:, None])


def _root_index(root: int | Sequence[int], num_joints: int) -> list[int]:
    """Validate ``root`` against ``num_joints`` and return it as a list of indices."""
    index = [root] if isinstance(root, int) else list(root)
    if not index or not all(isinstance(i, int) and -num_joints <= i < num_joints for i in index):
        raise ValueError(
            f"root must be a joint index or a non-empty sequence of indices in [0, {num_joints}) "
            f"for joints of shape (B, {num_joints}, 3), got {root!r}"
        )
    return index


def _mean_distance_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between corresponding points ``(B, N, 3)``, metres → mm ``(B,)``."""
    return (a - b).norm(dim=-1).mean(dim=-1) * _M_TO_MM
