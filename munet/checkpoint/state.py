"""The checkpoint file: writing it, reading it safely, and restoring a run's training state.

A checkpoint is a folder holding ``state.pt`` (model, optimizer and scheduler state, step, RNG
states, the non-finite step counts of :class:`~munet.train.optim.OptimizerStep`, and the
network's templates: the graph hierarchy, sampling operators, joint regressor and
faces; only tensors and plain containers, so it loads with ``torch.load(weights_only=True)`` and
never runs code from the file) and ``config.yaml`` (the configuration that produced it).

A checkpoint is self-contained: :func:`munet.checkpoint.load.model_from_checkpoint` builds the
network from the stored templates, never from the body model or a cache, so it runs the same on
any machine.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.config import MuNetConfig, config_from_dict, config_to_dict, save_config

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
FORMAT = 2
"""Checkpoint layout version. 2: the network's templates are stored (format 1 rebuilt them from the
body model, which was not reproducible across thread counts)."""


@dataclass
class TrainingState:
    """What a checkpoint restores."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    rng: dict[str, Any] | None
    config: MuNetConfig
    templates: dict[str, Any]
    guard: dict[str, float] | None = None
    """The non-finite step counts (:meth:`munet.train.optim.OptimizerStep.state_dict`); ``None``
    in checkpoints written before they were stored."""


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as tensors/plain values (weights-only safe)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))


def save_checkpoint(
    folder: str | Path,
    *,
    step: int,
    model: torch.nn.Module,
    config: MuNetConfig,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    guard: Mapping[str, float] | None = None,
) -> Path:
    """Write a checkpoint folder (created if needed) and return it.

    ``model`` may be DDP-wrapped: the inner module's parameters are saved, so the checkpoint
    loads into a plain :class:`~munet.model.MuNet`. ``guard`` is the optimisation step's
    non-finite step counts (:meth:`munet.train.optim.OptimizerStep.state_dict`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inner = getattr(model, "module", model)
    state = {
        "format": FORMAT,
        "templates": inner.templates.to_tensors(),
        "step": int(step),
        "model": inner.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "config": config_to_dict(config),
        "guard": {key: float(value) for key, value in guard.items()} if guard is not None else None,
    }
    tmp = folder / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / STATE_FILE)
    save_config(config, folder / CONFIG_FILE)
    return folder


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> TrainingState:
    """Read a checkpoint folder (or its ``state.pt``) safely.

    Raises:
        FileNotFoundError: no checkpoint at ``path``, with what was expected.
        ValueError: the file is not a MuNet checkpoint.
    """
    path = Path(path)
    file = path / STATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"No MuNet checkpoint at {path}: expected a folder with {STATE_FILE} (as written by "
            "jobs/train.py under <out>/<run>/checkpoint_*) or the file itself."
        )
    try:
        raw = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{file} is not a readable MuNet checkpoint: {exc}") from exc
    missing = {"step", "model", "config"} - set(raw)
    if missing:
        raise ValueError(f"{file} is not a MuNet checkpoint (missing {sorted(missing)})")
    if raw.get("format", 1) != FORMAT or "templates" not in raw:
        raise ValueError(
            f"{file} is a MuNet checkpoint of format {raw.get('format', 1)}; this version reads format "
            f"{FORMAT} (self-contained: it stores the network's graph templates, and its network differs "
            "from earlier ones). Retrain with jobs/train.py (or rebuild the shipped model with `make model`)."
        )
    return TrainingState(
        step=int(raw["step"]),
        model=raw["model"],
        optimizer=raw.get("optimizer"),
        scheduler=raw.get("scheduler"),
        rng=raw.get("rng"),
        config=config_from_dict(raw["config"]),
        templates=raw["templates"],
        guard=raw.get("guard"),
    )


def restore_training_state(
    state: TrainingState, optimizer: torch.optim.Optimizer, scheduler: Any, stepper: Any = None
) -> int:
    """Restore a checkpoint's optimiser, learning-rate schedule and RNG states, and, given the
    run's :class:`~munet.train.optim.OptimizerStep` as ``stepper``, its non-finite step counts
    (the weights are restored with the model:
    :func:`munet.checkpoint.load.model_from_checkpoint`); returns the step
    it was taken at, the last step done."""
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    if stepper is not None and state.guard is not None:
        stepper.load_state_dict(state.guard)
    if state.rng is not None:
        set_rng_state(state.rng)
    return state.step
