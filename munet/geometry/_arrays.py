"""NumPy callers (data generation, export) and torch callers share each formula of this package.

A function that accepts both takes its inputs through :func:`as_tensor` and hands its result back
through :func:`like`: tensors stay tensors (dtype, device and autograd untouched), and NumPy arrays
are computed on as CPU float64 (int64 for indices) tensors and come back as NumPy arrays.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)
"""A NumPy array or a torch tensor; a function annotated with it returns the kind it was given."""

_NUMPY_DTYPES = {torch.float64: np.float64, torch.int64: np.int64}


def as_tensor(value: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a tensor: a tensor unchanged (moved to ``device`` if given; an index tensor is
    cast to ``dtype`` too), anything else converted to a ``dtype`` tensor (on ``device``).

    Args:
        dtype: ``torch.float64`` (coordinates) or ``torch.int64`` (indices).
    """
    if isinstance(value, torch.Tensor):
        if not dtype.is_floating_point and value.dtype != dtype:
            value = value.to(dtype)
        return value if device is None else value.to(device)
    return torch.as_tensor(np.ascontiguousarray(value, dtype=_NUMPY_DTYPES[dtype]), device=device)


def like(result: torch.Tensor, given: ArrayOrTensor) -> ArrayOrTensor:
    """``result`` as the kind of ``given``: a tensor if ``given`` was one, else a NumPy array."""
    if isinstance(given, torch.Tensor):
        return result
    return result.detach().cpu().numpy()
