"""Networks from checkpoints: building a checkpoint's model, checking that weights and
configurations fit, and loading a trained model (weights only, no code).

A checkpoint is self-contained (:func:`model_from_checkpoint` builds the network from the templates
it stores), and the configuration it stores never chooses files to load: its file paths (body
model folder, caches, encoder weights, data) are cleared before the network is built
(:func:`without_file_paths`), so a checkpoint from elsewhere cannot make this machine read, or
unpickle, a file of its choosing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from munet.checkpoint.find import find_checkpoint
from munet.checkpoint.model_file import is_model_file, load_model_file
from munet.checkpoint.state import TrainingState, load_checkpoint
from munet.config import MuNetConfig, config_to_dict
from munet.model import MuNet, Templates
from munet.model.encoder import resolve_norm


def model_from_checkpoint(state: TrainingState, config: MuNetConfig | None = None) -> MuNet:
    """The network of a checkpoint, built from its stored templates, with its weights loaded
    (train mode, tensors where ``state`` was loaded).

    Args:
        state: a loaded checkpoint.
        config: the configuration of the network to build (a resumed run's); default the
            checkpoint's own.

    Raises:
        ValueError: the stored weights do not fit the network the configuration describes.
    """
    config = state.config if config is None else config
    model = MuNet(config, templates=Templates.from_tensors(state.templates))
    problems = state_dict_mismatch(model.state_dict(), state.model)
    if problems:
        raise ValueError(
            "the checkpoint does not fit the model its configuration describes "
            f"({problems}); the network was built from `model:` settings {config.model}"
        )
    model.load_state_dict(state.model)
    return model


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], stored: Mapping[str, Any]) -> str:
    """A short account of how ``stored`` weights differ from a model's ``expected`` state dict
    (counts and the first few names), or ``""`` when they fit."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    shapes = [
        f"{k}: stored {tuple(stored[k].shape)}, model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(stored))
        if tuple(getattr(stored[k], "shape", ())) != tuple(expected[k].shape)
    ]
    parts = [
        f"{len(items)} {what}, e.g. {'; '.join(items[:2])}"
        for what, items in (("tensors of another shape", shapes), ("missing", missing), ("unexpected", unexpected))
        if items
    ]
    return "; ".join(parts)


NETWORK_SECTIONS = ("model", "graph")
"""The configuration sections that shape the network: a run resumes only with the same ones."""


def network_config_differences(stored: MuNetConfig, new: MuNetConfig) -> list[str]:
    """The ``section.key`` settings of :data:`NETWORK_SECTIONS` that differ between a
    checkpoint's ``stored`` configuration and a ``new`` one, each as
    ``"model.body_channels: checkpoint 64, now 16"`` (empty when the networks are the same)."""
    differences = []
    for section in NETWORK_SECTIONS:
        old_values = _flatten(config_to_dict(stored)[section], section)
        new_values = _flatten(config_to_dict(new)[section], section)
        for key in sorted(set(old_values) | set(new_values)):
            old, now = old_values.get(key, "(unset)"), new_values.get(key, "(unset)")
            if old != now:
                differences.append(f"{key}: checkpoint {old!r}, now {now!r}")
    return differences


def _flatten(values: Any, prefix: str) -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}``."""
    if not isinstance(values, Mapping):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f"{prefix}.{key}"))
    return flat


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


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[MuNet, MuNetConfig, int]:
    """The model of a checkpoint or a model file (a ``munet export`` folder, its
    ``model.safetensors``, or the shipped model), in eval mode on ``device``, with its config and
    step.

    The network is built from the templates the checkpoint stores (no body model is loaded), so
    the result does not depend on the machine or thread count that loads it. The configuration
    returned is the stored one without its file paths (:func:`without_file_paths`): no file the
    checkpoint names is read.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: not a checkpoint of this MuNet version, or its weights do not fit the model
            its config describes.
    """
    found = find_checkpoint(path)
    state = load_model_file(found) if is_model_file(found) else load_checkpoint(found, map_location="cpu")
    try:
        config = without_file_paths(state.config)
        model = model_from_checkpoint(state, config)
    except ValueError as exc:
        raise ValueError(f"The checkpoint at {path}: {exc}") from exc
    return model.to(device).eval(), config, state.step
