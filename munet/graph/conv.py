"""Graph convolution layers on a fixed mesh graph, for batched per-vertex features ``(B, V, C)``.

Sparse matrices are held by :class:`SparseOperator` as two dense buffers (``indices``, ``values``)
and assembled into a sparse COO tensor at each call (microseconds). Sparse tensors cannot be buffers
themselves: DistributedDataParallel's initial buffer broadcast fails on them ("No support for sparse
tensors"). Dense buffers follow ``.to(device)``, go through ``state_dict`` (so a checkpoint records
the graph and refuses a graph of another size) and are broadcast by DDP.

All products are sparse-dense matrix products, deterministic on the CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from munet.graph.mesh_graph import sparse_bmm


class SparseOperator(nn.Module):
    """A fixed sparse ``(N, M)`` matrix applied to batched features ``(B, M, C) -> (B, N, C)``.

    Use it for a graph adjacency or for sampling matrices (``SamplingMatrices.up`` /
    ``.down``, the ``up`` of :func:`munet.graph.subdivide`).
    """

    indices: torch.Tensor
    values: torch.Tensor

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        if matrix.layout != torch.sparse_coo or matrix.dim() != 2:
            raise ValueError(
                f"SparseOperator needs a 2-D sparse COO tensor, got {matrix.layout} with shape "
                f"{tuple(matrix.shape)}; convert with .to_sparse()"
            )
        matrix = matrix.coalesce()
        self.shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        self.register_buffer("indices", matrix.indices().clone())
        self.register_buffer("values", matrix.values().to(torch.float32).clone())

    def matrix(self) -> torch.Tensor:
        """The sparse COO ``(N, M)`` tensor, on the buffers' device."""
        return torch.sparse_coo_tensor(self.indices, self.values, self.shape, is_coalesced=True, check_invariants=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, M, C) -> (B, N, C)``; the features' dtype must match the buffers'."""
        return sparse_bmm(self.matrix(), x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, nnz={self.values.numel()}"


class GraphConv(nn.Module):
    """``y = x W_self + (Â x) W_neighbour + b`` on a fixed graph.

    ``Â`` is the adjacency given (typically :meth:`MeshGraph.adjacency`, row-normalized with self
    loops, so ``Â x`` is the mean over each vertex's closed one-ring). The self term lets a vertex
    tell itself apart from its neighbourhood.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        adjacency: sparse COO ``(V, V)``.
        bias: add a learned bias (on the self term).

    Shapes: ``(B, V, C_in) -> (B, V, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, bias: bool = True) -> None:
        super().__init__()
        self.adjacency = SparseOperator(adjacency)
        self.self_linear = nn.Linear(in_channels, out_channels, bias=bias)
        self.neighbour_linear = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Â (x W) == (Â x) W: aggregate on whichever side has fewer channels.
        if self.neighbour_linear.out_features < self.neighbour_linear.in_features:
            neighbours = self.adjacency(self.neighbour_linear(x))
        else:
            neighbours = self.neighbour_linear(self.adjacency(x))
        return self.self_linear(x) + neighbours


class VertexGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` over the channels of ``(B, V, C)`` features (statistics over groups of
    channels and all vertices of one sample)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class GraphResBlock(nn.Module):
    """Pre-activation residual block on a mesh graph (the CMR/GraphCMR block layout).

    ``GroupNorm → ReLU → Linear(C_in → C_out/2) → GroupNorm → ReLU → GraphConv(C_out/2) →
    GroupNorm → ReLU → Linear(C_out/2 → C_out)``, plus the input (through a per-vertex linear map
    when ``C_in != C_out``).

    Args:
        in_channels: ``C_in``, divisible by ``groups``.
        out_channels: ``C_out``, even, with ``C_out / 2`` divisible by ``groups``.
        adjacency: sparse COO ``(V, V)`` normalized adjacency, see :class:`GraphConv`.
        groups: number of GroupNorm groups.

    Shapes: ``(B, V, C_in) -> (B, V, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, groups: int = 8) -> None:
        super().__init__()
        hidden = out_channels // 2
        if out_channels % 2 or in_channels % groups or hidden % groups:
            raise ValueError(
                f"GraphResBlock({in_channels} -> {out_channels}, groups={groups}): in_channels and "
                f"out_channels / 2 must be divisible by groups, and out_channels even"
            )
        self.layers = nn.Sequential(
            VertexGroupNorm(groups, in_channels),
            nn.ReLU(),
            nn.Linear(in_channels, hidden),
            VertexGroupNorm(groups, hidden),
            nn.ReLU(),
            GraphConv(hidden, hidden, adjacency),
            VertexGroupNorm(groups, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_channels),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.layers(x)
