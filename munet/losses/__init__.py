"""MuNet's losses: body, clothed and body/cloth consistency terms, weighted by scheduled weights.

>>> terms = compute_losses(output, batch, config.loss, step, model.templates.cloth, model.template_joints)
>>> terms["total"].backward()                   # terms also holds every unweighted term by name

Term names are the fields of :class:`~munet.config.LossConfig`; each weight is a
:class:`~munet.config.Schedule` evaluated at ``step``. Frames: body terms align each skeleton on its
own pelvis; clothed and consistency terms compare root-relative surfaces (the predicted clothed
mesh relative to the pelvis of the body it was built on, the target points relative to the
ground-truth pelvis), so the camera translation is learnt from the 2D reprojection alone (through
each sample's camera: the batch's ``orthographic`` flag, absent meaning all perspective).

Partial supervision: the batch's flags (:mod:`munet.data.contract`; absent flags mean every target
is real) weigh each term by the samples or joints that have its target
(:func:`supervision_weights`); a term no sample of the batch can compute is 0.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

from munet.body import COCO17_PELVIS, pelvis
from munet.config import LossConfig
from munet.geometry import vertex_normals
from munet.graph import MeshGraph
from munet.losses.body import (
    canonical_vertex_loss,
    heatmap_loss,
    joint_loss,
    orientation_loss,
    orientation_target,
    param_loss,
    reprojection_loss,
    turned_only,
    vertex_loss,
)
from munet.losses.cloth import chamfer_and_normal_loss, edge_loss, laplacian_loss, point_to_surface_loss
from munet.losses.consistency import inside_loss, tight_loss
from munet.schedules import schedule_value

if TYPE_CHECKING:
    from munet.model.network import MuNetOutput

TERMS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LossConfig))
"""Names of the loss terms, in the order of :class:`~munet.config.LossConfig`."""

REQUIRED_KEYS = ("image", "K", "body_vertices", "body_joints", "joints_2d", "cloth_points", "cloth_normals")
"""Batch entries every step needs (``body_pose``/``body_shape`` too when parameters are regressed)."""


def supervision_weights(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """The samples (``(B,)``) or joints (``(B, 17)``) each kind of target counts for, from the
    batch's flags (``None``: all, when the batch has no flags).

    Returns:
        ``mesh`` (body mesh and parameters; a mesh is aligned on the true pelvis, so its hips must
        be real), ``joints`` (3D joints of samples whose hips are real), ``all_joints`` (samples
        with all 17 joints: the orientation target is fitted to all), ``canonical`` (both),
        ``joints_2d``, ``cloth`` (clothed surface, aligned on the true pelvis).
    """
    valid = batch.get("joints_valid")
    hips = None if valid is None else valid[:, list(COCO17_PELVIS)].prod(-1)
    all_joints = None if valid is None else valid.prod(-1)

    def both(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        return b if a is None else a if b is None else a * b

    return {
        "mesh": both(batch.get("has_body_mesh"), hips),
        "joints": None if valid is None else valid * hips[:, None],
        "all_joints": all_joints,
        "canonical": both(batch.get("has_body_mesh"), all_joints),
        "joints_2d": batch.get("joints_2d_valid"),
        "cloth": both(batch.get("has_cloth"), hips),
    }


def lifted_loss(
    output: MuNetOutput,
    gt_joints: torch.Tensor,
    joints: torch.Tensor | None,
    joints_2d: torch.Tensor | None,
) -> torch.Tensor:
    """The skeleton lifter's L1 joint error (:func:`~munet.losses.body.joint_loss`, pelvis-aligned,
    metres) on the keypoint head's 2D joints, plus, when the model lifted them too, on the true 2D
    joints (counted for samples whose 2D joints are all real). ``joints`` ``(B, 17)`` and
    ``joints_2d`` ``(B, 17)``: the joints that count (``None``: all)."""
    loss = joint_loss(output.lifted_joints, gt_joints, joints)
    if output.lifted_from_truth is not None:
        weight = joints
        if joints_2d is not None:
            every = joints_2d.prod(-1, keepdim=True).expand_as(joints_2d)
            weight = every if weight is None else weight * every
        loss = loss + joint_loss(output.lifted_from_truth, gt_joints, weight)
    return loss


def loss_weights(config: LossConfig, step: int) -> dict[str, float]:
    """Every term's weight at ``step``."""
    return {name: schedule_value(getattr(config, name), step) for name in TERMS}


def find_nonfinite(terms: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the terms whose value is NaN or inf."""
    return [name for name, value in terms.items() if not bool(torch.isfinite(value.detach()).all())]


def compute_losses(
    output: MuNetOutput,
    batch: Mapping[str, torch.Tensor],
    config: LossConfig,
    step: int,
    cloth_graph: MeshGraph,
    template_joints: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """All loss terms of one batch and their weighted sum.

    A term whose weight is 0 at ``step`` is skipped (not computed, absent from the result), except
    ``body_params``, ``body_heatmap`` and ``body_lifted``, computed whenever the model has the
    parameter regressor, the keypoint head or the skeleton lifter: each is the main gradient path
    into its module, and DDP needs every parameter to take part in each step. None is computed
    when the model lacks the module.

    Args:
        output: the model's prediction.
        batch: the decoded-sample contract, stacked, as tensors on the output's device.
        config: the loss weights.
        step: the training step (evaluates the weight schedules).
        cloth_graph: the clothed mesh graph (normals and edges of ``output.cloth_vertices``).
        template_joints: ``(17, 3)`` the template body's root-relative joints in its own frame
            (``MuNet.template_joints``), the reference of the orientation target.

    Returns:
        ``{name: scalar}`` for every computed term (unweighted) and ``"total"``, the weighted sum.
        Values may be NaN/inf: check with :func:`find_nonfinite` (the optimiser step skips them).

    Raises:
        KeyError: the batch lacks an entry a term needs (the message names it).
    """
    missing = [key for key in REQUIRED_KEYS if key not in batch]
    if output.body_pose is not None:
        missing += [key for key in ("body_pose", "body_shape") if key not in batch]
    if missing:
        raise KeyError(f"the batch lacks {missing}; it must follow the decoded-sample contract")
    weights = loss_weights(config, step)
    w = supervision_weights(batch)

    gt_root = pelvis(batch["body_joints"])
    pred_root = pelvis(output.body_joints)
    cloth = output.cloth_vertices - output.cloth_root[:, None]
    cloth_normals = vertex_normals(cloth, cloth_graph.faces)
    gt_points = batch["cloth_points"] - gt_root[:, None]
    edges = cloth_graph.edges.to(cloth.device)

    @functools.cache
    def gt_rotation() -> torch.Tensor:  # one Procrustes for the orientation and canonical terms
        rotation = orientation_target(template_joints, batch["body_joints"])
        if w["all_joints"] is None:
            return rotation
        # Samples without all 17 joints have no target; keep their (unused) rotation finite.
        eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(rotation)
        return torch.where(w["all_joints"][:, None, None] > 0, torch.nan_to_num(rotation), eye)

    @functools.cache
    def chamfer_normal() -> tuple[torch.Tensor, torch.Tensor]:  # one neighbour search for both
        return chamfer_and_normal_loss(cloth, cloth_normals, gt_points, batch["cloth_normals"], w["cloth"])

    compute: dict[str, Callable[[], torch.Tensor]] = {
        "body_vertex": lambda: vertex_loss(
            turned_only(output.body_vertices, pred_root, output.body_rotation),
            batch["body_vertices"],
            torch.zeros_like(pred_root),
            gt_root,
            w["mesh"],
        ),
        "body_canonical": lambda: canonical_vertex_loss(
            output.body_vertices,
            pred_root,
            output.body_rotation,
            batch["body_vertices"],
            gt_root,
            gt_rotation(),
            w["canonical"],
        ),
        "body_joint": lambda: joint_loss(
            turned_only(output.body_joints, pred_root, output.body_rotation), batch["body_joints"], w["joints"]
        ),
        "body_orientation": lambda: orientation_loss(output.body_rotation, gt_rotation(), w["all_joints"]),
        "body_reproj": lambda: reprojection_loss(
            output.body_joints,
            batch["K"],
            batch["joints_2d"],
            batch["image"].shape[-1],
            w["joints_2d"],
            batch.get("orthographic"),
        ),
        "body_params": lambda: param_loss(
            output.body_pose, output.body_shape, batch["body_pose"], batch["body_shape"], w["mesh"]
        ),
        "body_heatmap": lambda: heatmap_loss(
            output.joint_heatmaps, batch["joints_2d"], batch["image"].shape[-1], weight=w["joints_2d"]
        ),
        "body_lifted": lambda: lifted_loss(output, batch["body_joints"], w["joints"], w["joints_2d"]),
        "cloth_chamfer": lambda: chamfer_normal()[0],
        "cloth_p2s": lambda: point_to_surface_loss(gt_points, cloth, output.cloth_faces, w["cloth"]),
        "cloth_normal": lambda: chamfer_normal()[1],
        "cloth_edge": lambda: edge_loss(cloth, cloth - output.cloth_offsets, edges),
        "cloth_laplacian": lambda: laplacian_loss(output.cloth_offsets, edges),
        "consistency_inside": lambda: inside_loss(output.feedback_body, cloth, cloth_normals),
        "consistency_tight": lambda: tight_loss(output.cloth_offsets),
    }
    terms: dict[str, torch.Tensor] = {}
    total = output.body_vertices.new_zeros(())
    for name in TERMS:
        needed = weights[name] != 0.0
        if name == "body_params":
            needed = output.body_pose is not None
        if name == "body_heatmap":
            needed = output.joint_heatmaps is not None
        if name == "body_lifted":
            needed = output.lifted_joints is not None
        if needed:
            terms[name] = compute[name]()
            total = total + weights[name] * terms[name]
    terms["total"] = total
    return terms


__all__ = ["REQUIRED_KEYS", "TERMS", "compute_losses", "find_nonfinite", "loss_weights", "supervision_weights"]
