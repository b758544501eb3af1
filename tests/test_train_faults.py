"""Training faults with real files and a real Ray (issue 15): failures that would repeat (a bad
sample, NaN/inf losses) end the run at once with what to do and a non-zero exit; the non-finite
step count survives a checkpoint; a resume falls back past an unreadable newest checkpoint, and
refuses another model configuration before any worker starts. Nothing on disk is lost."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch

from munet.checkpoint.find import NoUsableCheckpointError, checkpoint_dir_name, latest_readable_checkpoint
from munet.checkpoint.state import load_checkpoint, restore_training_state, save_checkpoint
from munet.config import MuNetConfig, load_config
from munet.model import MuNet
from munet.train.cli import main as train_main
from munet.train.distributed import resume_checkpoint
from munet.train.optim import NonFiniteLossError, OptimizerStep, build_optimizer
from tests.test_distributed import TINY


def _tiny(*extra: str) -> MuNetConfig:
    """The cpu preset shrunk by ``TINY``, with ``extra`` overrides."""
    return load_config("cpu", TINY + list(extra))


def _stepper(config: MuNetConfig, model: MuNet) -> tuple[torch.optim.Optimizer, Any, OptimizerStep]:
    """The optimiser, schedule and guarded step of ``model``."""
    optimizer, scheduler = build_optimizer(model, config)
    return optimizer, scheduler, OptimizerStep(model, optimizer, scheduler, config.train)


def _loss(model: MuNet, scale: float = 1.0) -> torch.Tensor:
    """A real forward pass of ``model`` on a fixed random image, times ``scale``."""
    generator = torch.Generator().manual_seed(0)
    size = model.config.model.image_size
    image = torch.rand(1, 3, size, size, generator=generator)
    K = torch.tensor([[[80.0, 0, size / 2], [0, 80.0, size / 2], [0, 0, 1]]])
    return model(image, K).body_joints.square().mean() * scale


@pytest.fixture(scope="module")
def tiny_model(anny_body) -> MuNet:
    torch.manual_seed(0)
    return MuNet(_tiny(), anny_body)


def _write_run(run: Path, model: MuNet, steps: list[int]) -> list[Path]:
    """Real checkpoints of ``model`` (the ``TINY`` configuration) at ``steps`` under ``run``."""
    config = _tiny()
    optimizer, scheduler, _ = _stepper(config, model)
    return [
        save_checkpoint(
            run / checkpoint_dir_name(step),
            step=step,
            model=model,
            config=config,
            optimizer=optimizer,
            scheduler=scheduler,
        )
        for step in steps
    ]


def _truncate(path: Path) -> bytes:
    """Cut ``path`` to its first 1000 bytes (as a killed writer would); returns what is left."""
    data = path.read_bytes()[:1000]
    path.write_bytes(data)
    return data


def test_non_finite_step_count_survives_a_checkpoint(tmp_path, tiny_model):
    config = _tiny("train.max_bad_steps=2")
    model = MuNet(config, templates=tiny_model.templates)
    model.load_state_dict(tiny_model.state_dict())
    optimizer, scheduler, stepper = _stepper(config, model)
    assert stepper(_loss(model), 1) is True
    assert stepper(_loss(model, float("nan")), 2) is False
    assert stepper(_loss(model, float("inf")), 3) is False
    save_checkpoint(
        tmp_path / "ckpt",
        step=3,
        model=model,
        config=config,
        optimizer=optimizer,
        scheduler=scheduler,
        guard=stepper.state_dict(),
    )

    state = load_checkpoint(tmp_path / "ckpt")
    assert state.guard == {"skipped": 2, "consecutive": 2, "loss_scale": 1.0}
    restored = MuNet(config, templates=tiny_model.templates)
    restored.load_state_dict(state.model)
    optimizer, scheduler, again = _stepper(config, restored)
    assert restore_training_state(state, optimizer, scheduler, again) == 3
    assert again.skipped == 2
    # The third consecutive bad step after the restart is over the limit of 2, as without one.
    with pytest.raises(NonFiniteLossError, match="step 4: .*NaN/inf for 3 consecutive steps"):
        again(_loss(restored, float("nan")), 4)
    assert again.skipped == 3


def test_resume_falls_back_past_unreadable_checkpoints_then_refuses(tmp_path, tiny_model, caplog):
    run = tmp_path / "out" / "run"
    first, newest = _write_run(run, tiny_model, [2, 4])
    cut = _truncate(newest / "state.pt")  # as if the job was killed while writing it

    with caplog.at_level(logging.WARNING, logger="munet.checkpoint.find"):
        folder, state = latest_readable_checkpoint(str(run))
        assert resume_checkpoint(_tiny(), str(tmp_path / "out"), "run", resume=True) == str(first)
    assert folder == str(first) and state.step == 2
    assert f"skipping checkpoint {newest}: its state.pt is truncated or unreadable" in caplog.text
    assert f"resuming from {first} (step 2), the newest readable checkpoint" in caplog.text
    assert (newest / "state.pt").read_bytes() == cut  # left as found
    uri_folder, _ = latest_readable_checkpoint(f"file://{run}")  # object stores: read through pyarrow
    assert uri_folder == f"file://{first}"

    # The workers too: Ray's restored checkpoint (here the truncated one) is passed over.
    import ray.train

    from munet.train.worker import _start_state

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="munet.train.worker"):
        checkpoint, state = _start_state(ray.train.Checkpoint(str(newest)), str(first))
    assert checkpoint.path == str(first) and state.step == 2
    assert f"skipping checkpoint {newest}: it is truncated or unreadable" in caplog.text

    _truncate(first / "state.pt")
    with pytest.raises(NoUsableCheckpointError, match="holds no usable checkpoint") as error:
        latest_readable_checkpoint(str(run))
    assert str(first) in str(error.value) and str(newest) in str(error.value)
    caplog.clear()
    code = train_main(
        [
            "--out",
            str(tmp_path / "out"),
            "--name",
            "run",
            "--resume",
            "--data",
            str(tmp_path),
            *[a for o in TINY for a in ("--set", o)],
        ]
    )
    assert code == 2 and "holds no usable checkpoint" in caplog.text
    assert sorted(p.name for p in run.iterdir()) == [checkpoint_dir_name(2), checkpoint_dir_name(4)]


def test_resume_with_another_model_config_is_refused_before_anything_starts(tmp_path, tiny_model, caplog):
    out = tmp_path / "out"
    (checkpoint,) = _write_run(out / "run", tiny_model, [2])
    before = (checkpoint / "state.pt").read_bytes()

    with caplog.at_level(logging.ERROR, logger="munet.train"):
        # An address nothing listens on: reaching Ray would fail differently, and slowly.
        code = train_main(
            [
                "--out",
                str(out),
                "--name",
                "run",
                "--resume",
                "--config",
                "small",
                "--data",
                str(tmp_path),
                "--address",
                "127.0.0.1:9",
            ]
        )
    assert code == 2
    message = caplog.text
    assert f"cannot resume {out}/run: its checkpoint {checkpoint} (step 2) holds another network" in message
    assert "model.body_channels: checkpoint 16, now 64" in message
    assert "model.encoder: checkpoint 'resnet18', now 'mobilenet_v3_small'" in message
    assert "model.image_size: checkpoint 64, now 128" in message
    assert "graph." not in message  # the graph settings are the same
    assert "train." not in message and "data." not in message  # only what shapes the network
    assert (checkpoint / "state.pt").read_bytes() == before
    assert not (out / "run.config.yaml").exists()  # nothing written for the refused run

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="munet.train"):
        code = train_main(["--out", str(out), "--name", "run", "--data", str(tmp_path), "--address", "127.0.0.1:9"])
    assert code == 2 and "Pass --resume to continue it" in caplog.text


def test_resume_of_a_run_at_its_step_count_trains_nothing(tmp_path, tiny_model, caplog):
    """A finished run resumed with the same (or a smaller) --steps returns 0 without starting Ray or
    writing anything, so that a rebuild script may rerun every leg of a training."""
    out = tmp_path / "out"
    (checkpoint,) = _write_run(out / "run", tiny_model, [4])
    tiny = [a for o in TINY for a in ("--set", o)]
    for steps in ("4", "3"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="munet.train"):
            # An address nothing listens on: reaching Ray would fail.
            code = train_main(
                ["--out", str(out), "--name", "run", "--resume", "--steps", steps, "--data", str(tmp_path)]
                + ["--address", "127.0.0.1:9", *tiny]
            )
        assert code == 0 and f"{out}/run is at step 4 already (--steps {steps}): nothing to train" in caplog.text
    assert sorted(p.name for p in (out / "run").iterdir()) == [checkpoint.name]
    assert not (out / "run.config.yaml").exists()


# ---------------------------------------------------------------- real Ray Train runs


@pytest.fixture(scope="module")
def good_shards(ray_local, tmp_path_factory) -> Path:
    """8 generated samples in 2 shards."""
    from munet.data.generate import generate_shards

    folder = tmp_path_factory.mktemp("shards") / "good"
    generate_shards(str(folder), num_samples=8, seed=3, image_size=96, samples_per_shard=4)
    return folder


@pytest.fixture(scope="module")
def bad_shards(good_shards) -> tuple[Path, str, str]:
    """A copy of ``good_shards`` where one sample of the second shard lacks its mask (the
    manifest updated to match, so that only the sample is bad). Returns the folder, the bad
    shard's path and the bad sample's key."""
    from munet.data.shards import ShardStore

    folder = good_shards.with_name("bad")
    shutil.copytree(good_shards, folder)
    store = ShardStore(str(folder))
    manifest = store.read_manifest()
    shard = folder / manifest.shards[1].name
    buffer = io.BytesIO()
    with tarfile.open(shard) as source, tarfile.open(fileobj=buffer, mode="w") as target:
        members = source.getmembers()
        victim = next(m.name for m in members if m.name.endswith(".mask.png")).rsplit(".mask.png", 1)[0]
        for member in members:
            if member.name != f"{victim}.mask.png":
                target.addfile(member, source.extractfile(member))
    data = buffer.getvalue()
    shard.write_bytes(data)
    entry = dataclasses.replace(manifest.shards[1], size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    store.write_manifest(dataclasses.replace(manifest, shards=[manifest.shards[0], entry]))
    return folder, str(shard), victim


def _args(data: Path, out: Path, *overrides: str) -> list[str]:
    """``jobs/train.py`` flags: run ``OUT/run`` on ``data``, one worker, ``TINY`` and ``overrides``."""
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--name",
        "run",
        "--workers",
        "1",
        *[a for o in [*TINY, "data.shuffle_buffer=0", *overrides] for a in ("--set", o)],
    ]


@pytest.mark.ray
def test_bad_sample_ends_training_at_once_with_what_to_do(bad_shards, tmp_path, caplog):
    folder, shard, key = bad_shards
    before = Path(shard).read_bytes()
    with caplog.at_level(logging.ERROR, logger="munet.train"):
        code = train_main(_args(folder, tmp_path, "train.steps=6", "train.max_failures=2"))
    assert code == 1
    # Had Ray retried, the same error would have come back after max_failures restarts as a
    # WorkerGroupError, which main() does not catch: exit 1 with this message means the first
    # failure ended the run.
    line = next(r.getMessage() for r in caplog.records if "training stopped" in r.getMessage())
    assert "training stopped without restarting the workers (the failure would repeat): bad data:" in line
    assert f"'{key}' in shard {shard}: missing member 'mask.png'" in line
    assert f"python -m munet.data check {folder}" in line and "data.on_bad_sample: skip" in line
    assert Path(shard).read_bytes() == before


@pytest.mark.ray
@pytest.mark.slow
def test_nan_losses_end_the_run_non_zero_and_the_count_survives_resume(good_shards, tmp_path, caplog):
    """A learning rate of 1e30: step 1 applies (finite loss) and blows the weights up, so every later
    step is skipped. Run 1 ends on a NaN loss; the resumed run, with a truncated newer checkpoint
    beside the good one, continues the count and stops at the limit at once."""
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="munet.train"):
        code = train_main(_args(good_shards, tmp_path, "train.steps=2", "train.lr=1e30", "train.max_failures=1"))
    assert code == 1
    assert (
        "training finished at step 2 with a non-finite loss (nan; 1 step(s) skipped as NaN/inf): the model "
        "is not usable"
    ) in caplog.text
    assert f"the checkpoints are kept in {run}" in caplog.text
    good = run / checkpoint_dir_name(2)
    assert load_checkpoint(good).guard == {"skipped": 1, "consecutive": 1}
    kept = (good / "state.pt").read_bytes()
    newer = run / checkpoint_dir_name(3)
    shutil.copytree(good, newer)
    cut = _truncate(newer / "state.pt")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="munet.train"):
        code = train_main(
            _args(
                good_shards, tmp_path, "train.steps=3", "train.lr=1e30", "train.max_bad_steps=1", "train.max_failures=2"
            )
            + ["--resume"]
        )
    assert code == 1
    assert f"skipping checkpoint {newer}: its state.pt is truncated or unreadable" in caplog.text
    assert f"resuming from {good} (step 2), the newest readable checkpoint" in caplog.text
    # 2 consecutive: the bad step counted before the resume, then step 3. Without the count
    # restored, step 3 would be the first and the run would end "finished ... non-finite loss".
    line = next(r.getMessage() for r in caplog.records if "training stopped" in r.getMessage())
    assert (
        "training stopped without restarting the workers (the failure would repeat): non-finite losses: "
        "step 3: the loss or its gradients were NaN/inf for 2 consecutive steps"
    ) in line
    assert "Lower train.lr" in line
    assert (good / "state.pt").read_bytes() == kept and (newer / "state.pt").read_bytes() == cut
