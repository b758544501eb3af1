"""``python -m munet.bench learn`` on a tiny set: curve, table, plot and a checkpoint on which
``jobs/evaluate.py`` gives the last held-out row; resuming extends the curve on the cached data."""

from __future__ import annotations

import json
import math

import cv2
import pytest

from munet.bench.cli import main
from munet.checkpoint.load import load_trained_model
from munet.eval.evaluate import evaluate
from munet.metrics import METRIC_KEYS

TINY = [
    "model.image_size=64",
    "data.image_size=64",
    "data.cloth_points=256",
    "train.batch_size=2",
    "model.body_channels=16",
    "model.cloth_channels=16",
    "model.body_blocks=1",
    "model.cloth_blocks=1",
]
DATA = [
    "--train-samples",
    "4",
    "--views",
    "2",
    "--heldout-samples",
    "2",
    "--train-eval",
    "2",
    "--render-size",
    "64",
    "--surface-samples",
    "500",
    "--device",
    "cpu",
]


def test_learn_is_listed_and_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["learn", "--help"])
    assert exit_info.value.code == 0
    assert "--eval-every" in capsys.readouterr().out


def test_learn_writes_curve_table_plot_and_checkpoint_then_resumes(tmp_path, capsys):
    work = tmp_path / "learn"
    overrides = [arg for override in TINY for arg in ("--set", override)]
    main(["learn", "--work", str(work), *overrides, "--steps", "3", "--eval-every", "2", *DATA])
    out = capsys.readouterr().out
    assert out.count("generated") == 2
    assert sum(line.startswith("step ") for line in out.splitlines()) == 3

    report = json.loads((work / "learn.json").read_text())
    records = report["evaluations"]
    assert [record["step"] for record in records] == [0, 2, 3]
    assert records[0]["loss"] is None and math.isfinite(records[1]["loss"])
    assert report["train_eval_samples"] == 2
    for key in ("train", "heldout"):
        summary = records[0][key]  # the untrained network
        for metric in METRIC_KEYS:
            assert math.isfinite(summary[metric]) and math.isfinite(summary["median"][metric])
        assert 0.0 <= summary["median"]["orientation_deg"] <= 180.0
    assert [record["wall_s"] for record in records] == sorted(record["wall_s"] for record in records)

    table = (work / "learn.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| step"))
    assert "train PA-MPJPE (mm)" in header and "held-out orientation (°, median)" in header
    rows = [line for line in table if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "2", "3"]
    assert all(len(row.split("|")) == len(header.split("|")) for row in rows)
    assert cv2.imread(str(work / "learn.png")) is not None
    _, _, step = load_trained_model(work / "checkpoint")
    assert step == 3
    # jobs/evaluate.py on the checkpoint gives the last held-out row.
    summary = evaluate(
        work / "checkpoint", str(work / "heldout"), tmp_path / "eval", num_surface_samples=500, num_pictures=0
    )
    for metric in METRIC_KEYS:
        assert summary[metric] == pytest.approx(records[-1]["heldout"][metric], rel=1e-4, abs=1e-4)

    main(["learn", "--work", str(work), "--steps", "4", "--eval-every", "2", "--resume", *DATA])
    assert "generated" not in capsys.readouterr().out  # the cached sets are reused
    resumed = json.loads((work / "learn.json").read_text())["evaluations"]
    assert [record["step"] for record in resumed] == [0, 2, 3, 4]
    assert resumed[3]["wall_s"] >= resumed[2]["wall_s"]
    assert load_trained_model(work / "checkpoint")[2] == 4
