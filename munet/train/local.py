"""Single-process training, for development, debugging and tests (no Ray, no DDP).

Uses the same :func:`~munet.train.step.training_step`, optimiser, learning-rate schedule and
non-finite guard as the distributed trainer (:mod:`munet.train.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from munet.body import BodyModel, build_body_model
from munet.checkpoint.load import model_from_checkpoint
from munet.checkpoint.state import TrainingState, restore_training_state, save_checkpoint
from munet.config import MuNetConfig
from munet.model import MuNet
from munet.train.optim import OptimizerStep, accumulation_steps, build_optimizer
from munet.train.step import step_generator, training_step

log = logging.getLogger(__name__)

Batch = Mapping[str, Any]


def _endless(batches: Iterable[Batch]) -> Iterator[Batch]:
    """A sequence is cycled; any other iterable is consumed once."""
    if isinstance(batches, Sequence):
        if len(batches) == 0:
            raise ValueError("train_local needs at least one batch")
        while True:
            yield from batches
    yield from batches


def train_local(
    config: MuNetConfig,
    batches: Iterable[Batch],
    steps: int | None = None,
    out_dir: str | Path | None = None,
    *,
    model: MuNet | None = None,
    body: BodyModel | None = None,
    state: TrainingState | None = None,
    on_step: Callable[[dict[str, float]], bool] | None = None,
) -> list[dict[str, float]]:
    """Train a MuNet in this process.

    Args:
        config: the run configuration (``train`` section: lr, weight decay, warm-up, clipping,
            ``max_bad_steps``, ``log_every``, seed, precision, and ``global_batch_size``: a
            multiple of ``batch_size`` accumulates that many batches per step).
        batches: stacked decoded samples (dicts of arrays/tensors). A list is cycled; an
            iterator (e.g. a data-set iterator) must yield a batch for every batch it trains on.
        steps: number of optimisation steps (default ``config.train.steps``).
        out_dir: if given, the final checkpoint (:func:`munet.checkpoint.state.save_checkpoint`)
            and ``history.json`` are written there.
        model: train this model in place (default: a new ``MuNet(config, body)``); pass it to
            keep a handle on the trained network.
        body: the body model for a new MuNet (default: built from ``config.body``).
        state: continue this checkpoint (:func:`munet.checkpoint.state.load_checkpoint`): its
            weights (into ``model``, or into a network built from its templates), optimiser,
            schedule and RNG states are restored and training runs steps ``state.step + 1``
            to ``steps``; ``batches`` then starts with the batch of step ``state.step + 1``.
        on_step: called with each step's history entry once the step is done; returning true
            ends training after that step (the checkpoint then holds it).

    Returns:
        The history: one dict per step trained with ``step``, ``loss``, ``lr``, ``applied`` (0
        when the step was skipped as non-finite) and the logs of :func:`training_step`.

    Raises:
        munet.train.optim.NonFiniteLossError: too many consecutive non-finite steps.
        ValueError: ``batches`` ran out before ``steps``.
    """
    steps = config.train.steps if steps is None else steps
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    torch.manual_seed(config.train.seed)
    if model is None:
        if state is not None:
            model = model_from_checkpoint(state, config)
        else:
            model = MuNet(config, body if body is not None else build_body_model(config.body))
    elif state is not None:
        model.load_state_dict(state.model)
    model.train()
    optimizer, scheduler = build_optimizer(model, config)
    device = next(model.parameters()).device
    optimizer_step = OptimizerStep(model, optimizer, scheduler, config.train, device)
    accumulation = accumulation_steps(config.train, workers=1)
    start = 0 if state is None else restore_training_state(state, optimizer, scheduler, optimizer_step)

    history: list[dict[str, float]] = []
    stream = _endless(batches)
    last = start
    for step in range(start + 1, steps + 1):
        lr = optimizer.param_groups[0]["lr"]
        for index in range(accumulation):
            batch = next(stream, None)
            if batch is None:
                raise ValueError(f"the batches ran out after {step - 1} of {steps} steps")
            loss, logs = training_step(model, batch, step, config, step_generator(config.train.seed, step, index))
            optimizer_step.backward(loss, accumulation)
        applied = optimizer_step.step(step, logs)
        logs = {name: float(value) for name, value in logs.items()}
        history.append({"step": step, "loss": float(loss.detach()), "lr": lr, "applied": float(applied), **logs})
        if step % config.train.log_every == 0 or step == steps:
            log.info(
                "step %d/%d loss %.4f | pve %.1f mm | %s",
                step,
                steps,
                history[-1]["loss"],
                logs["metric/pve_mm"],
                "applied" if applied else "skipped (non-finite)",
            )
        last = step
        if on_step is not None and on_step(history[-1]):
            break
    if out_dir is not None:
        save_checkpoint(
            out_dir,
            step=last,
            model=model,
            config=config,
            optimizer=optimizer,
            scheduler=scheduler,
            guard=optimizer_step.state_dict(),
        )
        (Path(out_dir) / "history.json").write_text(json.dumps(history, indent=1))
    return history
