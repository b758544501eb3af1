"""Evaluation job: a checkpoint and held-out shards in, metrics JSON/Markdown/pictures out."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from munet.body import build_body_model
from munet.config import load_config
from munet.eval.loading import find_checkpoint, load_trained_model
from munet.model import MuNet
from munet.train.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.image_size=64", "data.image_size=64", "data.cloth_points=256",
        "model.body_channels=16", "model.cloth_channels=16", "model.body_blocks=1", "model.cloth_blocks=1"]


@pytest.fixture(scope="module")
def heldout(ray_local, tmp_path_factory):
    from munet.data.generate import generate_shards

    out = tmp_path_factory.mktemp("heldout")
    generate_shards(str(out), num_samples=3, seed=11, image_size=96, samples_per_shard=2)
    return str(out)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    config = load_config("cpu", TINY)
    torch.manual_seed(0)
    model = MuNet(config, build_body_model(config.body))
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "checkpoint_000001", step=1, model=model, config=config)
    return run


def test_evaluate_cli_writes_metrics_table_and_pictures(heldout, run_dir, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "evaluate.py"), "--checkpoint", str(run_dir),
         "--data", heldout, "--out", str(out), "--surface-samples", "2000"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text())
    keys = ["mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "orientation_deg", "chamfer_cm", "p2s_cm", "normal_consistency",
            "body_on_mask"]
    assert summary["num_samples"] == 3 and summary["num_surface_samples"] == 2000
    with open(out / "per_sample.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for key in keys:
        assert math.isfinite(summary[key])
        assert summary[key] == pytest.approx(np.mean([float(r[key]) for r in rows]), rel=1e-6)
    assert summary["pa_mpjpe_mm"] <= summary["mpjpe_mm"] + 1e-6  # Procrustes can only help
    assert 0.0 <= summary["normal_consistency"] <= 1.0
    assert 0.0 <= summary["body_on_mask"] <= 1.0
    assert 0.0 <= summary["median"]["orientation_deg"] <= 180.0
    assert "| chamfer_cm |" in (out / "metrics.md").read_text()
    overlays = cv2.imread(str(out / "overlays.png"))
    assert overlays.shape == (3 * 96, 4 * 96, 3)
    assert cv2.imread(str(out / "histograms.png")) is not None


def test_ground_truth_bodies_project_onto_their_masks(heldout):
    """The convention ``body_on_mask`` relies on: record K, record mask, camera-frame vertices."""
    from munet.data.decode import Decoder
    from munet.eval.evaluate import iter_eval_items
    from munet.metrics import fraction_on_mask

    for item in iter_eval_items(heldout, Decoder(image_size=64, cloth_points=256, augment=False)):
        record = item.record
        assert fraction_on_mask(record.body.vertices, record.camera.K, record.mask) > 0.99
        # Decoding resizes the render: the decoded K projects the same vertices onto the same places.
        decoded = fraction_on_mask(item.inputs["body_vertices"], item.inputs["K"],
                                   cv2.resize(record.mask.astype(np.uint8), (64, 64), interpolation=cv2.INTER_AREA) > 0)
        assert decoded > 0.95  # a mis-scaled or flipped camera lands far lower


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


def test_export_keeps_the_model_and_drops_the_training_state(tmp_path):
    from munet.__main__ import main as munet_main
    from munet.train.checkpoint import load_checkpoint
    from munet.train.optim import build_optimizer

    config = load_config("cpu", TINY)
    torch.manual_seed(1)
    model = MuNet(config, build_body_model(config.body))
    optimizer, scheduler = build_optimizer(model, config)
    model(torch.rand(1, 3, 64, 64), torch.tensor([[[90.0, 0, 32], [0, 90, 32], [0, 0, 1]]])).body_vertices.sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "run" / "checkpoint_00000007", step=7, model=model, config=config,
                    optimizer=optimizer, scheduler=scheduler)

    assert munet_main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")]) == 0
    exported, trained = load_checkpoint(tmp_path / "model"), load_checkpoint(tmp_path / "run" / "checkpoint_00000007")
    assert exported.optimizer is None and exported.scheduler is None and exported.step == 7
    assert exported.model.keys() == trained.model.keys()
    assert all(torch.equal(exported.model[k], trained.model[k]) for k in trained.model)
    sizes = [(folder / "state.pt").stat().st_size for folder in (tmp_path / "model", tmp_path / "run" / "checkpoint_00000007")]
    assert sizes[0] < 0.75 * sizes[1]  # AdamW keeps two moments per weight
    with pytest.raises(SystemExit) as exit_info:
        munet_main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and not (tmp_path / "x").exists()


def test_evaluate_with_fit_pulls_bodies_onto_the_masks(heldout, run_dir, tmp_path):
    from munet.eval import evaluate
    from munet.fit import FitSettings

    plain = evaluate(run_dir, heldout, tmp_path / "plain", num_surface_samples=500)
    fitted = evaluate(run_dir, heldout, tmp_path / "fitted", num_surface_samples=500, fit=FitSettings(steps=60))
    assert plain["fit"] is None and fitted["fit"]["steps"] == 60
    assert fitted["body_on_mask"] > max(0.9, plain["body_on_mask"])
    assert "fitted to each sample's person mask (60 steps" in (tmp_path / "fitted" / "metrics.md").read_text()
