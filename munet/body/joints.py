"""Named joint sets shared by every body backend and by the metrics.

The metric joint set is COCO-17 (the order of the COCO keypoint challenge). Its root (pelvis) is
defined as the midpoint of the two hips, so that root alignment means the same for Anny and SMPL.
"""

from __future__ import annotations

import torch

COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
"""The 17 COCO keypoints, in COCO order."""

COCO17_PELVIS: tuple[int, int] = (11, 12)
"""Indices (left hip, right hip) whose midpoint is the pelvis/root of the COCO-17 set."""

COCO17_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
"""Index permutation that swaps left and right (for horizontal-flip augmentation)."""

COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 6),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
)
"""Bones drawn in overlays."""


def pelvis(joints: torch.Tensor) -> torch.Tensor:
    """Pelvis (root) of COCO-17 joints: mean of the hips. ``(..., 17, D) -> (..., D)``."""
    if joints.shape[-2] != len(COCO17_NAMES):
        raise ValueError(f"expected COCO-17 joints (..., 17, D), got shape {tuple(joints.shape)}")
    return joints[..., list(COCO17_PELVIS), :].mean(dim=-2)
