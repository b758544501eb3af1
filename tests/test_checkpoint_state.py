"""The checkpoint file restores the exact training state; old, mismatched, missing or foreign files
are refused with what to do."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from munet.checkpoint.load import model_from_checkpoint
from munet.checkpoint.state import load_checkpoint, restore_training_state, save_checkpoint
from munet.config import load_config
from munet.model import MuNet
from munet.train.optim import OptimizerStep, build_optimizer


def _munet_setup(anny_body, templates=None):
    """A small real MuNet, its optimiser and stepper (templates shared when given)."""
    config = load_config(
        "small",
        [
            "model.image_size=32",
            "data.image_size=32",
            "model.body_channels=16",
            "model.cloth_channels=16",
            "model.body_blocks=1",
            "model.cloth_blocks=1",
            "train.steps=10",
            "train.lr_warmup=2",
        ],
    )
    torch.manual_seed(0)
    model = MuNet(config, anny_body, templates)
    optimizer, scheduler = build_optimizer(model, config)
    return config, model, optimizer, scheduler, OptimizerStep(model, optimizer, scheduler, config.train)


def _munet_loss(model: MuNet, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 32, 32, generator=generator)
    K = torch.tensor([[40.0, 0, 15.5], [0, 40.0, 15.5], [0, 0, 1]]).expand(2, 3, 3)
    out = model(image, K)
    return out.body_joints.square().mean() + out.cloth_vertices.square().mean()


def test_checkpoint_resume_matches_uninterrupted_training(tmp_path, anny_body):
    config, model, optimizer, scheduler, stepper = _munet_setup(anny_body)
    for step in range(1, 4):
        stepper(_munet_loss(model, step), step)
    save_checkpoint(tmp_path / "ckpt", step=3, model=model, config=config, optimizer=optimizer, scheduler=scheduler)
    expected_random = (torch.rand(3), np.random.rand(2), random.random())
    for step in range(4, 7):
        stepper(_munet_loss(model, step), step)
    expected = [p.detach().clone() for p in model.parameters()]

    state = load_checkpoint(tmp_path / "ckpt")
    assert state.step == 3 and state.config == config
    model2 = model_from_checkpoint(state)  # built from the stored templates alone
    optimizer2, scheduler2 = build_optimizer(model2, config)
    stepper2 = OptimizerStep(model2, optimizer2, scheduler2, config.train)
    assert restore_training_state(state, optimizer2, scheduler2) == 3
    got_random = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(got_random[0], expected_random[0])
    np.testing.assert_array_equal(got_random[1], expected_random[1])
    assert got_random[2] == expected_random[2]
    for step in range(4, 7):
        stepper2(_munet_loss(model2, step), step)
    for a, b in zip(expected, model2.parameters()):
        assert torch.equal(a, b.detach())
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_old_or_mismatched_checkpoints_are_refused_with_what_to_do(tmp_path, anny_body):
    config, model, *_ = _munet_setup(anny_body)
    save_checkpoint(tmp_path, step=1, model=model, config=config)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    # A checkpoint of another network size fails with the configuration named.
    wider = load_config("small", ["model.body_channels=32"])
    with pytest.raises(ValueError, match="does not fit the model"):
        model_from_checkpoint(load_checkpoint(tmp_path), wider)
    # A format-1 checkpoint (no stored templates) is refused, saying to retrain.
    del state["templates"], state["format"]
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="format 1.*Retrain"):
        load_checkpoint(tmp_path)


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No MuNet checkpoint"):
        load_checkpoint(tmp_path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="not a MuNet checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable MuNet checkpoint"):
        load_checkpoint(tmp_path)
