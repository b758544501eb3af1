"""Body branch: a GCN that deforms the coarse template graph into the body in its own frame, a
global orientation, a camera, refined with pixel-aligned features; and (optionally) body-model
parameter read-outs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.transforms import matrix_to_rotation_6d, rotation_6d_to_matrix
from torch import nn

from munet.graph import GraphResBlock, MeshGraph, VertexGroupNorm
from munet.model.camera import weak_to_translation
from munet.model.sampling import sample_pixel_features

GROUPS = 8
"""GroupNorm groups of every graph block (channel widths must be multiples of 2 × GROUPS)."""

INITIAL_SCALE = 1.0
"""Weak-perspective scale ``s`` (normalised image units per metre) before training: a 1.7 m person
then spans about 85% of the crop."""


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A ``Linear`` layer with zero weights and bias: it first predicts zero (no change)."""
    linear = nn.Linear(in_features, out_features)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def vertex_head(channels: int) -> nn.Sequential:
    """``GroupNorm → ReLU → Linear(C → 3)``, zero-initialised so that it first predicts zero."""
    return nn.Sequential(VertexGroupNorm(GROUPS, channels), nn.ReLU(), zero_linear(channels, 3))


IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
"""The identity rotation in the continuous 6D representation (its first two rows, PyTorch3D's
convention of :func:`pytorch3d.transforms.rotation_6d_to_matrix`)."""


@dataclass
class BodyEstimate:
    """What :class:`BodyGCN` predicts for a batch of ``B`` images.

    Attributes:
        canonical: ``(B, V_c, 3)`` coarse body in its own frame (the template's: upright, facing
            the camera, x right, y down, z forward), metres, near-root-relative.
        rotation: ``(B, 3, 3)`` global orientation: the camera-orientation body is
            ``canonical @ rotation.T``.
        weak_camera: ``(B, 3)`` weak-perspective camera ``(s, t_x, t_y)``, ``s > 0``
            (:mod:`munet.model.camera`).
    """

    canonical: torch.Tensor
    rotation: torch.Tensor
    weak_camera: torch.Tensor

    @property
    def posed(self) -> torch.Tensor:
        """``(B, V_c, 3)`` the body in the camera orientation (not yet translated)."""
        return self.canonical @ self.rotation.transpose(1, 2)


class BodyGCN(nn.Module):
    """Image features → coarse body graph, global orientation and weak-perspective camera.

    1. *Initial estimate* from the global image feature: every vertex starts from its template
       position and the global feature, goes through ``blocks`` residual graph blocks, and a
       zero-initialised head predicts its displacement in the body's own frame; linear heads
       predict a continuous 6D rotation (starting at the identity) and the camera.
    2. *Refinement*, ``iterations`` times: each vertex of the current estimate is projected into
       the image, the encoder's feature maps are sampled there (pixel-aligned features), and a
       second graph network (shared across iterations) reads the vertex's canonical and posed
       positions, its pixel feature and the global feature. It predicts a displacement update
       per vertex, and, from the features pooled over the vertices, updates of the 6D rotation
       and of the camera. Sample locations carry no gradient (the features do).

    The GCNs work in the body's own frame, so the articulated shape never has to express a
    rigid turn of the whole body; the untrained network returns the template, facing the camera.

    Args:
        template: the coarse graph; its vertices are the mean rest-pose body (camera orientation,
            metres, pelvis at the origin).
        global_channels: width of the global image feature.
        map_channels: channels of the encoder's feature maps.
        channels: width of the graph blocks.
        blocks: number of :class:`~munet.graph.GraphResBlock` of each of the two graph networks.
        iterations: refinement iterations (0: the initial estimate only).
    """

    def __init__(
        self,
        template: MeshGraph,
        global_channels: int,
        map_channels: int,
        channels: int,
        blocks: int,
        iterations: int,
    ):
        super().__init__()
        if iterations < 0:
            raise ValueError(f"model.body_iterations must be >= 0, got {iterations}")
        self.iterations = iterations
        self.register_buffer("template", template.vertices.clone())
        self.register_buffer("identity_6d", torch.tensor(IDENTITY_6D), persistent=False)
        adjacency = template.adjacency()

        self.embed_position = nn.Linear(3, channels)
        self.embed_global = nn.Linear(global_channels, channels, bias=False)
        self.blocks = nn.Sequential(*(GraphResBlock(channels, channels, adjacency, GROUPS) for _ in range(blocks)))
        self.head = vertex_head(channels)
        self.global_head = zero_linear(global_channels, 6 + 3)

        self.refine_position = nn.Linear(6, channels)
        self.refine_pixel = nn.Linear(map_channels, channels, bias=False)
        self.refine_global = nn.Linear(global_channels, channels, bias=False)
        self.refine_blocks = nn.Sequential(
            *(GraphResBlock(channels, channels, adjacency, GROUPS) for _ in range(blocks))
        )
        self.refine_head = vertex_head(channels)
        self.refine_pooled = nn.Sequential(nn.ReLU(), zero_linear(channels, 6 + 3))

    def forward(
        self,
        global_feature: torch.Tensor,
        feature_maps: torch.Tensor,
        K: torch.Tensor,
        image_size: int,
        orthographic: torch.Tensor | None = None,
        start: BodyEstimate | None = None,
    ) -> BodyEstimate:
        """Estimate the body.

        Args:
            global_feature: ``(B, C)``.
            feature_maps: ``(B, C', h, w)`` covering the whole crop.
            K: ``(B, 3, 3)`` intrinsics in pixels of the ``image_size`` crop.
            image_size: ``S``, the crop's side in pixels.
            orthographic: ``(B,)`` flag, nonzero where ``K`` is orthographic (``None``: all
                perspective).
            start: where the initial estimate starts (its ``canonical`` ``(B, V_c, 3)`` and
                ``rotation``; its camera is not read), e.g. the skeleton-posed template
                (:mod:`munet.model.skeleton`); ``None``: the template, facing the camera.
        """
        rest = self.template if start is None else start.canonical
        base_6d = self.identity_6d if start is None else matrix_to_rotation_6d(start.rotation)
        x = self.embed_position(rest) + self.embed_global(global_feature)[:, None]
        canonical = rest + self.head(self.blocks(x))
        raw = self.global_head(global_feature)
        rotation_6d, camera = base_6d + raw[:, :6], raw[:, 6:]
        estimate = self._estimate(canonical, rotation_6d, camera)
        context = self.refine_global(global_feature)[:, None]
        for _ in range(self.iterations):
            with torch.no_grad():
                root = weak_to_translation(estimate.weak_camera, K, image_size, orthographic)
                points = estimate.posed + root[:, None]
            pixel = sample_pixel_features(feature_maps, points, K, image_size, orthographic)
            positions = torch.cat([estimate.canonical, estimate.posed], dim=-1)
            x = self.refine_position(positions) + self.refine_pixel(pixel) + context
            features = self.refine_blocks(x)
            canonical = canonical + self.refine_head(features)
            update = self.refine_pooled(features.mean(dim=1))
            rotation_6d, camera = rotation_6d + update[:, :6], camera + update[:, 6:]
            estimate = self._estimate(canonical, rotation_6d, camera)
        return estimate

    @staticmethod
    def _estimate(canonical: torch.Tensor, rotation_6d: torch.Tensor, camera: torch.Tensor) -> BodyEstimate:
        """Raw read-outs → a :class:`BodyEstimate` (the scale is ``INITIAL_SCALE · exp(raw)``)."""
        weak = torch.cat([INITIAL_SCALE * camera[:, :1].exp(), camera[:, 1:]], dim=1)
        return BodyEstimate(canonical, rotation_6d_to_matrix(rotation_6d), weak)


class ParamRegressor(nn.Module):
    """Body-model parameters ``(pose, shape)`` read out from predicted coarse vertices (an MLP).

    The vertices are detached: the read-out learns from the parameter loss alone and never pulls
    the mesh towards what is easy to read out.

    Args:
        num_vertices: ``V_c``.
        pose_dim: length of the body model's pose vector.
        shape_dim: length of its shape vector.
        hidden: width of the hidden layer.
    """

    def __init__(self, num_vertices: int, pose_dim: int, shape_dim: int, hidden: int = 1024):
        super().__init__()
        self.pose_dim, self.shape_dim = pose_dim, shape_dim
        self.mlp = nn.Sequential(
            nn.Linear(3 * num_vertices, hidden), nn.ReLU(), nn.Linear(hidden, pose_dim + shape_dim)
        )

    def forward(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Root-relative coarse vertices ``(B, V_c, 3)`` → ``(pose (B, pose_dim), shape (B, shape_dim))``."""
        out = self.mlp(vertices.detach().flatten(1))
        return out[:, : self.pose_dim], out[:, self.pose_dim :]
