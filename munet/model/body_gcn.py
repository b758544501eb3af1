"""Body branch: a GCN that deforms the coarse template graph into the body, plus camera and
(optionally) body-model parameter read-outs."""

from __future__ import annotations

import torch
from torch import nn

from munet.graph import GraphResBlock, MeshGraph, VertexGroupNorm

GROUPS = 8
"""GroupNorm groups of every graph block (channel widths must be multiples of 2 × GROUPS)."""

INITIAL_SCALE = 1.0
"""Weak-perspective scale ``s`` (normalised image units per metre) before training: a 1.7 m person
then spans about 85% of the crop."""


def vertex_head(channels: int) -> nn.Sequential:
    """``GroupNorm → ReLU → Linear(C → 3)``, zero-initialised so that it first predicts zero."""
    linear = nn.Linear(channels, 3)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(VertexGroupNorm(GROUPS, channels), nn.ReLU(), linear)


class BodyGCN(nn.Module):
    """Template graph + global image feature → coarse body vertices and a weak-perspective camera.

    Every vertex starts from its template position and the global feature (both linearly
    embedded to ``channels``), goes through ``blocks`` residual graph blocks, and a zero-initialised
    head predicts its displacement from the template, so the untrained network returns the template.

    Args:
        template: the coarse graph; its vertices are the mean rest-pose body (camera orientation,
            metres, pelvis at the origin).
        global_channels: width of the global image feature.
        channels: width of the graph blocks.
        blocks: number of :class:`~munet.graph.GraphResBlock`.
    """

    def __init__(self, template: MeshGraph, global_channels: int, channels: int, blocks: int):
        super().__init__()
        self.register_buffer("template", template.vertices.clone())
        self.embed_position = nn.Linear(3, channels)
        self.embed_global = nn.Linear(global_channels, channels, bias=False)
        adjacency = template.adjacency()
        self.blocks = nn.Sequential(
            *(GraphResBlock(channels, channels, adjacency, GROUPS) for _ in range(blocks))
        )
        self.head = vertex_head(channels)
        self.camera = nn.Linear(global_channels, 3)
        nn.init.zeros_(self.camera.weight)
        nn.init.zeros_(self.camera.bias)

    def forward(self, global_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C)`` global feature → ``(vertices (B, V_c, 3), weak camera (B, 3))``.

        Vertices are in metres, camera orientation, near-root-relative (the caller re-centres them
        on the regressed pelvis). The camera is ``(s, t_x, t_y)`` with ``s > 0``; see
        :mod:`munet.model.camera`.
        """
        x = self.embed_position(self.template)[None] + self.embed_global(global_feature)[:, None]
        vertices = self.template + self.head(self.blocks(x))
        raw = self.camera(global_feature)
        weak = torch.cat([INITIAL_SCALE * raw[:, :1].exp(), raw[:, 1:]], dim=1)
        return vertices, weak


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
