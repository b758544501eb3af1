"""``munet export``: a checkpoint's model without its training state."""

from __future__ import annotations

import pytest
import torch

from munet.__main__ import main as munet_main
from munet.body import build_body_model
from munet.checkpoint.state import load_checkpoint, save_checkpoint
from munet.config import load_config
from munet.model import MuNet
from munet.train.optim import build_optimizer
from tests.test_checkpoint_load import TINY


def test_export_keeps_the_model_and_drops_the_training_state(tmp_path):
    config = load_config("cpu", TINY)
    torch.manual_seed(1)
    model = MuNet(config, build_body_model(config.body))
    optimizer, scheduler = build_optimizer(model, config)
    K = torch.tensor([[[90.0, 0, 32], [0, 90, 32], [0, 0, 1]]])
    model(torch.rand(1, 3, 64, 64), K).body_vertices.sum().backward()
    optimizer.step()
    checkpoint = tmp_path / "run" / "checkpoint_00000007"
    save_checkpoint(checkpoint, step=7, model=model, config=config, optimizer=optimizer, scheduler=scheduler)

    assert munet_main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")]) == 0
    exported, trained = load_checkpoint(tmp_path / "model"), load_checkpoint(checkpoint)
    assert exported.optimizer is None and exported.scheduler is None and exported.step == 7
    assert exported.model.keys() == trained.model.keys()
    assert all(torch.equal(exported.model[k], trained.model[k]) for k in trained.model)
    sizes = [(folder / "state.pt").stat().st_size for folder in (tmp_path / "model", checkpoint)]
    assert sizes[0] < 0.75 * sizes[1]  # AdamW keeps two moments per weight
    with pytest.raises(SystemExit) as exit_info:
        munet_main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and not (tmp_path / "x").exists()
