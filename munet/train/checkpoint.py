"""Training checkpoints: everything needed to continue a run at the exact next step.

A checkpoint is a folder holding ``state.pt`` (model, optimizer and scheduler state, step, RNG
states; only tensors and plain containers, so it loads with ``torch.load(weights_only=True)`` and
never runs code from the file) and ``config.yaml`` (the configuration that produced it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.config import MuNetConfig, config_from_dict, config_to_dict, save_config

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"


@dataclass
class TrainingState:
    """What a checkpoint restores."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    rng: dict[str, Any] | None
    config: MuNetConfig


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
) -> Path:
    """Write a checkpoint folder (created if needed) and return it.

    ``model`` may be DDP-wrapped: the inner module's parameters are saved, so the checkpoint
    loads into a plain :class:`~munet.model.MuNet`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inner = getattr(model, "module", model)
    state = {
        "step": int(step),
        "model": inner.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "config": config_to_dict(config),
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
    return TrainingState(
        step=int(raw["step"]),
        model=raw["model"],
        optimizer=raw.get("optimizer"),
        scheduler=raw.get("scheduler"),
        rng=raw.get("rng"),
        config=config_from_dict(raw["config"]),
    )
