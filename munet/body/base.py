"""The body-model interface: pose + shape + translation → vertices, faces, joints."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn

from munet.body.joints import COCO17_NAMES
from munet.geometry import regress_joints


@dataclass
class BodyOutput:
    """What a body model returns for a batch of ``B`` bodies.

    Attributes:
        vertices: (B, V, 3) posed vertices in metres, in the model's world frame plus ``transl``.
        joints: (B, 17, 3) COCO-17 joints regressed from ``vertices`` (see :mod:`munet.body.joints`).
    """

    vertices: torch.Tensor
    joints: torch.Tensor


class BodyModel(nn.Module, abc.ABC):
    """A differentiable, batched parametric body model.

    Subclasses register two buffers: ``faces`` (F, 3) int64 — a watertight single-component
    triangle mesh — and ``joint_regressor`` (17, V) float32, whose rows sum to one, mapping
    vertices to the COCO-17 joints. Parameters are flat per-sample tensors:

    - ``pose``: (B, pose_dim) axis-angle rotations (backend-specific layout, root first);
    - ``shape``: (B, shape_dim) shape coefficients (Anny phenotypes in [0, 1], SMPL betas);
    - ``transl``: (B, 3) translation in metres.
    """

    name: str
    pose_dim: int
    shape_dim: int
    faces: torch.Tensor
    joint_regressor: torch.Tensor
    joint_names: tuple[str, ...] = COCO17_NAMES

    @property
    def num_vertices(self) -> int:
        """Number of mesh vertices V."""
        return int(self.joint_regressor.shape[1])

    @property
    def num_faces(self) -> int:
        """Number of triangles F."""
        return int(self.faces.shape[0])

    @abc.abstractmethod
    def neutral_shape(self, batch_size: int = 1) -> torch.Tensor:
        """The shape coefficients of an average person, (batch_size, shape_dim)."""

    @abc.abstractmethod
    def _vertices(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """Posed vertices (B, V, 3) without translation."""

    def forward(
        self,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose and shape the body. Missing arguments default to rest pose, neutral shape, zero
        translation (batch size taken from whichever argument is given)."""
        batch = next((t.shape[0] for t in (pose, shape, transl) if t is not None), 1)
        dtype, device = self.joint_regressor.dtype, self.joint_regressor.device
        if pose is None:
            pose = torch.zeros(batch, self.pose_dim, dtype=dtype, device=device)
        if shape is None:
            shape = self.neutral_shape(batch).to(device)
        if transl is None:
            transl = torch.zeros(batch, 3, dtype=dtype, device=device)
        self._check("pose", pose, (batch, self.pose_dim))
        self._check("shape", shape, (batch, self.shape_dim))
        self._check("transl", transl, (batch, 3))
        vertices = self._vertices(pose.to(dtype), shape.to(dtype)) + transl.to(dtype)[:, None, :]
        return BodyOutput(vertices=vertices, joints=self.regress_joints(vertices))

    def regress_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """COCO-17 joints (B, 17, 3) from any vertices (B, V, 3) of this topology."""
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(
                f"{self.name}: vertices must have shape (B, {self.num_vertices}, 3), got {tuple(vertices.shape)}"
            )
        return regress_joints(self.joint_regressor, vertices)

    def _check(self, what: str, value: torch.Tensor, shape: tuple[int, int]) -> None:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{self.name}: {what} must be a torch.Tensor, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{self.name}: {what} must have shape {shape} (batch, {what}_dim), got {tuple(value.shape)}"
            )
        if not torch.isfinite(value).all():
            raise ValueError(f"{self.name}: {what} contains NaN or inf values")
