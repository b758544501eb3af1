"""Ray Train on a simulated 2-node cluster: DDP from shards on disk, fault recovery, resume,
and `ray job submit` end to end against a head node started here."""

from __future__ import annotations

import csv
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

from munet.checkpoint.state import load_checkpoint
from munet.config import load_config
from munet.train.distributed import run_training

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.image_size=64",
    "data.image_size=64",
    "data.cloth_points=256",
    "data.augment=false",
    "model.body_channels=16",
    "model.cloth_channels=16",
    "model.body_blocks=1",
    "model.cloth_blocks=1",
    "train.batch_size=2",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.lr_warmup=1",
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


def test_two_node_ddp_recovers_from_a_worker_failure(ray_local, shards, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    # Two CPUs per worker: one worker per node of the 2-node cluster.
    config = _tiny(
        "train.workers=2",
        "train.cpus_per_worker=2",
        "train.steps=4",
        "train.inject_failure_at_step=2",
        "train.max_failures=1",
    )
    result = run_training(config, data=shards, out=str(tmp_path), name="run")
    assert result.error is None
    assert result.metrics["step"] == 4
    assert result.metrics["resumed_from"] == 2  # the worker group restarted from step 2
    history = result.metrics_dataframe
    assert (history["replica_spread"] == 0.0).all()  # identical parameters on both workers

    with pytest.raises(FileExistsError, match="Pass --resume"):
        run_training(config, data=shards, out=str(tmp_path), name="run")


@pytest.mark.slow
def test_two_node_ddp_run_resumes_with_its_optimizer_state(ray_local, shards, tmp_path):
    # uploaded in the background by Ray: the resumed run finds the checkpoint all the same
    first = _tiny("train.workers=2", "train.cpus_per_worker=2", "train.steps=2", "train.checkpoint_upload=async")
    assert run_training(first, data=shards, out=str(tmp_path), name="run").error is None

    longer = _tiny("train.workers=2", "train.cpus_per_worker=2", "train.steps=4")
    resumed = run_training(longer, data=shards, out=str(tmp_path), name="run", resume=True)
    assert resumed.error is None
    assert resumed.metrics["resumed_from"] == 2 and resumed.metrics["step"] == 4
    state = load_checkpoint(resumed.checkpoint.path)
    assert state.step == 4
    adam_steps = {float(s["step"]) for s in state.optimizer["state"].values()}
    assert adam_steps == {4.0 - resumed.metrics["skipped_steps"]}  # optimizer state carried over


def _training_batches(shards: str, epochs: int, *overrides: str) -> list[list[list[tuple[float, float]]]]:
    """``epochs`` epochs of training batches, each sample as (subject, view) fingerprints: the sum
    of its body shape (shared by the views of one subject) and of its camera-frame joints."""
    from munet.train.distributed import training_dataset
    from munet.train.worker import _batches

    config = _tiny(*overrides)
    batches = _batches(training_dataset(shards, config.data, config.body), config, torch.device("cpu"), rank=0)
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


@pytest.mark.slow
def test_ablation_over_seeds_trains_and_evaluates_with_ddp(shards, tmp_path):
    """Two variants × two seeds with 2 DDP workers (clothed-only leaves the body branch without
    gradient): one run folder per seed, the seed in its configuration, one table with the spread."""
    from munet.checkpoint.find import latest_checkpoint
    from munet.tune.ablation import run_ablation

    overrides = [*TINY, "train.workers=2", "train.steps=2"]
    variants = ["cloth_only", "full_mutual"]
    rows = run_ablation(
        shards, shards, tmp_path, base="cpu", overrides=overrides, variants=variants, seeds=[0, 1], max_eval_samples=2
    )
    assert [(row["variant"], row["seed"]) for row in rows] == [(v, s) for v in variants for s in (0, 1)]
    assert all(row["status"] == "ok" for row in rows), rows
    for variant in variants:
        for seed in (0, 1):
            checkpoint = latest_checkpoint(str(tmp_path / variant / f"seed_{seed}"))
            config = load_config(Path(checkpoint) / "config.yaml")
            assert config.train.seed == config.data.seed == seed
    assert rows[2]["pve_mm"] != rows[3]["pve_mm"]  # another initialisation, another model
    with open(tmp_path / "ablation.csv") as handle:
        assert [(r["variant"], r["seed"], r["status"]) for r in csv.DictReader(handle)] == [
            (v, str(s), "ok") for v in variants for s in (0, 1)
        ]
    table = (tmp_path / "ablation.md").read_text()
    assert "| cloth_only | 2/2 |" in table and "| full_mutual | 2/2 |" in table, table
    assert "Difference to full_mutual" in table and "| cloth_only | 2 |" in table, table


def _ablation_row(variant: str, seed: int, pa: float, mpjpe: float, chamfer: float) -> dict:
    from munet.metrics import METRIC_KEYS

    return {
        "variant": variant,
        "seed": seed,
        "status": "ok",
        **dict.fromkeys(METRIC_KEYS, 1.0),
        "pa_mpjpe_mm": pa,
        "mpjpe_mm": mpjpe,
        "chamfer_cm": chamfer,
        "median_orientation_deg": 10.0,
    }


def test_ablation_table_means_spread_differences_and_failed_runs(tmp_path):
    from munet.tune.ablation import write_table

    failure = {"status": "failed: RuntimeError: a | b\ntraceback"}
    rows = write_table(
        [
            _ablation_row("body_only", 0, 80.0, 100.0, 3.0),
            _ablation_row("full_mutual", 0, 70.0, 90.0, 2.0),
            {"variant": "cloth_only", "seed": 0, **failure},
            _ablation_row("body_only", 1, 84.0, 104.0, 3.4),
            _ablation_row("full_mutual", 1, 76.0, 92.0, 2.2),
            _ablation_row("body_only", 2, 90.0, 105.0, 3.2),
            {"variant": "full_mutual", "seed": 2, **failure},
            _ablation_row("guided_no_feedback", 2, 75.0, 90.0, 2.0),
        ],
        tmp_path,
    )
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("body_only", 0),
        ("body_only", 1),
        ("body_only", 2),
        ("full_mutual", 0),
        ("full_mutual", 1),
        ("full_mutual", 2),
        ("cloth_only", 0),
        ("guided_no_feedback", 2),
    ]
    with open(tmp_path / "ablation.csv") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 8 and written[5]["status"].startswith("failed") and written[5]["pa_mpjpe_mm"] == ""
    assert float(written[0]["pa_mpjpe_mm"]) == 80.0

    lines = (tmp_path / "ablation.md").read_text().splitlines()
    main_line = next(line for line in lines if line.startswith("| variant | n |"))
    diff_line = next(line for line in lines if line.startswith("| variant | pairs |"))
    assert diff_line == "| variant | pairs | pa_mpjpe_mm | mpjpe_mm | chamfer_cm |"

    def cells(variant: str, table: str = main_line) -> dict[str, str]:
        """The cells of the variant's row in the table headed by ``table``, by column."""
        line = next(line for line in lines[lines.index(table) :] if line.startswith(f"| {variant} |"))
        return dict(zip(*(map(str.strip, x.strip("|").split("|")) for x in (table, line)), strict=False))

    body = cells("body_only")
    assert body["n"] == "3/3"
    assert body["pa_mpjpe_mm"] == "84.7 ± 5.0"  # mean 84.67, sample std 5.03
    assert body["mpjpe_mm"] == "103.0 ± 2.6"  # three significant digits, at least one decimal
    assert body["chamfer_cm"] == "3.20 ± 0.20"
    assert body["median_orientation_deg"] == "10.0 ± 0.0"
    mutual = cells("full_mutual")
    assert mutual["n"] == "2/3" and mutual["pa_mpjpe_mm"] == "73.0 ± 4.2"  # the failed seed left out
    failed_note = "| seed 2: failed: RuntimeError: a \\| b |"  # "|" escaped, the first line only
    assert next(line for line in lines if line.startswith("| full_mutual |")).endswith(failed_note)
    assert "traceback" not in "\n".join(lines)
    assert cells("cloth_only")["n"] == "0/1" and cells("cloth_only")["pa_mpjpe_mm"] == "–"
    assert cells("guided_no_feedback")["pa_mpjpe_mm"] == "75.0 ± –"  # one seed: no spread

    # Paired seeds 0 and 1: pa_mpjpe differences 10 and 8, mpjpe 10 and 12, chamfer 1.0 and 1.2.
    assert cells("body_only", diff_line) == {
        "variant": "body_only",
        "pairs": "2",
        "pa_mpjpe_mm": "+9.00 ± 1.41",
        "mpjpe_mm": "+11.0 ± 1.4",
        "chamfer_cm": "+1.10 ± 0.14",
    }
    assert cells("cloth_only", diff_line)["pa_mpjpe_mm"] == "–"
    unpaired = cells("guided_no_feedback", diff_line)  # its seed 2 against the mean of seeds 0 and 1
    assert unpaired["pairs"] == "0" and unpaired["pa_mpjpe_mm"] == "+2.00"
    assert not any(line.startswith("| full_mutual |") for line in lines[lines.index(diff_line) :])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _submit(address: str, job_id: str, *args: str, wait: bool) -> subprocess.CompletedProcess:
    cmd = [_ray_cli(), "job", "submit", "--address", address, "--working-dir", str(REPO), "--submission-id", job_id]
    cmd += ([] if wait else ["--no-wait"]) + ["--", sys.executable, "jobs/train.py", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_job_env())


def _job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "disabled"
    return env


@pytest.mark.slow
def test_ray_job_submit_end_to_end_with_object_store_uri_and_resume(shards, tmp_path):
    """A head node started here; the job streams shards, writes to a file:// URI (the local
    stand-in for object storage through pyarrow), is stopped mid-run and resumed."""
    port, dashboard = _free_port(), _free_port()
    # Ray's unix-socket paths must stay short (<108 bytes): not under pytest's long tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="rayhead")
    head_log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(
        [
            _ray_cli(),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            "--num-cpus=4",
            "--object-store-memory=200000000",
            "--include-dashboard=true",
            "--disable-usage-stats",
            # Ports that default to fixed numbers get free ones: other Rays may run on this machine.
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
            f"--temp-dir={ray_tmp}",
        ],
        env=_job_env(),
        stdout=head_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    store = f"file://{tmp_path / 'bucket'}"
    try:
        for _ in range(90):
            probe = subprocess.run(
                [_ray_cli(), "job", "list", "--address", address], capture_output=True, text=True, env=_job_env()
            )
            if probe.returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the head node did not come up: {(tmp_path / 'head.log').read_text()[-3000:]}")
        args = [
            "--data",
            shards,
            "--out",
            store,
            "--name",
            "job",
            "--workers",
            "1",
            *[a for o in TINY for a in ("--set", o)],
            "--set",
            "train.steps=40",
        ]
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
            logs = subprocess.run(
                [_ray_cli(), "job", "logs", job_id, "--address", address],
                capture_output=True,
                text=True,
                env=_job_env(),
            )
            pytest.fail(f"no checkpoint appeared: {logs.stdout[-3000:]}")
        stop = subprocess.run(
            [_ray_cli(), "job", "stop", job_id, "--address", address],
            capture_output=True,
            text=True,
            env=_job_env(),
            timeout=120,
        )
        assert stop.returncode == 0, stop.stderr
        stopped_at = max(load_checkpoint(p.parent).step for p in checkpoints.glob("checkpoint_*/state.pt"))
        target = stopped_at + 2
        done = _submit(address, "munet-resumed", *args[:-1], f"train.steps={target}", "--resume", wait=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"finished at step {target} (resumed from step {stopped_at})" in done.stdout + done.stderr
        state = max(
            (load_checkpoint(p.parent) for p in checkpoints.glob("checkpoint_*/state.pt")), key=lambda s: s.step
        )
        assert state.step == target
        assert torch.isfinite(torch.stack([v.float().sum() for v in state.model.values()])).all()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        head_log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
