"""MuNet: one image → body mesh (with joints and camera) and clothed mesh, trained jointly."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from munet.body import BodyModel, BodyTopology, body_name, pelvis
from munet.config import MuNetConfig
from munet.geometry import regress_joints
from munet.graph import SparseOperator
from munet.model.body_gcn import BodyEstimate, BodyGCN, ParamRegressor
from munet.model.camera import pixels_to_normalized, weak_to_translation
from munet.model.cloth_gcn import ClothGCN
from munet.model.encoder import ImageEncoder
from munet.model.keypoints import KeypointHead, soft_argmax
from munet.model.mutual import MutualState
from munet.model.skeleton import Lifter, part_transforms, pose_template, smooth_part_weights
from munet.model.templates import PART_NAMES, Templates, build_templates


@dataclass
class MuNetOutput:
    """What :class:`MuNet` predicts for a batch of ``B`` images. Camera frame = OpenCV, metres.

    Attributes:
        body_vertices: ``(B, V, 3)`` body mesh (the body model's topology, ``V`` = 13,348 for Anny).
        body_joints: ``(B, 17, 3)`` COCO-17 joints regressed from ``body_vertices``.
        body_coarse: ``(B, V_c, 3)`` the coarse body graph (1,229 vertices by default).
        body_rotation: ``(B, 3, 3)`` the body's global orientation: its own frame (the template's,
            upright and facing the camera) → the camera frame.
        weak_camera: ``(B, 3)`` predicted weak-perspective camera ``(s, t_x, t_y)``.
        translation: ``(B, 3)`` camera-frame pelvis of the body (from ``weak_camera`` and ``K``;
            :func:`munet.model.camera.weak_to_translation`).
        body_faces: ``(F, 3)`` faces of ``body_vertices``.
        cloth_vertices: ``(B, V_cloth, 3)`` clothed mesh (4,910 vertices with one subdivision).
        cloth_faces: ``(F_cloth, 3)`` its faces.
        cloth_root: ``(B, 3)`` camera-frame pelvis of the body the clothed branch was built on.
        cloth_base: ``(B, V_c, 3)`` that body, root-relative, on the coarse graph: the predicted
            body (seen through the feedback gradient scaling), the ground truth for teacher-forced
            samples, or the template when guidance is off.
        cloth_offsets: ``(B, V_cloth, 3)`` displacements from the body to the clothed surface.
        feedback_body: ``(B, V_c, 3)`` the predicted coarse body, root-relative, as clothed-side
            losses may see it (gradient scaled by the feedback weight, or detached).
        teacher_forced: ``(B,)`` bool, samples whose clothed branch used the ground-truth body.
        body_pose, body_shape: regressed body-model parameters, or ``None``
            (``model.regress_params``).
        joint_heatmaps: ``(B, 17, S/8, S/8)`` COCO-17 heatmap logits of the keypoint head, or
            ``None`` (``model.keypoint_heatmaps``).
        lifted_joints: ``(B, 17, 3)`` root-relative joints (camera orientation, metres) lifted from
            the keypoint head's 2D joints, or ``None`` (``model.skeleton_init``).
        lifted_from_truth: ``(B, 17, 3)`` the same lifted from the true 2D joints with noise
            (training only, when they are given), which trains the lifter on clean skeletons;
            ``None`` otherwise.
    """

    body_vertices: torch.Tensor
    body_joints: torch.Tensor
    body_coarse: torch.Tensor
    body_rotation: torch.Tensor
    weak_camera: torch.Tensor
    translation: torch.Tensor
    body_faces: torch.Tensor
    cloth_vertices: torch.Tensor
    cloth_faces: torch.Tensor
    cloth_root: torch.Tensor
    cloth_base: torch.Tensor
    cloth_offsets: torch.Tensor
    feedback_body: torch.Tensor
    teacher_forced: torch.Tensor
    body_pose: torch.Tensor | None = None
    body_shape: torch.Tensor | None = None
    joint_heatmaps: torch.Tensor | None = None
    lifted_joints: torch.Tensor | None = None
    lifted_from_truth: torch.Tensor | None = None


SKIN_SMOOTHING = 2
"""Neighbourhood averagings of the coarse graph's part labels that give the skinning weights of the
skeleton-posed template (parts blend over about two edges, ~10 cm, at each joint)."""

LIFT_NOISE = 0.02
"""Standard deviation of the noise added to true 2D joints lifted in training, in normalised image
units (1.3 pixels of a 128-pixel crop): the lifter learns from clean skeletons yet tolerates the
keypoint head's errors."""


class MuNet(nn.Module):
    """The joint network: image encoder, body GCN, clothed GCN and the mutualistic mechanism.

    Args:
        config: the run configuration (``model``, ``graph`` and ``mutual`` sections are used).
        body: the body model whose mesh the body branch outputs; only read to build the
            templates (its joint regressor is copied; the model itself is not kept).
        templates: the graph hierarchy and regressors; built from ``config`` and ``body`` when not
            given (a trained model is rebuilt from the templates its checkpoint stores).
    """

    def __init__(self, config: MuNetConfig, body: BodyModel | None = None, templates: Templates | None = None):
        super().__init__()
        if templates is None:
            if body is None:
                raise ValueError("MuNet needs a body model or the templates of a trained model")
            templates = build_templates(config, body)
        self.config = config
        self.templates = templates
        t, m = self.templates, config.model
        self.encoder = ImageEncoder(m.encoder, m.encoder_weights, m.encoder_norm)
        self.body_gcn = BodyGCN(
            t.coarse,
            self.encoder.global_channels,
            self.encoder.map_channels,
            m.body_channels,
            m.body_blocks,
            m.body_iterations,
        )
        self.cloth_gcn = ClothGCN(
            t.cloth,
            t.cloth_parts,
            t.num_parts,
            self.encoder.map_channels,
            self.encoder.global_channels,
            m.cloth_channels,
            m.cloth_blocks,
            m.max_offset,
        )
        self.param_regressor = (
            ParamRegressor(t.coarse.num_vertices, t.pose_dim, t.shape_dim) if m.regress_params else None
        )
        self.keypoint_head = (
            KeypointHead(self.encoder.map_channels, self.encoder.global_channels) if m.keypoint_heatmaps else None
        )
        if m.skeleton_init and not m.keypoint_heatmaps:
            raise ValueError("model.skeleton_init lifts the keypoint head's 2D joints: set model.keypoint_heatmaps too")
        self.up = SparseOperator(t.sampling.up)
        self.down = SparseOperator(t.sampling.down)
        self.cloth_up = SparseOperator(t.cloth_up)
        self.register_buffer("joint_regressor", t.joint_regressor.clone(), persistent=False)
        self.register_buffer("body_faces", t.fine_faces.clone(), persistent=False)
        self.register_buffer("cloth_faces", t.cloth.faces.clone(), persistent=False)
        with torch.no_grad():
            rest_joints = self.regress_joints(self.up(t.coarse.vertices[None]))
        self.register_buffer("template_joints", (rest_joints - pelvis(rest_joints)[:, None])[0], persistent=False)
        self.lifter = None
        if m.skeleton_init:
            self.lifter = Lifter(self.template_joints)
            self.register_buffer("rest_joints", rest_joints[0], persistent=False)
            weights = smooth_part_weights(t.coarse_parts, t.coarse.adjacency(), t.num_parts, SKIN_SMOOTHING)
            self.register_buffer("part_weights", weights, persistent=False)

    @property
    def body_topology(self) -> BodyTopology:
        """The topology of the body mesh this network predicts: the body meshes of samples that
        share it supervise the network (:func:`munet.data.decode.decode_sample`). Read from the
        templates, so a network loaded from a checkpoint needs no body model."""
        t = self.templates
        return BodyTopology(body_name(self.config.body), t.num_fine_vertices, t.pose_dim, t.shape_dim)

    def skeleton_posed(self, joints: torch.Tensor) -> BodyEstimate:
        """The coarse template posed by root-relative joints ``(B, 17, 3)`` (camera orientation,
        metres; :mod:`munet.model.skeleton`), as a start of the body GCN: its ``canonical``
        vertices in the body's own frame and ``rotation`` the torso's (the camera is unset)."""
        rotations, translations = part_transforms(self.rest_joints, joints, PART_NAMES)
        posed = pose_template(self.body_gcn.template, self.part_weights, rotations, translations)
        torso = rotations[:, PART_NAMES.index("torso")]
        return BodyEstimate(posed @ torso, torso, joints.new_zeros(joints.shape[0], 3))

    def regress_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """COCO-17 joints ``(B, 17, 3)`` of body-mesh vertices ``(B, V, 3)``."""
        return regress_joints(self.joint_regressor, vertices)

    def forward(
        self,
        image: torch.Tensor,
        K: torch.Tensor,
        *,
        orthographic: torch.Tensor | None = None,
        step: int | None = None,
        gt_body_vertices: torch.Tensor | None = None,
        gt_body_valid: torch.Tensor | None = None,
        gt_joints_2d: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MuNetOutput:
        """Predict both meshes.

        Args:
            image: ``(B, 3, S, S)`` RGB in ``[0, 1]``.
            K: ``(B, 3, 3)`` intrinsics in pixels of the ``S × S`` crop.
            orthographic: ``(B,)`` flag (the decoded batch's ``orthographic``), nonzero where
                ``K`` is an orthographic camera's (:mod:`munet.geometry.projection`); ``None``:
                all perspective.
            step: the training step, which sets the teacher-forcing probability and the feedback
                weight (``config.mutual``); ``None`` at inference (no teacher forcing).
            gt_body_vertices: ``(B, V, 3)`` ground-truth body in the camera frame; needed only
                for teacher forcing (never read otherwise).
            gt_body_valid: ``(B,)`` 1 where ``gt_body_vertices`` is a real body (partial
                supervision, :mod:`munet.data.contract`); the others are never teacher-forced.
                ``None``: all are real.
            gt_joints_2d: ``(B, 17, 2)`` true 2D joints, pixels of the crop; in training, the
                skeleton lifter (``model.skeleton_init``) also lifts them (``lifted_from_truth``).
            generator: draws which samples are teacher-forced and the lifter's input noise
                (reproducible training).
        """
        if image.dim() != 4 or image.shape[-2] != image.shape[-1]:
            raise ValueError(f"image must be a square batch (B, 3, S, S), got {tuple(image.shape)}")
        batch, size = image.shape[0], image.shape[-1]
        if K.shape != (batch, 3, 3):
            raise ValueError(f"K must have shape ({batch}, 3, 3), got {tuple(K.shape)}")
        state = MutualState.at_step(self.config.mutual, step)

        global_feature, feature_maps = self.encoder(image)
        heatmaps = lifted = lifted_truth = start = None
        if self.keypoint_head is not None:
            heatmaps, pose_code = self.keypoint_head(feature_maps)
            global_feature = global_feature + pose_code
        if self.lifter is not None:
            lifted = self.lifter(soft_argmax(heatmaps.detach()))
            start = self.skeleton_posed(lifted)
            if self.training and gt_joints_2d is not None:
                noise = torch.randn(gt_joints_2d.shape, generator=generator, device=image.device, dtype=image.dtype)
                lifted_truth = self.lifter(pixels_to_normalized(gt_joints_2d, size) + LIFT_NOISE * noise)
        estimate = self.body_gcn(global_feature, feature_maps, K, size, orthographic, start)
        coarse, weak = estimate.posed, estimate.weak_camera
        fine = self.up(coarse)
        root = pelvis(self.regress_joints(fine))
        coarse, fine = coarse - root[:, None], fine - root[:, None]
        translation = weak_to_translation(weak, K, size, orthographic)

        feedback_body = state.feedback_view(coarse)
        if state.guidance:
            base, base_root = feedback_body, state.feedback_view(translation)
        else:
            base = self.body_gcn.template.expand(batch, -1, -1)
            base_root = state.feedback_view(translation)
        forced = state.forced_samples(batch, image.device, generator)
        if gt_body_valid is not None:
            forced = forced & (gt_body_valid > 0)
        if forced.any():
            if gt_body_vertices is None:
                raise ValueError(
                    f"teacher forcing is on (probability {state.teacher_forcing} at step {step}): "
                    "pass gt_body_vertices, or set mutual.teacher_forcing to 0"
                )
            gt_root = pelvis(self.regress_joints(gt_body_vertices))
            gt_base = self.down(gt_body_vertices - gt_root[:, None])
            base = torch.where(forced[:, None, None], gt_base, base)
            base_root = torch.where(forced[:, None], gt_root, base_root)

        base_cloth = self.cloth_up(base)
        offsets = self.cloth_gcn(base_cloth, base_root, K, feature_maps, global_feature, size, orthographic)
        pose, shape = self.param_regressor(coarse) if self.param_regressor is not None else (None, None)
        body_vertices = fine + translation[:, None]
        return MuNetOutput(
            body_vertices=body_vertices,
            body_joints=self.regress_joints(body_vertices),
            body_coarse=coarse + translation[:, None],
            body_rotation=estimate.rotation,
            weak_camera=weak,
            translation=translation,
            body_faces=self.body_faces,
            cloth_vertices=base_cloth + offsets + base_root[:, None],
            cloth_faces=self.cloth_faces,
            cloth_root=base_root,
            cloth_base=base,
            cloth_offsets=offsets,
            feedback_body=feedback_body,
            teacher_forced=forced,
            body_pose=pose,
            body_shape=shape,
            joint_heatmaps=heatmaps,
            lifted_joints=lifted,
            lifted_from_truth=lifted_truth,
        )
