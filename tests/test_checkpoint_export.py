"""``munet export`` and the model file: a checkpoint's model as safetensors, without its training state."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from munet.__main__ import main as munet_main
from munet.body import build_body_model
from munet.checkpoint.load import load_trained_model, without_file_paths
from munet.checkpoint.model_file import MODEL_FILE, load_model_file
from munet.checkpoint.state import load_checkpoint, save_checkpoint
from munet.config import load_config
from munet.model import MuNet
from munet.train.optim import build_optimizer
from tests.test_checkpoint_load import TINY


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder holding one checkpoint of a network after one optimiser step (step 7)."""
    config = load_config("cpu", TINY)
    torch.manual_seed(1)
    model = MuNet(config, build_body_model(config.body))
    optimizer, scheduler = build_optimizer(model, config)
    K = torch.tensor([[[90.0, 0, 32], [0, 90, 32], [0, 0, 1]]])
    model(torch.rand(1, 3, 64, 64), K).body_vertices.sum().backward()
    optimizer.step()
    run = tmp_path_factory.mktemp("export") / "run"
    save_checkpoint(
        run / "checkpoint_00000007", step=7, model=model, config=config, optimizer=optimizer, scheduler=scheduler
    )
    return run


def test_export_keeps_the_model_and_drops_the_training_state(trained_run, tmp_path):
    checkpoint = trained_run / "checkpoint_00000007"
    assert munet_main(["export", str(trained_run), "--out", str(tmp_path / "model")]) == 0
    exported, trained = load_model_file(tmp_path / "model"), load_checkpoint(checkpoint)
    assert exported.optimizer is None and exported.scheduler is None and exported.step == 7
    assert exported.model.keys() == trained.model.keys()
    assert all(torch.equal(exported.model[k], trained.model[k]) for k in trained.model)
    assert exported.config == without_file_paths(trained.config)
    size = (tmp_path / "model" / MODEL_FILE).stat().st_size
    assert size < 0.75 * (checkpoint / "state.pt").stat().st_size  # AdamW keeps two moments per weight
    assert not (tmp_path / "model" / "state.pt").exists()  # nothing pickled
    with pytest.raises(SystemExit) as exit_info:
        munet_main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and not (tmp_path / "x").exists()


def test_an_exported_model_predicts_exactly_as_its_checkpoint(trained_run, tmp_path):
    munet_main(["export", str(trained_run), "--out", str(tmp_path / "model")])
    torch.manual_seed(3)
    images, K = torch.rand(2, 3, 64, 64), torch.tensor([[[90.0, 0, 32], [0, 90, 32], [0, 0, 1]]]).repeat(2, 1, 1)
    outputs = []
    for source in (trained_run, tmp_path / "model", tmp_path / "model" / MODEL_FILE):
        model, _, step = load_trained_model(source)
        with torch.no_grad():
            output = model(images, K)
        outputs.append((step, output.body_vertices, output.cloth_vertices))
    for step, body, cloth in outputs[1:]:
        assert step == 7 and torch.equal(body, outputs[0][1]) and torch.equal(cloth, outputs[0][2])


def test_a_bad_model_file_is_refused_with_what_to_do(trained_run, tmp_path):
    munet_main(["export", str(trained_run), "--out", str(tmp_path / "model")])
    file = tmp_path / "model" / MODEL_FILE
    with safe_open(str(file), framework="pt") as handle:
        assert json.loads(handle.metadata()["config"])["model"]["encoder"]
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / MODEL_FILE).write_bytes(file.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_trained_model(tmp_path / "cut")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a MuNet model file.*munet export"):
        load_trained_model(tmp_path / "other.safetensors")
