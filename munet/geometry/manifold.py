"""Is a triangle mesh a closed, consistently oriented 2-manifold? (Its topology alone.)"""

from __future__ import annotations

import numpy as np
import torch


def manifold_defects(faces: np.ndarray | torch.Tensor, num_vertices: int) -> list[str]:
    """Why a triangle mesh is not a closed, consistently oriented 2-manifold (empty if it is).

    Checks: no degenerate face (a repeated vertex); every edge shared by exactly two faces that
    traverse it in opposite directions (closed, edge-manifold, oriented); every vertex used by a
    face; the faces around every vertex form a single fan (a disc neighbourhood, not two fans
    touching at a point). Positions play no part: self-intersections are not checked.

    Args:
        faces: ``(F, 3)`` vertex indices (NumPy or torch, any integer dtype), ``F >= 1``.
        num_vertices: ``V``, the number of vertices the indices point into.

    Returns:
        One readable line per kind of defect found (a degenerate face is reported alone).
    """
    if isinstance(faces, torch.Tensor):
        faces = faces.detach().cpu().numpy()
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must have shape (F, 3) with F >= 1, got {faces.shape}")
    degenerate = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    if degenerate.any():
        return [f"{int(degenerate.sum())} faces repeat a vertex"]

    # Half-edge 3f + k goes from corner k to corner k + 1 of face f.
    tails = faces.reshape(-1)
    heads = faces[:, [1, 2, 0]].reshape(-1)
    undirected = np.minimum(tails, heads) * num_vertices + np.maximum(tails, heads)
    _, edge_of_half, faces_per_edge = np.unique(undirected, return_inverse=True, return_counts=True)
    defects = []
    if (faces_per_edge == 1).any():
        defects.append(f"{int((faces_per_edge == 1).sum())} edges border one face only (holes)")
    if (faces_per_edge > 2).any():
        defects.append(f"{int((faces_per_edge > 2).sum())} edges are shared by more than two faces")
    forward = np.bincount(edge_of_half.reshape(-1), weights=tails < heads, minlength=len(faces_per_edge))
    flipped = (faces_per_edge == 2) & (forward != 1)
    if flipped.any():
        defects.append(
            f"{int(flipped.sum())} edges are traversed in the same direction by both their faces "
            "(inconsistent orientation)"
        )
    unused = num_vertices - len(np.unique(tails))
    if unused:
        defects.append(f"{unused} vertices are used by no face")
    if defects:
        return defects

    # Every half-edge now has exactly one twin. Around vertex v, the corner after corner (f, k) is
    # the one whose outgoing half-edge is v -> faces[f, k - 1] (the twin of the half-edge into v):
    # a permutation of the corners whose cycles are the fans.
    directed = tails * num_vertices + heads
    order = np.argsort(directed)
    previous = faces[:, [2, 0, 1]].reshape(-1)
    following = order[np.searchsorted(directed[order], tails * num_vertices + previous)]
    fans = _count_cycles(following)
    if fans != num_vertices:
        defects.append(
            f"{fans - num_vertices} extra face fans: some vertices join several surface sheets (non-manifold vertices)"
        )
    return defects


def _count_cycles(permutation: np.ndarray) -> int:
    """The number of cycles of a permutation of ``range(n)`` given as ``i -> permutation[i]``.

    Pointer doubling: after round ``k`` each element holds the smallest index among its next
    ``2^k`` successors, so a cycle of length ``L`` settles on its minimum within ``log2 L + 1``
    rounds; a round that changes nothing means every cycle has (its windows already cover it).
    """
    label = np.arange(len(permutation))
    step = permutation
    while True:
        reached = np.minimum(label, label[step])
        if np.array_equal(reached, label):
            return int((label == np.arange(len(permutation))).sum())
        label, step = reached, step[step]
