"""Test-time fitting of a predicted body and clothed mesh to the person's mask.

When a person mask is known (an RGBA cut-out, a ``_mask`` file, a segmentation), the network's
meshes can be pulled onto it, as optimisation-based methods (SMPLify-style silhouette terms, ICON's
body refinement) do after regression. What moves, per image:

1. a rigid motion of both meshes: a translation, and optionally a rotation about the body's pelvis
   (:attr:`FitSettings.rotate`);
2. from :attr:`FitSettings.articulate_from` on, also one image-plane angle per limb segment
   (:mod:`munet.fit.articulation`);
3. from :attr:`FitSettings.deform_from` on, also a smooth displacement field on the coarse body
   graph.

Limb memberships and displacements live on the coarse graph and reach the full body and the clothed
mesh through the network's own up-sampling operators, so the clothed surface keeps its offsets from
the body: both meshes stay 2-manifold and in register.

The costs are those of :mod:`munet.fit.silhouette`: body and clothed vertices must project onto
the mask (through each image's camera, perspective or orthographic: :func:`munet.geometry.project`;
an orthographic camera cannot see the depth, so the shift along it never moves), and the clothed
mesh must reach the mask's outline (while the meshes move rigidly or articulate; see
:attr:`FitSettings.deform_coverage`); angles pay for their size, the displacement field for its
size and its roughness (uniform Laplacian of the coarse graph over closed one-rings,
:func:`munet.geometry.uniform_laplacian`). Adam, a fixed number of steps, batched over images.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch3d.transforms import axis_angle_to_matrix

from munet.body import pelvis
from munet.fit.articulation import LIMBS, PIVOTS, articulate, limb_memberships
from munet.fit.silhouette import MaskTargets, coverage_cost, mask_targets, outside_cost
from munet.geometry import orthographic_flag, project, regress_joints, uniform_laplacian
from munet.graph import MeshGraph, SparseOperator
from munet.metrics.image import fraction_on_mask
from munet.model import MuNet, MuNetOutput
from munet.model.camera import translation_to_weak


@dataclass(frozen=True)
class FitSettings:
    """How hard and how long to fit (defaults tuned on held-out synthetic renders)."""

    steps: int = 150
    """Optimisation steps in all."""
    articulate_from: float = 0.2
    """Fraction of the steps after which limbs turn too (1 turns them never)."""
    deform_from: float = 0.5
    """Fraction of the steps after which the displacement field moves too (1: never)."""
    lr: float = 0.02
    """Adam step size (radians for the rotation, metres for translation and displacements)."""
    rotate: bool = False
    """Let the rigid motion rotate too. Off by default: a silhouette cannot tell a turned body from
    a wrongly posed one, and turning the whole body to fit a wrong pose worsens every 3D metric."""
    outline_points: int = 400
    """Points spread along each mask's outline for the coverage cost."""
    tolerance: float = 0.006
    """Coverage tolerance, as a fraction of the mask side (the spacing of projected vertices)."""
    outside_weight: float = 1.0
    coverage_weight: float = 1.0
    deform_coverage: float = 0.0
    """Coverage weight while deforming, relative to ``coverage_weight``. Zero by default: when the
    predicted pose is wrong, stretching the body into uncovered parts of the mask inflates it."""
    offset_weight: float = 0.03
    """Weight of the mean squared displacement (metres²)."""
    smoothness_weight: float = 5.0
    """Weight of the mean squared Laplacian of the displacement field (metres²)."""
    angle_weight: float = 0.001
    """Weight of the mean squared limb angle (radians²)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or not (0 <= self.articulate_from <= 1 and 0 <= self.deform_from <= 1):
            raise ValueError(
                f"need steps >= 1 and articulate_from, deform_from in [0, 1], got {self.steps}, "
                f"{self.articulate_from} and {self.deform_from}"
            )
        if self.outline_points < 1 or self.lr <= 0:
            raise ValueError(f"need outline_points >= 1 and lr > 0, got {self.outline_points} and {self.lr}")

    def first_step(self, fraction: float) -> int:
        """The step at which a stage that starts after ``fraction`` of the steps begins."""
        return round(self.steps * fraction)


@dataclass(frozen=True)
class FittedMeshes:
    """A batch of meshes in the camera frame (metres) and the pelvis they turn about.

    Attributes:
        body: ``(B, V, 3)`` full body mesh.
        coarse: ``(B, V_c, 3)`` the coarse body graph.
        cloth: ``(B, V_cloth, 3)`` clothed mesh.
        root: ``(B, 3)`` pelvis of ``body``.
    """

    body: torch.Tensor
    coarse: torch.Tensor
    cloth: torch.Tensor
    root: torch.Tensor


@dataclass(frozen=True)
class FitReport:
    """How one image's fit went (fractions are of full-body vertices projecting onto the mask).

    Attributes:
        on_mask_before, on_mask_after: body vertices on the mask before and after.
        outline_gap_before, outline_gap_after: mean distance (pixels of the mask) from the mask's
            outline points to the nearest projected clothed vertex.
        milliseconds: this image's share of the batch's fitting time.
    """

    on_mask_before: float
    on_mask_after: float
    outline_gap_before: float
    outline_gap_after: float
    milliseconds: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready values (rounded)."""
        return {name: round(float(value), 4) for name, value in vars(self).items()}


@dataclass(frozen=True)
class _Motion:
    """The fitted motion of a batch: limb angles, rotation (``None``: off), shift."""

    root: torch.Tensor
    pivots: torch.Tensor
    angles: torch.Tensor
    rotvec: torch.Tensor | None
    shift: torch.Tensor


class SilhouetteFitter:
    """Fits batches of predicted meshes to person masks (see the module documentation).

    Args:
        up: coarse graph → full body, sparse ``(V, V_c)``.
        cloth_up: coarse graph → clothed mesh, sparse ``(V_cloth, V_c)``; the clothed graph must be
            the coarse graph subdivided (its first ``V_c`` vertices are the coarse ones).
        coarse: the coarse body graph (``V_c`` vertices): its adjacency blends the limb memberships and
            its edges measure the displacement field's roughness.
        coarse_parts: ``(V_c,)`` part index (:data:`~munet.model.templates.PART_NAMES`) of each
            coarse vertex.
        joint_regressor: ``(17, V)`` COCO-17 regressor of the full body (pelvis and limb joints).
        settings: step counts and weights.
    """

    def __init__(
        self,
        up: SparseOperator,
        cloth_up: SparseOperator,
        coarse: MeshGraph,
        coarse_parts: torch.Tensor,
        joint_regressor: torch.Tensor,
        settings: FitSettings | None = None,
    ):
        count, device = coarse.num_vertices, joint_regressor.device
        ramp = torch.arange(count, dtype=torch.float32, device=device)[None, :, None]
        reads_coarse = up.shape[1] == count and cloth_up.shape[1] == count
        if not reads_coarse or not torch.equal(cloth_up(ramp)[:, :count], ramp):
            raise ValueError(
                "the clothed graph must be the coarse graph subdivided (its first vertices the coarse ones) and "
                f"both up-sampling operators must read the {count}-vertex coarse graph"
            )
        self.up, self.cloth_up, self.coarse_edges = up, cloth_up, coarse.edges.to(device)
        self.joint_regressor = joint_regressor
        self.settings = settings or FitSettings()
        smoothing = SparseOperator(coarse.adjacency("row")).to(device)
        membership = limb_memberships(coarse_parts.to(device), smoothing)
        self.memberships = {
            "coarse": membership,
            "both": torch.cat([membership, membership]),
            "body": up(membership[None])[0],
            "cloth": cloth_up(membership[None])[0],
        }

    @classmethod
    def for_model(cls, model: MuNet, settings: FitSettings | None = None) -> SilhouetteFitter:
        """A fitter that uses ``model``'s graph operators (on its device)."""
        t = model.templates
        return cls(model.up, model.cloth_up, t.coarse, t.coarse_parts, model.joint_regressor, settings)

    def _costs(
        self,
        body: torch.Tensor,
        cloth: torch.Tensor,
        K: torch.Tensor,
        orthographic: torch.Tensor,
        targets: MaskTargets,
        coverage_weight: float,
    ) -> torch.Tensor:
        """``(B,)`` silhouette costs of coarse body and clothed vertices ``(B, V_c, 3)``."""
        cloth_pixels = project(cloth, K, orthographic)
        outside = outside_cost(project(body, K, orthographic), targets) + outside_cost(cloth_pixels, targets)
        coverage = coverage_cost(cloth_pixels, targets, self.settings.tolerance * targets.size)
        return self.settings.outside_weight * outside + coverage_weight * coverage

    def _move(self, points: torch.Tensor, mesh: str, motion: _Motion, displacement: torch.Tensor) -> torch.Tensor:
        """``points`` of ``mesh`` (``coarse``, ``body``, ``cloth``, or ``both``: coarse body then coarse
        clothed vertices) under ``motion``, then displaced."""
        points = articulate(points, self.memberships[mesh], motion.pivots, motion.angles)
        if motion.rotvec is not None:
            # Broadcast products: faster than a batched 3×3 matmul on CPU.
            rotation, root = axis_angle_to_matrix(motion.rotvec), motion.root[:, None]
            points = ((points - root)[:, :, None, :] * rotation[:, None]).sum(dim=3) + root
        return points + motion.shift[:, None] + displacement

    def joints(self, body: torch.Tensor) -> torch.Tensor:
        """COCO-17 joints ``(B, 17, 3)`` of full-body vertices ``(B, V, 3)``."""
        return regress_joints(self.joint_regressor, body)

    def _moved(self, meshes: FittedMeshes, motion: _Motion, offsets: torch.Tensor) -> FittedMeshes:
        """The full meshes after the motion."""
        body = self._move(meshes.body, "body", motion, self.up(offsets))
        return FittedMeshes(
            body=body,
            coarse=self._move(meshes.coarse, "coarse", motion, offsets),
            cloth=self._move(meshes.cloth, "cloth", motion, self.cloth_up(offsets)),
            root=pelvis(self.joints(body)),
        )

    def __call__(
        self, meshes: FittedMeshes, K: torch.Tensor, masks: list[np.ndarray], orthographic: torch.Tensor | None = None
    ) -> tuple[FittedMeshes, list[FitReport]]:
        """Fit ``meshes`` to ``masks``.

        Args:
            meshes: the network's meshes (no gradient needed; they are not modified).
            K: ``(B, 3, 3)`` intrinsics in pixels of the masks.
            masks: ``B`` square boolean masks ``(S, S)``, all of one size.
            orthographic: ``(B,)`` flag, nonzero where ``K`` is orthographic (``None``: all
                perspective).

        Returns:
            The fitted meshes and one report per image.

        Raises:
            ValueError: an empty mask, masks of different sizes, a batch size mismatch, or meshes
                with NaN or infinite values.
        """
        start = time.perf_counter()
        batch = meshes.body.shape[0]
        if len(masks) != batch or K.shape != (batch, 3, 3):
            raise ValueError(
                f"need one mask and one K per mesh: {batch} meshes, {len(masks)} masks, K {tuple(K.shape)}"
            )
        if not all(t.isfinite().all() for t in (meshes.body, meshes.coarse, meshes.cloth, meshes.root)):
            raise ValueError("the meshes to fit hold NaN or infinite values; fit only finite predictions")
        s = self.settings
        flat = orthographic_flag(orthographic, (batch,), K.device)
        meshes = FittedMeshes(*(t.detach() for t in (meshes.body, meshes.coarse, meshes.cloth, meshes.root)))
        targets = mask_targets(masks, s.outline_points, K.device)
        joints = self.joints(meshes.body)
        angles = torch.zeros(batch, len(LIMBS), device=K.device, requires_grad=True)
        rotvec = torch.zeros(batch, 3, device=K.device, requires_grad=True) if s.rotate else None
        shift = torch.zeros(batch, 3, device=K.device, requires_grad=True)
        offsets = torch.zeros_like(meshes.coarse, requires_grad=True)
        motion = _Motion(meshes.root, joints[:, list(PIVOTS)], angles, rotvec, shift)
        optimizer = torch.optim.Adam(
            [
                {"params": [shift] if rotvec is None else [shift, rotvec]},
                {"params": [angles], "lr": 0.0},
                {"params": [offsets], "lr": 0.0},
            ],
            lr=s.lr,
        )
        articulate_from, deform_from = s.first_step(s.articulate_from), s.first_step(s.deform_from)
        # The clothed graph is the coarse graph subdivided: its first V_c vertices sit on the coarse
        # vertices and move with them, so the loop only needs coarse meshes (moved as one batch).
        coarse = meshes.coarse.shape[1]
        both = torch.cat([meshes.coarse, meshes.cloth[:, :coarse]], dim=1)
        with torch.enable_grad():
            for step in range(s.steps):
                if step == articulate_from:
                    optimizer.param_groups[1]["lr"] = s.lr
                if step == deform_from:
                    optimizer.param_groups[2]["lr"] = s.lr
                body, cloth = self._move(both, "both", motion, offsets.repeat(1, 2, 1)).split(coarse, dim=1)
                # Uniform Laplacian over the closed one-ring (the vertex counts itself in the mean).
                laplacian = uniform_laplacian(offsets, self.coarse_edges, closed=True)
                roughness = laplacian.square().sum(dim=2).mean(dim=1)
                size = offsets.square().sum(dim=2).mean(dim=1)
                coverage_weight = s.coverage_weight * (1.0 if step < deform_from else s.deform_coverage)
                loss = (
                    self._costs(body, cloth, K, flat, targets, coverage_weight)
                    + s.smoothness_weight * roughness
                    + s.offset_weight * size
                    + s.angle_weight * angles.square().mean(dim=1)
                )
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
        with torch.no_grad():
            fitted = self._moved(meshes, motion, offsets)
        milliseconds = 1000.0 * (time.perf_counter() - start) / batch
        reports = [
            FitReport(
                on_mask_before=_on_mask(meshes.body[i], K[i], flat[i], masks[i]),
                on_mask_after=_on_mask(fitted.body[i], K[i], flat[i], masks[i]),
                outline_gap_before=_outline_gap(meshes.cloth[i], K[i], flat[i], targets.outline[i]),
                outline_gap_after=_outline_gap(fitted.cloth[i], K[i], flat[i], targets.outline[i]),
                milliseconds=milliseconds,
            )
            for i in range(batch)
        ]
        return fitted, reports


def fit_output(
    fitter: SilhouetteFitter,
    output: MuNetOutput,
    K_input: torch.Tensor,
    input_size: int,
    K_masks: torch.Tensor,
    masks: Sequence[np.ndarray | None],
    orthographic: torch.Tensor | None = None,
) -> tuple[MuNetOutput, list[FitReport | None]]:
    """``output`` of :class:`~munet.model.MuNet` with the meshes of every sample that has a mask
    fitted to it.

    Body, joints, coarse graph, clothed mesh, translation and weak camera are replaced (the weak
    camera is re-derived from the new pelvis with ``K_input``); the rest is kept. Samples whose
    mask is ``None`` or empty (e.g. a box that misses the person), or whose prediction is not
    finite, keep the network's prediction.

    Args:
        K_input: ``(B, 3, 3)`` intrinsics of the network's input crops.
        input_size: side of those crops, pixels.
        K_masks: ``(B, 3, 3)`` intrinsics in pixels of the masks.
        masks: per sample, a square boolean person mask (all of one size) or ``None``.
        orthographic: ``(B,)`` flag, nonzero where the sample's camera is orthographic (the same
            for the crop and the mask: a resize keeps the kind); ``None``: all perspective.

    Returns:
        The output and, per sample, its :class:`FitReport` (``None`` where nothing was fitted).
    """
    finite = (
        output.body_vertices.flatten(1).isfinite().all(1) & output.cloth_vertices.flatten(1).isfinite().all(1)
    ).tolist()
    chosen = [i for i, mask in enumerate(masks) if mask is not None and mask.any() and finite[i]]
    reports: list[FitReport | None] = [None] * len(masks)
    if not chosen:
        return output, reports
    index = torch.as_tensor(chosen, device=output.body_vertices.device)
    meshes = FittedMeshes(
        *(t[index] for t in (output.body_vertices, output.body_coarse, output.cloth_vertices, output.translation))
    )
    flat = orthographic_flag(orthographic, (len(masks),), index.device)[index]
    fitted, fit_reports = fitter(meshes, K_masks[index], [masks[i] for i in chosen], flat)
    for i, report in zip(chosen, fit_reports, strict=True):
        reports[i] = report

    def put(full: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        merged = full.detach().clone()
        merged[index] = part
        return merged

    shift = fitted.root - meshes.root
    fields = {
        "body_vertices": put(output.body_vertices, fitted.body),
        "body_joints": put(output.body_joints, fitter.joints(fitted.body)),
        "body_coarse": put(output.body_coarse, fitted.coarse),
        "cloth_vertices": put(output.cloth_vertices, fitted.cloth),
        "cloth_root": put(output.cloth_root, output.cloth_root[index] + shift),
        "translation": put(output.translation, fitted.root),
        "weak_camera": put(output.weak_camera, translation_to_weak(fitted.root, K_input[index], input_size, flat)),
    }
    return dataclasses.replace(output, **fields), reports


def _on_mask(vertices: torch.Tensor, K: torch.Tensor, orthographic: torch.Tensor, mask: np.ndarray) -> float:
    return fraction_on_mask(vertices.cpu().numpy(), K.cpu().numpy(), mask, bool(orthographic))


def _outline_gap(vertices: torch.Tensor, K: torch.Tensor, orthographic: torch.Tensor, outline: torch.Tensor) -> float:
    pixels = project(vertices[None], K[None], orthographic[None])[0]
    return float(torch.cdist(outline, pixels).min(dim=1).values.mean())
