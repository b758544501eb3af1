"""Optimiser, learning-rate schedule, and the guarded optimisation step shared by every trainer."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from munet.config import MuNetConfig


class NonFiniteLossError(FloatingPointError):
    """Too many consecutive steps produced a NaN/inf loss or gradient, or a run ended on a
    non-finite loss. Restarting from a checkpoint would repeat it: a trainer stops instead."""


def build_optimizer(
    model: torch.nn.Module, config: MuNetConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with linear warm-up then cosine decay to 10% of ``train.lr`` over ``train.steps``."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
    )
    warmup, total = config.train.lr_warmup, max(config.train.steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is true on every DDP rank (so that all ranks skip a step together)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


class OptimizerStep:
    """Backward, clip, step — or skip the step when the loss or gradients are not finite.

    A skipped step leaves the parameters untouched. ``train.max_bad_steps`` consecutive skips
    raise :class:`NonFiniteLossError` with advice, instead of silently training on garbage.
    Under DDP every rank takes the same decision. The counts (:meth:`state_dict`) are stored in
    checkpoints, so a restarted or resumed run keeps counting where it stopped.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: MuNetConfig,
    ):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.clip = config.train.grad_clip
        self.max_bad = config.train.max_bad_steps
        self.skipped = 0
        self._consecutive = 0

    def __call__(self, loss: torch.Tensor, step: int) -> bool:
        """Apply one optimisation step for ``loss``; returns whether it was applied."""
        device = loss.device
        ok = _all_ranks_agree(bool(torch.isfinite(loss.detach()).all()), device)
        if ok:
            loss.backward()
            params = [p for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.clip) if params else torch.zeros(())
            ok = _all_ranks_agree(bool(torch.isfinite(norm)), device)
        if ok:
            self.optimizer.step()
            self.scheduler.step()
            self._consecutive = 0
        else:
            self.skipped += 1
            self._consecutive += 1
            if self._consecutive > self.max_bad:
                raise NonFiniteLossError(
                    f"step {step}: the loss or its gradients were NaN/inf for {self._consecutive} "
                    "consecutive steps. Lower train.lr, check the data (python -m munet.data check), "
                    "or resume from the last checkpoint with a smaller learning rate."
                )
        self.optimizer.zero_grad(set_to_none=True)
        return ok

    def state_dict(self) -> dict[str, int]:
        """The counts to checkpoint: ``skipped`` (all skipped steps) and ``consecutive`` (the
        current run of skipped steps)."""
        return {"skipped": self.skipped, "consecutive": self._consecutive}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue counting from a checkpoint's :meth:`state_dict`."""
        self.skipped = int(state.get("skipped", 0))
        self._consecutive = int(state.get("consecutive", 0))
