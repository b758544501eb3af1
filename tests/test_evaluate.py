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

from tests.test_checkpoint_load import run_dir  # noqa: F401 (a fixture: a run folder with one checkpoint)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def heldout(ray_local, tmp_path_factory):
    from munet.data.generate import generate_shards

    out = tmp_path_factory.mktemp("heldout")
    generate_shards(str(out), num_samples=3, seed=11, image_size=96, samples_per_shard=2)
    return str(out)


def test_evaluate_cli_writes_metrics_table_and_pictures(heldout, run_dir, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "jobs" / "evaluate.py"),
            "--checkpoint",
            str(run_dir),
            "--data",
            heldout,
            "--out",
            str(out),
            "--surface-samples",
            "2000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text())
    keys = [
        "mpjpe_mm",
        "pa_mpjpe_mm",
        "pve_mm",
        "orientation_deg",
        "chamfer_cm",
        "p2s_cm",
        "normal_consistency",
        "body_on_mask",
    ]
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
        decoded = fraction_on_mask(
            item.inputs["body_vertices"],
            item.inputs["K"],
            cv2.resize(record.mask.astype(np.uint8), (64, 64), interpolation=cv2.INTER_AREA) > 0,
        )
        assert decoded > 0.95  # a mis-scaled or flipped camera lands far lower


def test_evaluate_with_fit_pulls_bodies_onto_the_masks(heldout, run_dir, tmp_path):
    from munet.eval import evaluate
    from munet.fit import FitSettings

    plain = evaluate(run_dir, heldout, tmp_path / "plain", num_surface_samples=500)
    fitted = evaluate(run_dir, heldout, tmp_path / "fitted", num_surface_samples=500, fit=FitSettings(steps=60))
    assert plain["fit"] is None and fitted["fit"]["steps"] == 60
    assert fitted["body_on_mask"] > max(0.9, plain["body_on_mask"])
    assert "fitted to each sample's person mask (60 steps" in (tmp_path / "fitted" / "metrics.md").read_text()
