"""Weighted means: how a loss counts only the samples (or joints) whose target is real.

Partial supervision (:mod:`munet.data.contract`) fills a missing target with zeros and flags it 0;
a loss multiplies its per-element errors by the flags and divides by their sum, so a batch mixing
data sets gives each term the mean over the samples that have its target, and a term that no
sample of the batch can compute is 0 (with a zero gradient), never NaN.
"""

from __future__ import annotations

import torch


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``sum(values · w) / sum(w)`` with ``w`` broadcast to ``values``' shape; the plain mean when
    ``weight`` is ``None``; 0 when every weight is 0. Elements of weight 0 are left out even when
    they are not finite.

    Args:
        values: ``(B, ...)`` errors.
        weight: ``(B,)`` or ``(B, ...)`` non-negative weights, broadcastable to ``values`` once
            trailing singleton dimensions are added (``(B,)`` weighs whole samples, ``(B, J)``
            the joints of ``(B, J, D)`` values).
    """
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype)
    while weight.dim() < values.dim():
        weight = weight[..., None]
    weight = torch.broadcast_to(weight, values.shape)
    kept = torch.where(weight > 0, values, torch.zeros_like(values))
    return (kept * weight).sum() / weight.sum().clamp_min(1e-12)
