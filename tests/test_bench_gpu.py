"""``python -m munet.bench gpu``: ``--prepare`` writes a network and rendered samples, and the
measurement runs on them in a process that cannot import Ray, the body model, the generator's
libraries or the data-loading stack (what the lent GPU machines lack)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np

from munet.bench.gpu import MODEL_DIR, SAMPLES_FILE
from munet.bench.gpu import main as bench_gpu
from munet.data.contract import UINT8_MEMBERS
from tests.test_bench_learn import TINY

ABSENT = ("ray", "anny", "smplx", "warp", "webdataset", "optuna", "roma")
"""Packages the measurement must not need."""

MEASURE = """
import importlib.abc, json, sys
absent = {absent!r}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in absent:
            raise ImportError(f"{{name}} is not installed on this machine")
sys.meta_path.insert(0, Absent())
from munet.bench.gpu import main
main(["--inputs", {inputs!r}, "--device", "cpu", "--batches", "2", "4", "--precisions", "fp32", "bf16",
      "--steps", "2", "--warmup", "1", "--json", {json!r}])
"""


def test_prepared_inputs_measure_without_ray_or_the_body_model(tmp_path):
    inputs = tmp_path / "inputs"
    bench_gpu(["--prepare", str(inputs), "--samples", "3", *[f"--set={o}" for o in TINY]])
    with np.load(inputs / SAMPLES_FILE, allow_pickle=False) as samples:
        assert samples["image"].shape == (3, 3, 64, 64) and samples["cloth_points"].shape == (3, 256, 3)
        assert all(samples[name].dtype == np.uint8 for name in UINT8_MEMBERS)
    assert (inputs / MODEL_DIR / "state.pt").is_file()

    results = tmp_path / "results.json"
    code = MEASURE.format(absent=ABSENT, inputs=str(inputs), json=str(results))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(results.read_text())
    assert [(row["precision"], row["batch"]) for row in rows] == [("fp32", 2), ("fp32", 4), ("bf16", 2), ("bf16", 4)]
    for row in rows:
        assert row["error"] == "" and row["samples_per_s"] > 0 and 0 <= row["data_wait_frac"] < 1
        assert math.isnan(row["peak_memory_gib"])  # no device memory on the CPU
    assert "| bf16 | 4 |" in run.stdout
