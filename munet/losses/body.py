"""Body losses: vertices, 3D joints, 2D reprojection and body-model parameters.

All are means over the batch (and points), so they do not grow with the batch size. Distances are
in metres; the reprojection error is in normalised image coordinates (the crop spans ``[-1, 1]``).
A ``weight`` counts only the samples (``(B,)``) or joints (``(B, J)``) whose target is real
(:func:`munet.losses.weighting.weighted_mean`; ``None``: all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from munet.body import pelvis
from munet.geometry import project
from munet.losses.weighting import weighted_mean
from munet.metrics.joints import similarity_procrustes
from munet.model.camera import pixels_to_normalized


def _same_shape(name: str, pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: prediction {tuple(pred.shape)} and target {tuple(gt.shape)} differ in shape")


def vertex_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    pred_root: torch.Tensor,
    gt_root: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean absolute coordinate error (L1) of root-aligned mesh vertices, metres.

    Args:
        pred, gt: ``(B, V, 3)`` meshes of one topology.
        pred_root, gt_root: ``(B, 3)`` their roots (the pelvis), subtracted before comparing.
        weight: ``(B,)`` samples that count.
    """
    _same_shape("vertex_loss", pred, gt)
    return weighted_mean((pred - pred_root[:, None] - (gt - gt_root[:, None])).abs(), weight)


def joint_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute coordinate error (L1) of COCO-17 joints ``(B, 17, 3)``, each skeleton
    aligned on its pelvis (the midpoint of the hips), metres; ``weight`` ``(B, 17)`` the joints
    that count (a sample's hips must be real for its pelvis to be)."""
    _same_shape("joint_loss", pred, gt)
    return weighted_mean((pred - pelvis(pred)[:, None] - (gt - pelvis(gt)[:, None])).abs(), weight)


def reprojection_loss(
    pred_joints: torch.Tensor,
    K: torch.Tensor,
    gt_joints_2d: torch.Tensor,
    image_size: int,
    weight: torch.Tensor | None = None,
    orthographic: torch.Tensor | None = None,
) -> torch.Tensor:
    """L1 error of projected joints in normalised image coordinates.

    Args:
        pred_joints: ``(B, J, 3)`` camera-frame joints, metres.
        K: ``(B, 3, 3)`` intrinsics, pixels.
        gt_joints_2d: ``(B, J, 2)`` target pixels.
        image_size: side ``S`` of the crop, pixels.
        weight: ``(B, J)`` joints that count.
        orthographic: ``(B,)`` flag, nonzero where ``K`` is orthographic (``None``: all
            perspective; :func:`munet.geometry.project`).
    """
    pred_2d = project(pred_joints, K, orthographic)
    _same_shape("reprojection_loss", pred_2d, gt_joints_2d)
    error = pixels_to_normalized(pred_2d, image_size) - pixels_to_normalized(gt_joints_2d, image_size)
    return weighted_mean(error.abs(), weight)


def param_loss(
    pred_pose: torch.Tensor,
    pred_shape: torch.Tensor,
    gt_pose: torch.Tensor,
    gt_shape: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error of the body-model pose (axis-angle, radians) plus that of the shape;
    ``weight`` ``(B,)`` the samples that count."""
    _same_shape("param_loss (pose)", pred_pose, gt_pose)
    _same_shape("param_loss (shape)", pred_shape, gt_shape)
    return weighted_mean((pred_pose - gt_pose).square(), weight) + weighted_mean(
        (pred_shape - gt_shape).square(), weight
    )


def orientation_target(template_joints: torch.Tensor, gt_joints: torch.Tensor) -> torch.Tensor:
    """The global orientation of ground-truth bodies: the rotation ``(B, 3, 3)`` that best aligns
    the template's skeleton ``(J, 3)`` (its own frame) with each ``gt_joints`` ``(B, J, 3)``
    (similarity Procrustes over all joints; no gradient)."""
    with torch.no_grad():
        source = template_joints.to(gt_joints.dtype).expand(gt_joints.shape[0], -1, -1)
        return similarity_procrustes(source, gt_joints)[1]


def orientation_loss(
    pred_rotation: torch.Tensor, gt_rotation: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute difference of the entries of the predicted global orientation ``(B, 3, 3)``
    and the ground truth's (:func:`orientation_target`); dimensionless, 0.1 is about 8° about one
    axis; ``weight`` ``(B,)`` the samples that count."""
    return weighted_mean((pred_rotation - gt_rotation).abs(), weight)


def turned_only(points: torch.Tensor, root: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Root-relative camera-frame points whose only gradient path is the global orientation.

    The points are turned back into the body's own frame, detached there, and turned again by
    ``rotation``: the values are ``points - root``, but a loss on them moves the orientation and
    never bends the articulated shape to make up for an orientation error.

    Args:
        points: ``(B, N, 3)`` camera-frame points (vertices or joints), metres.
        root: ``(B, 3)`` their root (the pelvis).
        rotation: ``(B, 3, 3)`` the predicted global orientation (body frame → camera).
    """
    local = (points - root[:, None]) @ rotation
    return local.detach() @ rotation.transpose(1, 2)


def canonical_vertex_loss(
    pred: torch.Tensor,
    pred_root: torch.Tensor,
    pred_rotation: torch.Tensor,
    gt: torch.Tensor,
    gt_root: torch.Tensor,
    gt_rotation: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean absolute coordinate error (L1, metres) of root-aligned meshes, each turned back into
    its own body frame: the articulated shape alone, whatever the error of the orientation.

    Args:
        pred, gt: ``(B, V, 3)`` camera-frame meshes of one topology.
        pred_root, gt_root: ``(B, 3)`` their roots.
        pred_rotation: ``(B, 3, 3)`` the predicted global orientation (body frame → camera).
        gt_rotation: ``(B, 3, 3)`` the ground truth's (:func:`orientation_target`).
        weight: ``(B,)`` samples that count.
    """
    _same_shape("canonical_vertex_loss", pred, gt)
    pred_canonical = (pred - pred_root[:, None]) @ pred_rotation
    gt_canonical = (gt - gt_root[:, None]) @ gt_rotation
    return weighted_mean((pred_canonical - gt_canonical).abs(), weight)


def heatmap_loss(
    logits: torch.Tensor,
    joints_2d: torch.Tensor,
    image_size: int,
    sigma: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL divergence from a Gaussian around each true joint to the predicted heatmap, over cells.

    The target of a joint is a Gaussian of ``sigma`` cells around its pixel position on the
    ``h × w`` grid of cells that tile the crop, normalised to sum to 1; the prediction is the
    softmax of its logits over the cells. Joints outside the crop are left out. 0 for a perfect
    prediction.

    Args:
        logits: ``(B, J, h, w)`` heatmap logits (:class:`munet.model.keypoints.KeypointHead`).
        joints_2d: ``(B, J, 2)`` true joints in pixels of the ``image_size`` crop.
        image_size: the crop's side ``S``, pixels.
        sigma: the target's standard deviation, cells.
        weight: ``(B, J)`` joints that count (``None``: all).
    """
    batch, joints, h, w = logits.shape
    if joints_2d.shape != (batch, joints, 2):
        raise ValueError(f"heatmap_loss: logits {tuple(logits.shape)} and joints {tuple(joints_2d.shape)} disagree")
    # Cell centres in pixels (pixel centres at integers; cell i spans [i, i + 1) * S / w - 0.5).
    xs = (torch.arange(w, device=logits.device, dtype=logits.dtype) + 0.5) * image_size / w - 0.5
    ys = (torch.arange(h, device=logits.device, dtype=logits.dtype) + 0.5) * image_size / h - 0.5
    cell = image_size / w
    dx = (xs[None, None, None, :] - joints_2d[..., 0, None, None]) / cell
    dy = (ys[None, None, :, None] - joints_2d[..., 1, None, None]) / cell
    target = torch.exp(-0.5 * (dx.square() + dy.square()) / sigma**2).flatten(2)
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
    inside = ((joints_2d >= -0.5) & (joints_2d <= image_size - 0.5)).all(-1).to(logits.dtype)
    if weight is not None:
        inside = inside * weight.to(logits.dtype)
    log_predicted = F.log_softmax(logits.flatten(2), dim=-1)
    kl = (target * (torch.log(target.clamp_min(1e-12)) - log_predicted)).sum(-1)
    return (kl * inside).sum() / inside.sum().clamp_min(1.0)
