"""Geometric training augmentation of a batch: crop zoom and shift, horizontal flip.

Runs in the training step on the stacked batch (the decoded-sample contract of
:mod:`munet.data.contract`), after the decoder's colour jitter. Conventions are those of
:mod:`munet.model.camera`: camera frame OpenCV (x right, y down, z forward, metres), ``K`` in
pixels of the ``S × S`` crop with pixel centres at integer coordinates (the crop spans
``[-0.5, S - 0.5]``).

Each sample gets one pixel map ``u' = A u`` (a 3 × 3 affine ``A``), drawn as

- a **zoom** ``a`` about the crop centre ``c = (S - 1) / 2``, log-uniform in
  ``[1 / (1 + scale), 1 + scale]`` (``a > 1`` enlarges the person),
- a **shift** ``t`` of each axis, uniform in ``[-shift, shift] · S`` pixels,
- a **flip** ``u → S - 1 - u`` with probability ``flip``,

so ``u' = a f (u - c) + c + t_x`` and ``v' = a (v - c) + c + t_y`` with ``f = -1`` for a flip.
Image and mask are resampled once through ``A`` (bilinear; the mask thresholded at 0.5; outside the
source crop both are 0).

A crop change is a change of intrinsics only: ``K' = A K D`` with ``D = diag(f, 1, 1)``, and the 2D
joints map through ``A``. This holds for perspective and orthographic ``K`` alike (the pixel map is
affine and ``D`` reflects the camera-frame x before either projection), so the per-sample
``orthographic`` flag stays as it is. The zoom and shift leave every 3D target as it is. A flip is a reflection
of the scene, ``X → D X``: every 3D point has its x negated, so that ``K' D X = A K X`` projects to
the flipped image. The person's left becomes their right, so ordered targets are renumbered:

- ``body_vertices``: vertex ``i`` takes the place of its mirror partner (``vertex_mirror``:
  :meth:`munet.body.anny_backend.AnnyBody.vertex_mirror`, kept as the templates' ``fine_mirror``);
  ``body_joints`` and ``joints_2d`` (with their validity flags) swap left and right COCO-17 joints
  (:data:`munet.body.joints.COCO17_FLIP`; Anny's joint regressor is exactly symmetric, so these
  are the joints of the renumbered vertices);
- ``body_pose``: bone ``b``'s rotation moves to its mirror bone (``bone_mirror``) and is reflected.
  Poses are axis-angle rotations per bone (3 values each) in the body model's frame, whose x axis
  is the person's left/right (Anny: X left); reflecting a rotation ``R`` through that axis gives
  ``M R M`` (``M = diag(-1, 1, 1)``), whose axis-angle vector is ``(w_x, -w_y, -w_z)``. The mirrored
  pose gives the mirrored body in the model frame; seen by the reflected camera ``D R_cam M`` it
  is the flipped sample, whatever the camera. (Anny reproduces the mirrored body from it to a few
  millimetres, not exactly: its phenotype blend shapes are slightly asymmetric, see
  :mod:`munet.graph.symmetry`.)
- ``cloth_points`` and ``cloth_normals`` (an unordered point set and its normals): x negated.

``body_shape`` is left/right symmetric and unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from munet.body.joints import COCO17_FLIP
from munet.config import AugmentConfig
from munet.model.camera import pixels_to_normalized_matrix

CONTRACT_KEYS = (
    "image",
    "mask",
    "K",
    "orthographic",
    "body_vertices",
    "body_joints",
    "joints_2d",
    "body_pose",
    "body_shape",
    "cloth_points",
    "cloth_normals",
    "joints_valid",
    "joints_2d_valid",
    "has_mask",
    "has_body_mesh",
    "has_cloth",
    "source",
)
"""Batch entries :func:`augment_batch` knows how to transform (see the module documentation): the
per-joint flags follow their joints through a flip, the per-sample flags stay as they are."""

POSE_REFLECTION = (1.0, -1.0, -1.0)
"""Factors that reflect an axis-angle rotation through the x axis of its frame."""


def check_settings(settings: AugmentConfig) -> None:
    """Raise ``ValueError`` naming the ``data.augmentation`` setting out of its range (all of the
    section, the decoder's ``colour`` included)."""
    if not 0.0 <= settings.flip <= 1.0:
        raise ValueError(f"data.augmentation.flip is a probability in [0, 1], got {settings.flip}")
    for name in ("scale", "shift"):
        if getattr(settings, name) < 0.0:
            raise ValueError(f"data.augmentation.{name} must be >= 0, got {getattr(settings, name)}")
    if not 0.0 <= settings.colour < 1.0:
        raise ValueError(f"data.augmentation.colour must be in [0, 1), got {settings.colour}")


def draw_pixel_maps(
    batch_size: int, image_size: int, settings: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw each sample's crop map (see the module documentation) on the CPU.

    Args:
        batch_size: B.
        image_size: S, the side of the square crop in pixels.
        settings: ``flip`` probability, ``scale`` and ``shift`` ranges.
        generator: the source of randomness (the step's generator makes runs reproducible).

    Returns:
        ``(A, flip)``: ``(B, 3, 3)`` float64 pixel maps ``u' = A u`` (homogeneous pixels of the
        crop) and ``(B,)`` bool, which samples are flipped.
    """

    def symmetric(*shape: int) -> torch.Tensor:  # uniform in [-1, 1]
        return 2.0 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1.0

    flip = torch.rand(batch_size, generator=generator, dtype=torch.float64) < settings.flip
    zoom = torch.exp(symmetric(batch_size) * math.log1p(settings.scale))
    shift = symmetric(batch_size, 2) * settings.shift * image_size
    centre = (image_size - 1) / 2.0
    scale_x = torch.where(flip, -zoom, zoom)
    A = torch.zeros(batch_size, 3, 3, dtype=torch.float64)
    A[:, 0, 0], A[:, 1, 1], A[:, 2, 2] = scale_x, zoom, 1.0
    A[:, 0, 2] = centre - scale_x * centre + shift[:, 0]
    A[:, 1, 2] = centre - zoom * centre + shift[:, 1]
    return A, flip


def warp_images(images: torch.Tensor, A: torch.Tensor, binary: bool = False) -> torch.Tensor:
    """Resample images so that source pixel ``u`` lands on ``A u`` (bilinear, 0 outside the source).

    Args:
        images: ``(B, C, S, S)``.
        A: ``(B, 3, 3)`` pixel maps (see :func:`draw_pixel_maps`).
        binary: threshold the result at 0.5 (for {0, 1} masks).

    Returns:
        ``(B, C, S, S)``, same dtype and device as ``images``.
    """
    size = images.shape[-1]
    P = pixels_to_normalized_matrix(size)
    # Output pixel u' reads the source at A⁻¹ u'; in normalised coordinates, P A⁻¹ P⁻¹.
    theta = (P @ torch.linalg.inv(A) @ torch.linalg.inv(P))[:, :2]
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (warped >= 0.5).to(images.dtype) if binary else warped


def augment_batch(
    batch: Mapping[str, torch.Tensor],
    vertex_mirror: torch.Tensor,
    bone_mirror: torch.Tensor,
    settings: AugmentConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """A randomly zoomed, shifted and flipped copy of a batch (the input is not modified).

    Args:
        batch: stacked samples of the decoded-sample contract (tensors on any one device):
            ``image`` ``(B, 3, S, S)`` and ``K`` ``(B, 3, 3)`` are required; ``mask`` ``(B, 1,
            S, S)``, ``body_vertices`` ``(B, V, 3)``, ``body_joints`` ``(B, 17, 3)``,
            ``joints_2d`` ``(B, 17, 2)``, ``body_pose`` ``(B, 3 J)``, ``body_shape``,
            ``cloth_points`` and ``cloth_normals`` ``(B, N, 3)`` are transformed when present.
        vertex_mirror: ``(V,)`` long, the mirror partner of each body-mesh vertex
            (:meth:`munet.body.anny_backend.AnnyBody.vertex_mirror`).
        bone_mirror: ``(J,)`` long, the mirror bone of each bone of the pose vector
            (:meth:`munet.body.anny_backend.AnnyBody.bone_mirror`).
        settings: ``data.augmentation`` (``flip``, ``scale``, ``shift``; ``colour`` is the
            decoder's).
        generator: CPU generator of the draws (:func:`munet.train.step.step_generator`).

    Returns:
        The augmented entries of :data:`CONTRACT_KEYS` present in ``batch``. Other entries are
        left out: they could not be kept consistent with the new view.

    Raises:
        ValueError: a setting out of range, a missing ``image``/``K``, or a mirror map that does
            not fit the batch.
    """
    check_settings(settings)
    missing = [key for key in ("image", "K") if key not in batch]
    if missing:
        raise ValueError(f"augment_batch needs the batch entries {missing}")
    image, K = batch["image"], batch["K"]
    size, device = image.shape[-1], image.device
    A, flip = draw_pixel_maps(image.shape[0], size, settings, generator)
    reflect = torch.ones(image.shape[0], 3, dtype=torch.float64)
    reflect[flip, 0] = -1.0
    out = {key: value for key, value in batch.items() if key in CONTRACT_KEYS}

    out["image"] = warp_images(image, A)
    if "mask" in out:
        out["mask"] = warp_images(out["mask"], A, binary=True)
    out["K"] = (A @ K.to(torch.float64).cpu() @ torch.diag_embed(reflect)).to(K)
    A, flip, reflect = A.to(device), flip.to(device), reflect.to(device)
    if "joints_2d" in out:
        joints = out["joints_2d"]
        moved = (torch.einsum("bij,bnj->bni", A[:, :2, :2], joints.to(A)) + A[:, None, :2, 2]).to(joints)
        out["joints_2d"] = _where(flip, moved[:, list(COCO17_FLIP)], moved)
    for key in ("body_vertices", "body_joints", "cloth_points", "cloth_normals"):
        if key in out:
            out[key] = out[key] * reflect[:, None].to(out[key])
    if "body_vertices" in out:
        vertices = out["body_vertices"]
        _check_map("vertex_mirror", vertex_mirror, vertices.shape[1], "body_vertices (B, V, 3)")
        out["body_vertices"] = _where(flip, vertices[:, vertex_mirror.to(device)], vertices)
    for key in ("body_joints", "joints_valid", "joints_2d_valid"):
        if key in out:
            out[key] = _where(flip, out[key][:, list(COCO17_FLIP)], out[key])
    if "body_pose" in out:
        out["body_pose"] = _where(flip, mirror_pose(out["body_pose"], bone_mirror), out["body_pose"])
    return out


def mirror_pose(pose: torch.Tensor, bone_mirror: torch.Tensor) -> torch.Tensor:
    """The left/right mirror images ``(B, 3 J)`` of axis-angle poses ``(B, 3 J)`` (see the module
    documentation): bone ``b`` of the result is bone ``bone_mirror[b]`` of ``pose``, reflected."""
    if pose.dim() != 2 or pose.shape[1] % 3:
        raise ValueError(f"body_pose must have shape (B, 3 J), got {tuple(pose.shape)}")
    _check_map("bone_mirror", bone_mirror, pose.shape[1] // 3, "body_pose (B, 3 J)")
    rotations = pose.reshape(pose.shape[0], -1, 3)[:, bone_mirror.to(pose.device)]
    return (rotations * pose.new_tensor(POSE_REFLECTION)).reshape(pose.shape)


def _where(flip: torch.Tensor, flipped: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``flipped`` for the samples (dim 0) where ``flip`` (B,) is true, else ``values``."""
    return torch.where(flip.view(-1, *[1] * (values.dim() - 1)), flipped, values)


def _check_map(name: str, index: torch.Tensor, expected: int, entry: str) -> None:
    if index.dim() != 1 or len(index) != expected or index.dtype != torch.long:
        raise ValueError(
            f"{name} must be a ({expected},) long tensor to fit {entry}, got {index.dtype} {tuple(index.shape)}"
        )
