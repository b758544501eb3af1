"""Optimiser, learning-rate schedule, gradient accumulation, and the guarded optimisation step
shared by every trainer."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch

from munet.config import MuNetConfig, TrainConfig
from munet.losses import find_nonfinite
from munet.train.precision import resolve_precision

log = logging.getLogger(__name__)


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


def accumulation_steps(train: TrainConfig, workers: int) -> int:
    """Batches each worker accumulates per optimisation step: 1 when ``train.global_batch_size``
    is 0, else ``global_batch_size / (batch_size × workers)``.

    Raises:
        ValueError: the global batch is not a positive multiple of ``batch_size`` × ``workers``.
    """
    if train.global_batch_size <= 0:
        return 1
    per_pass = train.batch_size * workers
    steps, rest = divmod(train.global_batch_size, per_pass)
    if steps < 1 or rest:
        raise ValueError(
            f"train.global_batch_size {train.global_batch_size} is not a multiple of train.batch_size "
            f"{train.batch_size} × {workers} worker(s) = {per_pass}: choose a global batch that is one "
            f"(e.g. {max(steps, 1) * per_pass}), or another batch size or worker count"
        )
    return steps


class OptimizerStep:
    """Backward, clip, step — or skip the step when the gradients are not finite.

    A training step calls :meth:`backward` once per accumulated batch, then :meth:`step`. A NaN or
    inf loss makes its gradients non-finite, so one check of the clipped gradient norm covers both;
    under DDP the gradients are averaged over the ranks before the check, so every rank sees the
    same norm and takes the same decision without another collective. That check is the one
    device-to-host read of a step.

    A skipped step leaves the parameters untouched. ``train.max_bad_steps`` consecutive skips
    raise :class:`NonFiniteLossError` with advice, instead of silently training on garbage. Under
    ``fp16`` the loss is scaled (``torch.amp.GradScaler``): an overflow skips the step and halves
    the scale, and counts as a bad step only once the scale is below 1. The counts and the loss
    scale (:meth:`state_dict`) are stored in checkpoints, so a restarted or resumed run keeps
    counting where it stopped.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        train: TrainConfig,
        device: torch.device | None = None,
    ):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.clip = train.grad_clip
        self.max_bad = train.max_bad_steps
        device = device if device is not None else torch.device("cpu")
        self.scaler = torch.amp.GradScaler(device.type, enabled=resolve_precision(train.precision, device) == "fp16")
        self.skipped = 0
        self._consecutive = 0

    def backward(self, loss: torch.Tensor, accumulation: int = 1) -> None:
        """Add the gradients of one of ``accumulation`` batches' ``loss`` (scaled by
        ``1 / accumulation``, so that the step follows the mean over the batches)."""
        self.scaler.scale(loss / accumulation).backward()

    def __call__(self, loss: torch.Tensor, step: int) -> bool:
        """A step on one batch's ``loss``: :meth:`backward`, then :meth:`step`."""
        self.backward(loss)
        return self.step(step)

    def step(self, step: int, logs: Mapping[str, torch.Tensor | float] | None = None) -> bool:
        """Clip and apply the accumulated gradients, or skip them if they are not finite; returns
        whether the step was applied. ``logs`` (the step's ``loss/<term>`` values) name the
        non-finite terms in the warning of a skipped step."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip) if params else torch.zeros(())
        applied = bool(torch.isfinite(norm))
        overflow = not applied and self.scaler.is_enabled() and self.scaler.get_scale() >= 1.0
        if applied:
            self.scaler.step(self.optimizer)
            self.scheduler.step()
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if applied:
            self._consecutive = 0
            return True
        if overflow:  # the loss scale was halved: not a bad step
            return False
        self.skipped += 1
        self._consecutive += 1
        bad = find_nonfinite({name: torch.as_tensor(value) for name, value in (logs or {}).items() if "loss/" in name})
        log.warning("step %d skipped: non-finite gradients%s", step, f" (non-finite loss terms: {bad})" if bad else "")
        if self._consecutive > self.max_bad:
            raise NonFiniteLossError(
                f"step {step}: the loss or its gradients were NaN/inf for {self._consecutive} "
                "consecutive steps. Lower train.lr, check the data (python -m munet.data check), "
                "or resume from the last checkpoint with a smaller learning rate."
            )
        return False

    def state_dict(self) -> dict[str, float]:
        """What to checkpoint: ``skipped`` (all skipped steps), ``consecutive`` (the current run of
        skipped steps) and ``loss_scale`` (``fp16``'s loss scale; 1 otherwise)."""
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        return {"skipped": self.skipped, "consecutive": self._consecutive, "loss_scale": float(scale)}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Continue from a checkpoint's :meth:`state_dict`."""
        self.skipped = int(state.get("skipped", 0))
        self._consecutive = int(state.get("consecutive", 0))
        if self.scaler.is_enabled() and "loss_scale" in state:
            self.scaler.update(float(state["loss_scale"]))
