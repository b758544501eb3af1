"""Clothed branch: a GCN on the (subdivided) body graph that displaces the body into the clothed
surface. Only vertex positions change, so the output keeps the body graph's topology: a closed,
consistently oriented 2-manifold whenever the graph is one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from munet.geometry import vertex_normals
from munet.graph import GraphResBlock, MeshGraph
from munet.model.body_gcn import GROUPS, vertex_head
from munet.model.sampling import sample_pixel_features


def bounded_offsets(raw: torch.Tensor, max_offset: float) -> torch.Tensor:
    """Map raw vectors ``(..., 3)`` to displacements of length below ``max_offset``.

    ``d = max_offset · tanh(|r|) · r / |r|``: the direction of ``r`` is kept and its length is
    squashed smoothly (``d ≈ max_offset · r`` for small ``r``).
    """
    length = raw.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return raw * (max_offset * torch.tanh(length) / length)


class ClothGCN(nn.Module):
    """Body on the cloth graph → clothed vertices (same topology).

    Per-vertex inputs: the body position (root-relative), the body's vertex normal, the one-hot
    body-part label, image features sampled where the body vertex projects (pixel-aligned), and
    the global image feature. A zero-initialised head predicts bounded displacements
    (:func:`bounded_offsets`), so the untrained branch returns the body itself.

    Args:
        graph: the cloth graph (topology and rest shape).
        parts: ``(V_cloth,)`` long part label of each vertex.
        num_parts: number of part labels.
        map_channels: channels of the encoder's feature maps.
        global_channels: width of the global image feature.
        channels: width of the graph blocks.
        blocks: number of :class:`~munet.graph.GraphResBlock`.
        max_offset: largest displacement from the body, metres.
    """

    def __init__(
        self,
        graph: MeshGraph,
        parts: torch.Tensor,
        num_parts: int,
        map_channels: int,
        global_channels: int,
        channels: int,
        blocks: int,
        max_offset: float,
    ):
        super().__init__()
        if max_offset <= 0:
            raise ValueError(f"model.max_offset must be > 0 metres, got {max_offset}")
        self.graph = graph
        self.max_offset = max_offset
        self.register_buffer("part_one_hot", F.one_hot(parts, num_parts).float(), persistent=False)
        self.embed_vertex = nn.Linear(3 + 3 + num_parts + map_channels, channels)
        self.embed_global = nn.Linear(global_channels, channels, bias=False)
        adjacency = graph.adjacency()
        self.blocks = nn.Sequential(*(GraphResBlock(channels, channels, adjacency, GROUPS) for _ in range(blocks)))
        self.head = vertex_head(channels)

    def forward(
        self,
        body: torch.Tensor,
        root: torch.Tensor,
        K: torch.Tensor,
        feature_maps: torch.Tensor,
        global_feature: torch.Tensor,
        image_size: int,
        orthographic: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Displacements ``(B, V_cloth, 3)`` (metres) of the body ``body`` into the clothed surface.

        Args:
            body: ``(B, V_cloth, 3)`` root-relative body vertices on the cloth graph, metres.
            root: ``(B, 3)`` camera-frame position of the root (places the body for projection).
            K: ``(B, 3, 3)`` intrinsics; ``image_size``: side of the crop in pixels.
            feature_maps: ``(B, C', h, w)``; global_feature: ``(B, C)``.
            orthographic: ``(B,)`` flag, nonzero where ``K`` is orthographic (``None``: all
                perspective).
        """
        normals = vertex_normals(body, self.graph.faces)
        pixel = sample_pixel_features(feature_maps, body + root[:, None], K, image_size, orthographic)
        parts = self.part_one_hot.expand(body.shape[0], -1, -1)
        x = self.embed_vertex(torch.cat([body, normals, parts, pixel], dim=-1))
        x = x + self.embed_global(global_feature)[:, None]
        return bounded_offsets(self.head(self.blocks(x)), self.max_offset)
