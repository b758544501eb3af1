"""The model file: a trained network's weights, templates and configuration in one safetensors file.

``munet export`` writes it (``model.safetensors``, beside a human-readable ``config.yaml``), and the
shipped model is one (:mod:`munet.checkpoint.shipped`). Unlike a training checkpoint's ``state.pt``
it holds no optimiser, scheduler or RNG state, and its format cannot hold code: safetensors is a
JSON header plus raw little-endian tensor bytes, read without unpickling anything.

Layout:

- tensors ``model/<name>``: the network's state dict (float32 weights, BatchNorm/GroupNorm
  buffers, int64 counters);
- tensors ``templates/<name>``: the tensors of :meth:`munet.model.Templates.to_tensors` (graph
  hierarchy, sampling operators as COO indices/values, joint regressor, faces);
- int64 tensors of both (graph indices, counters) are stored as int32 where their values fit,
  listed in the metadata and read back as int64, so the round trip is exact;
- header metadata (strings): ``munet_model_format``, ``step``, ``config`` (the configuration as
  JSON), ``templates`` (the templates' non-tensor values as JSON: sizes, fingerprints, sparse
  shapes) and ``int64`` (the JSON list of the int64 tensors stored as int32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from munet.checkpoint.state import CONFIG_FILE, TrainingState
from munet.config import MuNetConfig, config_from_dict, config_to_dict, save_config

MODEL_FILE = "model.safetensors"
MODEL_FORMAT = 1
"""Version of the model file's layout (its ``munet_model_format`` metadata)."""

_MODEL, _TEMPLATES = "model/", "templates/"


def is_model_file(path: str | Path) -> bool:
    """Whether ``path`` is a model file or a folder holding :data:`MODEL_FILE`."""
    path = Path(path)
    return (path.is_file() and path.suffix == ".safetensors") or (path / MODEL_FILE).is_file()


def save_model_file(folder: str | Path, *, step: int, model: torch.nn.Module, config: MuNetConfig) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.yaml`` (the folder is created if
    needed) and return the folder.

    ``model`` may be DDP-wrapped (its inner module is saved). The file is written under a temporary
    name and renamed, so an interrupted write never leaves a truncated model file.
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inner = getattr(model, "module", model)
    tensors = {_MODEL + key: value.detach().cpu().contiguous().clone() for key, value in inner.state_dict().items()}
    values: dict[str, Any] = {}
    for key, value in inner.templates.to_tensors().items():
        if isinstance(value, torch.Tensor):
            tensors[_TEMPLATES + key] = value.contiguous()
        else:
            values[key] = value
    narrowed = [
        key
        for key, value in tensors.items()
        if value.dtype == torch.int64 and (value.numel() == 0 or int(value.abs().max()) < 2**31)
    ]
    tensors.update({key: tensors[key].to(torch.int32) for key in narrowed})
    metadata = {
        "munet_model_format": str(MODEL_FORMAT),
        "step": str(int(step)),
        "config": json.dumps(config_to_dict(config)),
        "templates": json.dumps(values),
        "int64": json.dumps(narrowed),
    }
    tmp = folder / (MODEL_FILE + ".tmp")
    tmp.write_bytes(save(tensors, metadata=metadata))
    tmp.replace(folder / MODEL_FILE)
    save_config(config, folder / CONFIG_FILE)
    return folder


def load_model_file(path: str | Path) -> TrainingState:
    """Read a model file (or a folder holding :data:`MODEL_FILE`) onto the CPU, as a
    :class:`~munet.checkpoint.state.TrainingState` without optimiser, scheduler or RNG state.

    The configuration is the one stored in the file; a ``config.yaml`` beside it is a copy for
    people to read and is not used.

    Raises:
        FileNotFoundError: no model file at ``path``.
        ValueError: the file is not a readable MuNet model file of this format.
    """
    from safetensors import safe_open

    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"No MuNet model file at {path}: expected {MODEL_FILE} (as written by `munet export`).")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:
        raise ValueError(f"{file} is not a readable safetensors file: {exc}") from exc
    version = metadata.get("munet_model_format")
    if version != str(MODEL_FORMAT):
        raise ValueError(
            f"{file} is not a MuNet model file of format {MODEL_FORMAT} (its munet_model_format is {version!r}); "
            "export the checkpoint again with this MuNet version (`munet export RUN --out FOLDER`)."
        )
    try:
        config = config_from_dict(json.loads(metadata["config"]))
        templates: dict[str, Any] = json.loads(metadata["templates"])
        step = int(metadata["step"])
        for key in json.loads(metadata["int64"]):
            tensors[key] = tensors[key].to(torch.int64)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{file}: its metadata is incomplete or malformed ({exc}); export the model again.") from exc
    templates.update({key[len(_TEMPLATES) :]: value for key, value in tensors.items() if key.startswith(_TEMPLATES)})
    weights = {key[len(_MODEL) :]: value for key, value in tensors.items() if key.startswith(_MODEL)}
    return TrainingState(
        step=step, model=weights, optimizer=None, scheduler=None, rng=None, config=config, templates=templates
    )
