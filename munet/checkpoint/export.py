"""``munet export``: a trained model's weights and configuration, without the training state.

>>> munet export runs/small/train --out my-model/

A training checkpoint also holds the optimizer and scheduler state (about twice the weights) and
RNG states, pickled into ``state.pt``; an exported model folder holds only what prediction and
evaluation need, as a safetensors model file (``model.safetensors``, see
:mod:`munet.checkpoint.model_file`) beside a readable ``config.yaml``. Every command that takes
``--checkpoint`` reads it. Its configuration has no file paths (see
:func:`munet.checkpoint.load.without_file_paths`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from munet.checkpoint.load import load_trained_model
from munet.checkpoint.model_file import MODEL_FILE, save_model_file


def export_model(source: str | Path, dest: str | Path) -> Path:
    """Write the model of checkpoint (or run folder, or model file) ``source`` to the folder ``dest``
    as ``model.safetensors`` + ``config.yaml``.

    The weights are loaded into a model built from the checkpoint's configuration first, so a
    checkpoint that does not fit its configuration is refused rather than exported.

    Returns:
        ``dest``.
    """
    model, config, step = load_trained_model(source)
    return save_model_file(dest, step=step, model=model, config=config)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet export``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="munet export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="checkpoint folder, its state.pt, or a run folder (newest checkpoint)")
    parser.add_argument("--out", required=True, help=f"folder to write {MODEL_FILE} and config.yaml to")
    args = parser.parse_args(argv)
    try:
        dest = export_model(args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"munet export: {exc}\n")
    size = (dest / MODEL_FILE).stat().st_size / 1e6
    print(f"exported the model to {dest} ({size:.1f} MB)")
    return 0
