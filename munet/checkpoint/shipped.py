"""The model that ships with MuNet: ``munet/weights/`` (a ``munet export`` folder plus its model card).

``munet predict`` uses it when no ``--checkpoint`` is given, and any command that takes
``--checkpoint`` reads it by its folder (:func:`shipped_model`). It is trained by the project's own
jobs on the synthetic generator; ``make model`` rebuilds it from scratch and
``munet/weights/MODEL_CARD.md`` says with which data, command, steps and hardware, and what it
scores on held-out people.
"""

from __future__ import annotations

from pathlib import Path

from munet.checkpoint.model_file import MODEL_FILE

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
"""The shipped model's folder inside the installed package."""


def shipped_model() -> Path:
    """The folder of the shipped model (holding ``model.safetensors``).

    Raises:
        FileNotFoundError: this installation has no shipped model, with how to get one.
    """
    if not (SHIPPED_DIR / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"the shipped model is missing from this installation (expected {SHIPPED_DIR / MODEL_FILE}): "
            "rebuild it with `make model` from a clone of the repository, or pass --checkpoint with a run "
            "of jobs/train.py or a `munet export` folder"
        )
    return SHIPPED_DIR
