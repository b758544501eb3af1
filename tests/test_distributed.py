"""Ray Train on a simulated 2-node cluster: DDP from shards on disk, fault recovery, resume,
and `ray job submit` end to end against a head node started here."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from munet.config import load_config
from munet.train.checkpoint import load_checkpoint
from munet.train.distributed import run_training

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.image_size=64", "data.image_size=64", "data.cloth_points=256", "data.augment=false",
    "model.body_channels=16", "model.cloth_channels=16", "model.body_blocks=1", "model.cloth_blocks=1",
    "train.batch_size=2", "train.log_every=1", "train.checkpoint_every=2", "train.lr_warmup=1",
]

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def shards(ray_local, tmp_path_factory):
    from munet.data.generate import generate_shards

    out = tmp_path_factory.mktemp("shards")
    generate_shards(str(out), num_samples=8, seed=3, image_size=96, samples_per_shard=4)
    return str(out)


def _tiny(*extra: str):
    return load_config("cpu", TINY + list(extra))


def test_two_node_ddp_recovers_from_a_worker_failure_then_resumes(ray_local, shards, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    # Two CPUs per worker: one worker per node of the 2-node cluster.
    config = _tiny("train.workers=2", "train.cpus_per_worker=2", "train.steps=4",
                   "train.inject_failure_at_step=2", "train.max_failures=1")
    result = run_training(config, data=shards, out=str(tmp_path), name="run")
    assert result.error is None
    assert result.metrics["step"] == 4
    assert result.metrics["resumed_from"] == 2  # the worker group restarted from step 2
    history = result.metrics_dataframe
    assert (history["replica_spread"] == 0.0).all()  # identical parameters on both workers

    with pytest.raises(FileExistsError, match="Pass --resume"):
        run_training(config, data=shards, out=str(tmp_path), name="run")

    longer = _tiny("train.workers=2", "train.cpus_per_worker=2", "train.steps=6")
    resumed = run_training(longer, data=shards, out=str(tmp_path), name="run", resume=True)
    assert resumed.error is None
    assert resumed.metrics["resumed_from"] == 4 and resumed.metrics["step"] == 6
    state = load_checkpoint(resumed.checkpoint.path)
    assert state.step == 6
    adam_steps = {float(s["step"]) for s in state.optimizer["state"].values()}
    assert adam_steps == {6.0 - resumed.metrics["skipped_steps"]}  # optimizer state carried over


def _training_batches(shards: str, epochs: int, *overrides: str) -> list[list[list[tuple[float, float]]]]:
    """``epochs`` epochs of training batches, each sample as (subject, view) fingerprints: the sum
    of its body shape (shared by the views of one subject) and of its camera-frame joints."""
    from munet.train.distributed import _batches, training_dataset

    config = _tiny(*overrides)
    batches = _batches(training_dataset(shards, config), config, torch.device("cpu"), rank=0)
    per_epoch = 8 // config.train.batch_size

    def fingerprint(batch: dict[str, torch.Tensor]) -> list[tuple[float, float]]:
        shapes, joints = batch["body_shape"].sum(dim=1), batch["body_joints"].sum(dim=(1, 2))
        return [(round(float(s), 3), round(float(j), 3)) for s, j in zip(shapes, joints, strict=True)]

    return [[fingerprint(next(batches)) for _ in range(per_epoch)] for _ in range(epochs)]


def test_training_batches_mix_subjects_and_cover_every_sample_each_epoch(shards):
    # The fixture's 8 samples: 2 subjects × 4 views, one subject per shard, views side by side.
    stream = _training_batches(shards, 1, "data.shuffle_buffer=0")[0]
    assert len({sample for batch in stream for sample in batch}) == 8
    assert all(len({subject for subject, _ in batch}) == 1 for batch in stream)  # one person per batch
    mixed = _training_batches(shards, 3, "data.shuffle_buffer=8")
    for epoch in mixed:
        assert sorted(sample for batch in epoch for sample in batch) == sorted(s for b in stream for s in b)
    assert any(len({subject for subject, _ in batch}) == 2 for epoch in mixed for batch in epoch)


def test_ablation_trains_and_evaluates_every_variant_with_ddp(shards, tmp_path):
    """Every variant trains with 2 DDP workers (body-only and clothed-only leave a branch without
    gradient) and lands in one table."""
    from munet.train.ablation import VARIANTS, run_ablation

    overrides = [*TINY, "train.workers=2", "train.steps=2"]
    rows = run_ablation(shards, shards, tmp_path, base="cpu", overrides=overrides, max_eval_samples=2)
    assert [row["variant"] for row in rows] == list(VARIANTS)
    assert all(row["status"] == "ok" for row in rows), rows
    table = (tmp_path / "ablation.md").read_text()
    assert all(f"| {variant} |" in table for variant in VARIANTS), table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _submit(address: str, job_id: str, *args: str, wait: bool) -> subprocess.CompletedProcess:
    cmd = [_ray_cli(), "job", "submit", "--address", address, "--working-dir", str(REPO),
           "--submission-id", job_id]
    cmd += ([] if wait else ["--no-wait"]) + ["--", sys.executable, "jobs/train.py", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_job_env())


def _job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "disabled"
    return env


def test_ray_job_submit_end_to_end_with_object_store_uri_and_resume(shards, tmp_path):
    """A head node started here; the job streams shards, writes to a file:// URI (the local
    stand-in for object storage through pyarrow), is stopped mid-run and resumed."""
    port, dashboard = _free_port(), _free_port()
    # Ray's unix-socket paths must stay short (<108 bytes): not under pytest's long tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="rayhead")
    head_log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(
        [_ray_cli(), "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dashboard}",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--num-cpus=4",
         "--object-store-memory=200000000", "--include-dashboard=true", "--disable-usage-stats",
         # Ports that default to fixed numbers get free ones: other Rays may run on this machine.
         f"--dashboard-agent-listen-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
         f"--temp-dir={ray_tmp}"],
        env=_job_env(), stdout=head_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    store = f"file://{tmp_path / 'bucket'}"
    try:
        for _ in range(90):
            probe = subprocess.run([_ray_cli(), "job", "list", "--address", address],
                                   capture_output=True, text=True, env=_job_env())
            if probe.returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the head node did not come up: {(tmp_path / 'head.log').read_text()[-3000:]}")
        args = ["--data", shards, "--out", store, "--name", "job", "--workers", "1",
                *[a for o in TINY for a in ("--set", o)], "--set", "train.steps=40"]
        job_id = "munet-first"
        for _ in range(60):  # the job agent may come up a little after the dashboard
            started = _submit(address, job_id, *args, wait=False)
            if started.returncode == 0 or "No available agent" not in started.stderr:
                break
            time.sleep(2)
        assert started.returncode == 0, started.stderr
        checkpoints = tmp_path / "bucket" / "job"
        for _ in range(300):
            if list(checkpoints.glob("checkpoint_*/state.pt")):
                break
            time.sleep(1)
        else:
            logs = subprocess.run([_ray_cli(), "job", "logs", job_id, "--address", address],
                                  capture_output=True, text=True, env=_job_env())
            pytest.fail(f"no checkpoint appeared: {logs.stdout[-3000:]}")
        stop = subprocess.run([_ray_cli(), "job", "stop", job_id, "--address", address],
                              capture_output=True, text=True, env=_job_env(), timeout=120)
        assert stop.returncode == 0, stop.stderr
        stopped_at = max(load_checkpoint(p.parent).step for p in checkpoints.glob("checkpoint_*/state.pt"))
        target = stopped_at + 2
        done = _submit(address, "munet-resumed", *args[:-1], f"train.steps={target}", "--resume", wait=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"finished at step {target} (resumed from step {stopped_at})" in done.stdout + done.stderr
        state = max((load_checkpoint(p.parent) for p in checkpoints.glob("checkpoint_*/state.pt")),
                    key=lambda s: s.step)
        assert state.step == target
        assert torch.isfinite(torch.stack([v.float().sum() for v in state.model.values()])).all()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        head_log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
