"""A trained model is a portable artifact: the network's templates are built identically for any
thread count, and a checkpoint trained in one process (1 torch thread, as in a Ray Train worker)
loads and predicts the same in another process with another thread count and another graph cache.

Each phase runs in its own Python process, as a user on another machine would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import REPO
from tests.samples import SMALL_NETWORK

OVERRIDES = [
    *SMALL_NETWORK,
    "train.lr=0.002",
    "train.lr_warmup=1",
]

TRAIN = """
import sys, numpy as np, torch
from munet.body import build_body_model
from munet.config import load_config
from munet.train.local import train_local
from munet.train.step import batch_to_tensors
from tests.samples import make_samples, stack
config = load_config("small", sys.argv[3:] + ["graph.cache_dir=" + sys.argv[2]])
body = build_body_model(config.body)
batch = batch_to_tensors(stack(make_samples(body, count=4, image_size=64, cloth_points=256)), torch.device("cpu"))
np.savez(sys.argv[1] + "/batch.npz", image=batch["image"].numpy(), K=batch["K"].numpy())
torch.manual_seed(0)
train_local(config, [batch], 5, sys.argv[1] + "/checkpoint")
"""

PREDICT = """
import sys, numpy as np, torch
from munet.checkpoint.load import load_trained_model
model, config, step = load_trained_model(sys.argv[1] + "/checkpoint")
assert step == 5 and not model.training
data = np.load(sys.argv[1] + "/batch.npz")
with torch.no_grad():
    out = model(torch.from_numpy(data["image"]), torch.from_numpy(data["K"]))
threads = torch.get_num_threads()
np.savez(f"{sys.argv[1]}/prediction_{threads}.npz", body=out.body_vertices.numpy(), cloth=out.cloth_vertices.numpy())
"""

TEMPLATES = """
import sys, numpy as np, torch
from munet.body import build_body_model
from munet.config import load_config
from munet.model import build_templates
config = load_config("small", ["graph.cache_dir=" + sys.argv[2]])
t = build_templates(config, build_body_model(config.body)).to_tensors()
np.savez(sys.argv[1], threads=torch.get_num_threads(),
         **{k: v.numpy() for k, v in t.items() if isinstance(v, torch.Tensor)})
"""


def run(script: str, threads: int, *args: str, **env: str) -> None:
    """Run ``script`` in a fresh Python process with ``threads`` torch threads (and ``env``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(REPO), **env)
    # torch caps OMP_NUM_THREADS at the core count; set_num_threads is honoured as given.
    script = f"import torch; torch.set_num_threads({threads})\n" + script
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_templates_are_identical_for_any_thread_count(tmp_path):
    one, three = tmp_path / "one.npz", tmp_path / "three.npz"
    run(TEMPLATES, 1, str(one), str(tmp_path / "cache_a"))
    run(TEMPLATES, 3, str(three), str(tmp_path / "cache_b"))  # a fresh cache: built anew
    a, b = np.load(one), np.load(three)
    assert (int(a["threads"]), int(b["threads"])) == (1, 3)
    keys = sorted(set(a.files) - {"threads"})
    assert keys == sorted(set(b.files) - {"threads"}) and "up_indices" in keys
    for key in keys:
        assert a[key].shape == b[key].shape and np.array_equal(a[key], b[key]), key


def test_a_checkpoint_trained_on_one_thread_predicts_the_same_on_two(tmp_path: Path):
    # Training, then loading and predicting, in one 1-thread process.
    run(TRAIN + PREDICT, 1, str(tmp_path), str(tmp_path / "cache_train"), *OVERRIDES)
    # Another process, another thread count, and no body model or graph cache at all (an
    # unusable Anny cache folder): nothing is rebuilt, everything comes from the checkpoint.
    run(PREDICT, 2, str(tmp_path), ANNY_CACHE_DIR="/proc/no-anny-here")
    one, two = np.load(tmp_path / "prediction_1.npz"), np.load(tmp_path / "prediction_2.npz")
    for key in ("body", "cloth"):
        assert one[key].shape == two[key].shape and np.isfinite(one[key]).all()
        np.testing.assert_allclose(one[key], two[key], atol=1e-5, err_msg=key)
