"""Building sparse matrices: the one way every graph operator and stored matrix is made.

Torch checks a sparse tensor's invariants (indices inside the shape) only when asked, and warns
once per process when nobody said either way. Matrices read from files (caches, checkpoints)
are checked, so damaged indices raise here rather than crash a later product; matrices built
from a mesh are correct by construction and skip the check.
"""

from __future__ import annotations

import torch


def sparse_matrix(
    indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int], *, check: bool = False
) -> torch.Tensor:
    """The coalesced sparse COO ``shape`` matrix with ``values`` ``(N,)`` at ``indices`` ``(2, N)``
    (repeated entries summed).

    Args:
        check: verify the invariants (indices non-negative and inside ``shape``): for data read
            from a file.

    Raises:
        ValueError: ``check`` and the indices break the invariants (the message says how).
    """
    with torch.sparse.check_sparse_tensor_invariants(enable=check):
        try:
            return torch.sparse_coo_tensor(indices, values, shape).coalesce()
        except RuntimeError as exc:
            if not check:
                raise
            raise ValueError(f"invalid sparse {tuple(shape)} matrix: {exc}") from exc
