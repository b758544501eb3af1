"""Limb rotations in the image plane, for fitting a predicted body to a silhouette.

A silhouette shows where each limb points in the image, not how it turns in depth. So each limb
segment (upper arm, forearm with hand, thigh, shin with foot) gets one angle: a rotation about the
camera's viewing axis through its proximal joint (shoulder, elbow, hip, knee), with the rest of the
limb carried along. Vertices blend between segments near a joint (memberships are the part labels
diffused over the graph), so the mesh bends instead of tearing and stays 2-manifold.
"""

from __future__ import annotations

import torch

from munet.body import COCO17_NAMES
from munet.graph import SparseOperator
from munet.model.templates import PART_NAMES

LIMBS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(f"{side}_{part}" for part in parts), f"{side}_{joint}")
    for side in ("left", "right")
    for parts, joint in (
        (("forearm", "hand"), "elbow"),
        (("upper_arm", "forearm", "hand"), "shoulder"),
        (("shin", "foot"), "knee"),
        (("thigh", "shin", "foot"), "hip"),
    )
)
"""``(parts moved, pivot joint)`` of each angle, every distal segment before its parent, so that
applying them in order turns a forearm about the rest elbow and then the whole arm about the
shoulder."""
PIVOTS = tuple(COCO17_NAMES.index(joint) for _, joint in LIMBS)
"""COCO-17 index of each angle's pivot joint."""
BLEND_ROUNDS = 2
"""Rounds of graph smoothing that soften the part labels into memberships."""


def limb_memberships(parts: torch.Tensor, smoothing: SparseOperator, rounds: int = BLEND_ROUNDS) -> torch.Tensor:
    """``(V, K)`` soft membership in [0, 1] of every vertex in the segment set of each angle.

    Args:
        parts: ``(V,)`` part index (:data:`~munet.model.templates.PART_NAMES`) of each vertex.
        smoothing: row-normalised adjacency of the graph, ``(V, V)``.
        rounds: smoothing rounds (more blends over a wider band around each joint).
    """
    moved = torch.zeros(len(PART_NAMES), len(LIMBS), device=parts.device)
    for k, (names, _) in enumerate(LIMBS):
        moved[[PART_NAMES.index(n) for n in names], k] = 1.0
    membership = moved[parts][None]
    for _ in range(rounds):
        membership = smoothing(membership)
    return membership[0].clamp(0.0, 1.0)


def articulate(
    points: torch.Tensor, memberships: torch.Tensor, pivots: torch.Tensor, angles: torch.Tensor
) -> torch.Tensor:
    """Turn each limb in the image plane.

    Args:
        points: ``(B, N, 3)`` camera-frame points.
        memberships: ``(N, K)`` from :func:`limb_memberships` (carried to these points).
        pivots: ``(B, K, 3)`` each angle's joint.
        angles: ``(B, K)`` radians, about the camera's z axis (positive turns x towards y).

    Returns:
        ``(B, N, 3)``: angle ``k`` applied with weight ``memberships[:, k]``, in the order of :data:`LIMBS`.
    """
    xy, z = points[..., :2], points[..., 2:]
    for k in range(len(LIMBS)):
        turn = angles[:, k, None] * memberships[None, :, k]  # (B, N)
        cos, sin = torch.cos(turn), torch.sin(turn)
        d = xy - pivots[:, k, None, :2]
        xy = pivots[:, k, None, :2] + torch.stack(
            [cos * d[..., 0] - sin * d[..., 1], sin * d[..., 0] + cos * d[..., 1]], dim=-1
        )
    return torch.cat([xy, z], dim=-1)
