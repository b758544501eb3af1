"""Loading a trained model: a checkpoint found from a run folder, and weights that do not fit their
configuration refused with what is wrong."""

from __future__ import annotations

import pytest
import torch

from munet.body import build_body_model
from munet.checkpoint.find import find_checkpoint
from munet.checkpoint.load import load_trained_model
from munet.checkpoint.state import save_checkpoint
from munet.config import load_config
from munet.model import MuNet

TINY = [
    "model.image_size=64",
    "data.image_size=64",
    "data.cloth_points=256",
    "model.body_channels=16",
    "model.cloth_channels=16",
    "model.body_blocks=1",
    "model.cloth_blocks=1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding one checkpoint (``checkpoint_000001``) of an untrained ``TINY`` MuNet."""
    config = load_config("cpu", TINY)
    torch.manual_seed(0)
    model = MuNet(config, build_body_model(config.body))
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "checkpoint_000001", step=1, model=model, config=config)
    return run


def test_checkpoint_lookup_and_mismatch_errors(run_dir, tmp_path):
    assert find_checkpoint(run_dir).name == "checkpoint_000001"
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        find_checkpoint(tmp_path)
    model, config, step = load_trained_model(run_dir)
    assert step == 1 and not model.training and config.model.body_channels == 16
    other = load_config("cpu", TINY + ["model.body_channels=32"])
    wrong = MuNet(other, build_body_model(other.body))
    save_checkpoint(tmp_path / "bad", step=1, model=wrong, config=config)  # weights ≠ config
    with pytest.raises(ValueError, match="does not fit the model"):
        load_trained_model(tmp_path / "bad")
