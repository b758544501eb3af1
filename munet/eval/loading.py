"""Load a trained MuNet from a checkpoint written by ``jobs/train.py`` (weights only, no code).

A checkpoint is self-contained, and the configuration it stores never chooses files to load: its
file paths (body model folder, caches, encoder weights, data) are cleared before the network is
built (:func:`without_file_paths`), so a checkpoint from elsewhere cannot make this machine read,
or unpickle, a file of its choosing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from munet.config import MuNetConfig
from munet.model import MuNet
from munet.model.encoder import resolve_norm
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


def without_file_paths(config: MuNetConfig) -> MuNetConfig:
    """``config`` with every setting that names a file or folder cleared: ``body.model_dir``,
    ``body.cache_dir``, ``graph.cache_dir``, ``model.encoder_weights`` and ``data.path``.

    ``model.encoder_norm: auto`` is replaced by what it stood for with the stored weights file, so
    the network built is the one that was trained (the trained weights replace the file's anyway).

    Raises:
        ValueError: an unknown ``model.encoder_norm``.
    """
    norm = resolve_norm(config.model.encoder_norm, config.model.encoder_weights)
    return dataclasses.replace(
        config,
        body=dataclasses.replace(config.body, model_dir=None, cache_dir=None),
        graph=dataclasses.replace(config.graph, cache_dir=None),
        model=dataclasses.replace(config.model, encoder_weights=None, encoder_norm=norm),
        data=dataclasses.replace(config.data, path=None),
    )


def load_trained_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[MuNet, MuNetConfig, int]:
    """The model of a checkpoint, in eval mode on ``device``, with its config and step.

    The network is built from the templates the checkpoint stores (no body model is loaded), so
    the result does not depend on the machine or thread count that loads it. The configuration
    returned is the stored one without its file paths (:func:`without_file_paths`): no file the
    checkpoint names is read.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: not a checkpoint of this MuNet version, or its weights do not fit the model
            its config describes.
    """
    state = load_checkpoint(find_checkpoint(path), map_location="cpu")
    try:
        config = without_file_paths(state.config)
        model = model_from_checkpoint(state, config)
    except ValueError as exc:
        raise ValueError(f"The checkpoint at {path}: {exc}") from exc
    return model.to(device).eval(), config, state.step
