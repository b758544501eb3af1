"""Evaluation metrics: body (MPJPE, PA-MPJPE, PVE in mm; global orientation in degrees) and
clothed surface (Chamfer, P2S, normal consistency; cm, ICON protocol). Inputs are in metres;
every metric returns one value per sample.

>>> mpjpe(pred_joints, gt_joints)                      # (B,) mm, pelvis-aligned (COCO-17 hips)
>>> pa_mpjpe(pred_joints, gt_joints)                   # (B,) mm, after similarity Procrustes
>>> orientation_error(pred_joints, gt_joints)          # (B,) degrees between the torso frames
>>> pve(pred_verts, gt_verts, pelvis(pred_j), pelvis(gt_j))
>>> chamfer_p2s(pred_v, pred_f, gt_v, gt_f, seed=0)  # {chamfer_cm, p2s_cm, normal_consistency}
>>> fraction_on_mask(pred_verts[0], K, person_mask)    # share of the projected mesh on the person
"""

from munet.metrics._checks import without_finite_checks
from munet.metrics.icon import icon_scale, icon_surface_metrics, normal_render_error
from munet.metrics.image import fraction_on_mask
from munet.metrics.joints import COCO_PELVIS, mpjpe, pa_mpjpe, pve, similarity_procrustes
from munet.metrics.orientation import orientation_error, torso_frame
from munet.metrics.protocols import (
    AUC_THRESHOLDS_MM,
    H36M17_NAMES,
    H36M_TO_LSP14,
    H36M_TO_MPI3DHP17,
    JOINT_SETS,
    LSP14_NAMES,
    LSP14_PELVIS,
    MPI3DHP17_NAMES,
    MPI3DHP17_ROOT,
    MPI3DHP_PCK_JOINTS,
    PCK_THRESHOLD_MM,
    PROTOCOLS,
    Protocol,
    load_joint_regressor,
    lsp14_errors,
    lsp14_from_h36m,
    lsp14_from_mesh,
    mpi3dhp_errors,
    mpi17_from_h36m,
    mpi17_from_mesh,
    regress_h36m,
)
from munet.metrics.surface import chamfer_p2s, point_to_surface_distance

BODY_METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm")
"""Per-sample body errors, millimetres (lower is better)."""
CLOTH_METRICS = ("chamfer_cm", "p2s_cm")
"""Per-sample clothed-surface errors, centimetres (lower is better)."""
METRIC_KEYS = (
    *BODY_METRICS,
    "orientation_deg",
    *CLOTH_METRICS,
    "normal_consistency",
    "body_on_mask",
)
"""Every per-sample metric of an evaluation, by name (the keys of the evaluation's rows and
summaries): the body errors, the global-orientation error (degrees), the clothed errors, normal
consistency (higher is better) and the share of the projected body on the person mask."""

__all__ = [
    "BODY_METRICS",
    "CLOTH_METRICS",
    "COCO_PELVIS",
    "METRIC_KEYS",
    "chamfer_p2s",
    "fraction_on_mask",
    "icon_scale",
    "icon_surface_metrics",
    "normal_render_error",
    "mpjpe",
    "orientation_error",
    "pa_mpjpe",
    "point_to_surface_distance",
    "pve",
    "similarity_procrustes",
    "without_finite_checks",
    "torso_frame",
    # benchmark protocols (munet.metrics.protocols)
    "AUC_THRESHOLDS_MM",
    "H36M17_NAMES",
    "H36M_TO_LSP14",
    "H36M_TO_MPI3DHP17",
    "JOINT_SETS",
    "LSP14_NAMES",
    "LSP14_PELVIS",
    "MPI3DHP17_NAMES",
    "MPI3DHP17_ROOT",
    "MPI3DHP_PCK_JOINTS",
    "PCK_THRESHOLD_MM",
    "PROTOCOLS",
    "Protocol",
    "load_joint_regressor",
    "lsp14_errors",
    "lsp14_from_h36m",
    "lsp14_from_mesh",
    "mpi3dhp_errors",
    "mpi17_from_h36m",
    "mpi17_from_mesh",
    "regress_h36m",
]
