"""Load a trained MuNet from a checkpoint written by ``jobs/train.py`` (weights only, no code)."""

from __future__ import annotations

from pathlib import Path

import torch

from munet.body import build_body_model
from munet.config import MuNetConfig
from munet.model import MuNet
from munet.train.checkpoint import load_checkpoint
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

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the checkpoint's weights do not fit the model its config describes.
    """
    state = load_checkpoint(find_checkpoint(path), map_location=device)
    config = state.config
    model = MuNet(config, build_body_model(config.body))
    try:
        model.load_state_dict(state.model)
    except RuntimeError as exc:
        raise ValueError(
            f"The checkpoint at {path} does not fit the model its configuration describes "
            f"(was it written by another version of MuNet?): {exc}"
        ) from exc
    return model.to(device).eval(), config, state.step
