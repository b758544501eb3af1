"""Global orientation error of the body: the rotation between the predicted and true torso frames.

MPJPE aligns the pelvis and PA-MPJPE removes any rotation, so neither says whether the network
saw which way the person faces; this metric measures exactly that. The torso frame of COCO-17
joints (:func:`torso_frame`) is built from the hips and shoulders only, so limb errors do not
enter it, and it is unchanged by translation and by uniform scale. The error is the geodesic
distance on SO(3) between the two frames, the angle of ``R_pred R_gt^T``, in degrees in
[0, 180]: a person predicted facing the camera while showing their back scores 180.

A few large errors (front/back confusions) dominate its mean: report the median.
"""

from __future__ import annotations

import torch
from pytorch3d.transforms import matrix_to_axis_angle

from munet.body.joints import COCO17_NAMES, COCO17_PELVIS
from munet.metrics._checks import check_points, check_same_shape

_LEFT_HIP, _RIGHT_HIP = COCO17_PELVIS
_SHOULDERS = (COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("right_shoulder"))


def torso_frame(joints: torch.Tensor) -> torch.Tensor:
    """Orthonormal body frame of COCO-17 joints, from the hips and shoulders.

    The columns are, in the joints' own coordinates: ``up``, the unit vector from the hip
    midpoint to the shoulder midpoint; ``left``, the right-to-left hip direction with its
    ``up`` component removed (Gram-Schmidt: the spine is the longer, better-defined axis); and
    ``left × up``, which points out of the person's front. The frame is undefined (its columns
    are not unit vectors) when the hips coincide or the hip axis is parallel to the spine.

    Args:
        joints: ``(B, 17, 3)`` COCO-17 joints, any unit.

    Returns:
        ``(B, 3, 3)`` rotation matrices ``[left, up, front]`` (columns), ``det = +1``.
    """
    check_points("joints", joints, "(B, 17, 3)")
    if joints.shape[1] != len(COCO17_NAMES):
        raise ValueError(f"joints must be COCO-17 (B, 17, 3), got shape {tuple(joints.shape)}")
    hips = joints[:, list(COCO17_PELVIS)].mean(dim=1)
    shoulders = joints[:, list(_SHOULDERS)].mean(dim=1)
    up = torch.nn.functional.normalize(shoulders - hips, dim=-1)
    across = joints[:, _LEFT_HIP] - joints[:, _RIGHT_HIP]
    left = torch.nn.functional.normalize(across - (across * up).sum(-1, keepdim=True) * up, dim=-1)
    front = torch.linalg.cross(left, up, dim=-1)
    return torch.stack([left, up, front], dim=-1)


def orientation_error(pred_joints: torch.Tensor, gt_joints: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between the predicted and ground-truth torso frames, in degrees.

    Both frames come from :func:`torso_frame`; the error is the rotation angle of
    ``R_pred R_gt^T``, the length of its axis-angle vector (PyTorch3D's ``matrix_to_axis_angle``,
    through a quaternion and ``atan2``, so that it stays accurate near 0° and 180°, where
    ``arccos`` of the trace loses precision). Translation and uniform scale of either skeleton do
    not change it; neither do the limbs or the head.

    Args:
        pred_joints: predicted COCO-17 joints ``(B, 17, 3)``, metres (any unit, same for both).
        gt_joints: ground-truth COCO-17 joints ``(B, 17, 3)``.

    Returns:
        ``(B,)`` angles in degrees, in [0, 180].

    Raises:
        ValueError: shapes differ or are not ``(B, 17, 3)``, or an input holds NaN/inf.
    """
    check_points("pred_joints", pred_joints, "(B, 17, 3)")
    check_points("gt_joints", gt_joints, "(B, 17, 3)")
    check_same_shape("pred_joints", pred_joints, "gt_joints", gt_joints)
    relative = torso_frame(pred_joints) @ torso_frame(gt_joints).transpose(1, 2)
    return torch.rad2deg(matrix_to_axis_angle(relative).norm(dim=-1))
