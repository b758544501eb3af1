"""The mutualistic mechanism between the body and the clothed branch.

- **Guidance** (body → clothed): the clothed branch is built on the predicted body, or, with
  probability ``teacher_forcing(step)`` per sample, on the ground-truth body (``mutual.guidance =
  false``: on the mean template instead).
- **Feedback** (clothed → body): everything of the body branch that enters the clothed branch or the
  consistency losses passes through :func:`scale_gradient`: the forward value is unchanged and the
  gradient flowing back into the body branch is multiplied by ``feedback_weight(step)``. With
  ``mutual.feedback = false`` the body is detached: the body branch receives exactly no gradient
  from clothed or consistency losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from munet.config import MutualConfig
from munet.schedules import schedule_value


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.weight, None


def scale_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``weight`` backwards."""
    return _ScaleGradient.apply(x, float(weight))


@dataclass(frozen=True)
class MutualState:
    """The mutualistic mechanism at one training step.

    Attributes:
        guidance: build the clothed branch on the predicted body (else on the template).
        teacher_forcing: per-sample probability of building it on the ground-truth body instead.
        feedback: whether any gradient flows from clothed/consistency losses into the body branch.
        feedback_weight: the scale of that gradient (``0`` when ``feedback`` is false).
    """

    guidance: bool
    teacher_forcing: float
    feedback: bool
    feedback_weight: float

    @classmethod
    def at_step(cls, config: MutualConfig, step: int | None) -> MutualState:
        """The state at training ``step``; ``step=None`` means inference (no teacher forcing)."""
        forcing = 0.0 if step is None else schedule_value(config.teacher_forcing, step)
        if not 0.0 <= forcing <= 1.0:
            raise ValueError(f"mutual.teacher_forcing is a probability, got {forcing} at step {step}")
        weight = 1.0 if step is None else schedule_value(config.feedback_weight, step)
        return cls(
            guidance=config.guidance,
            teacher_forcing=forcing,
            feedback=config.feedback,
            feedback_weight=weight if config.feedback else 0.0,
        )

    def feedback_view(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (a body-branch tensor) as the clothed side may see it: detached when feedback is
        off, else with its gradient scaled by ``feedback_weight``."""
        return scale_gradient(x, self.feedback_weight) if self.feedback else x.detach()

    def forced_samples(self, batch_size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """``(B,)`` bool: which samples build the clothed branch on the ground-truth body.

        Drawn on the CPU from ``generator`` (reproducible per rank and step), then moved to
        ``device``.
        """
        if self.teacher_forcing <= 0.0:
            return torch.zeros(batch_size, dtype=torch.bool, device=device)
        draws = torch.rand(batch_size, generator=generator)
        return (draws < self.teacher_forcing).to(device)
