"""Load a trained MuNet from a checkpoint written by ``jobs/train.py`` (weights only, no code)."""

from __future__ import annotations

from pathlib import Path

import torch

from munet.config import MuNetConfig
from munet.model import MuNet
from munet.train.checkpoint import load_checkpoint, model_from_checkpoint
from munet.train.storage import latest_checkpoint


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder, a ``state.pt`` file, or a run folder (its
    newest complete ``checkpoint_*`` by step).

    Raises:
        FileNotFoundError: nothing that looks like a checkpoint at ``path``.
    """
    path = Path(path)
    if path.is_file() or (path / "state.pt").is_file():
        return path
    newest = latest_checkpoint(str(path)) if path.is_dir() else None
    if newest is None:
        raise FileNotFoundError(
            f"No checkpoint at {path}: give a checkpoint folder (holding state.pt) or a run folder "
            "written by jobs/train.py (holding checkpoint_* folders)."
        )
    return Path(newest)


def load_trained_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[MuNet, MuNetConfig, int]:
    """The model of a checkpoint, in eval mode on ``device``, with its config and step.

    The network is built from the templates the checkpoint stores (no body model is loaded), so
    the result does not depend on the machine or thread count that loads it.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: not a checkpoint of this MuNet version, or its weights do not fit the model
            its config describes.
    """
    state = load_checkpoint(find_checkpoint(path), map_location="cpu")
    try:
        model = model_from_checkpoint(state)
    except ValueError as exc:
        raise ValueError(f"The checkpoint at {path}: {exc}") from exc
    return model.to(device).eval(), state.config, state.step
