"""Distributed training on Ray: Ray Data shards → Ray Train ``TorchTrainer`` workers running DDP.

The driver (:func:`run_training`) builds a streaming Ray dataset from WebDataset shards and a
``TorchTrainer``; every worker runs :func:`train_loop_per_worker`, which calls the same
:func:`munet.train.step.training_step` as the local trainer. Checkpoints (model, optimizer,
scheduler, step, RNG state, config) are reported by rank 0 every ``train.checkpoint_every``
steps; a restarted or resumed run continues at the exact next step. Gloo on the CPU, NCCL on GPUs.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from munet.config import MuNetConfig, config_from_dict, config_to_dict
from munet.train.checkpoint import load_checkpoint, model_from_checkpoint, restore_training_state, save_checkpoint
from munet.train.optim import OptimizerStep, build_optimizer
from munet.train.storage import (
    checkpoint_dir_name,
    checkpoint_step,
    latest_checkpoint,
    run_has_checkpoints,
    run_location,
    storage_root,
)

log = logging.getLogger(__name__)


def _batches(
    shard: Any, config: MuNetConfig, device: torch.device, rank: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless fixed-size batches from this worker's dataset shard (one pass per epoch), mixed in
    a local shuffle buffer of ``data.shuffle_buffer`` samples seeded by seed, rank and epoch."""
    epoch = 0
    buffer = config.data.shuffle_buffer
    while True:
        produced = 0
        for batch in shard.iter_torch_batches(
            batch_size=config.train.batch_size, drop_last=True, device=device, prefetch_batches=2,
            local_shuffle_buffer_size=buffer or None,
            local_shuffle_seed=config.train.seed + 1000 * rank + epoch if buffer else None,
        ):
            produced += 1
            yield batch
        if produced == 0:
            raise RuntimeError(
                f"worker received no full batch of {config.train.batch_size} samples in epoch "
                f"{epoch}: the data set is smaller than workers × batch size; use more samples "
                "or a smaller train.batch_size"
            )
        epoch += 1


def _replica_spread(model: torch.nn.Module) -> float:
    """Largest difference between ranks of a parameter fingerprint (0 when replicas agree)."""
    import torch.distributed as dist

    fingerprint = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    if not (dist.is_available() and dist.is_initialized()):
        return 0.0
    gathered = [torch.zeros_like(fingerprint) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, fingerprint.to(next(model.parameters()).device))
    values = torch.stack([g.cpu() for g in gathered])
    return float(values.max() - values.min())


def _newest(restored: Any, resume_from: str | None) -> Any:
    """The checkpoint to start from: Ray's restored one (a worker restart within this run) or the
    newest complete one found in storage when the run was resumed, whichever has the later step.

    Ray Train records a checkpoint in its run snapshot only after the upload; a job stopped in
    between leaves a complete checkpoint that only the storage listing knows about.
    """
    import ray.train

    candidates = [c for c in (restored, resume_from and ray.train.Checkpoint(resume_from)) if c]
    return max(candidates, key=lambda c: checkpoint_step(c.path) or 0, default=None)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker training loop (runs inside Ray Train)."""
    import ray.train
    import ray.train.torch

    from munet.body import build_body_model
    from munet.model import MuNet
    from munet.train.step import step_generator, training_step

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    config = config_from_dict(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.train.seed)
    device = ray.train.torch.get_device()

    start, state = 0, None
    checkpoint = _newest(ray.train.get_checkpoint(), loop_config.get("resume_from"))
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(folder)
    network = MuNet(config, build_body_model(config.body)) if state is None else model_from_checkpoint(state, config)
    model = ray.train.torch.prepare_model(network)
    optimizer, scheduler = build_optimizer(model, config)
    stepper = OptimizerStep(model, optimizer, scheduler, config)
    if state is not None:
        start = restore_training_state(state, optimizer, scheduler)
        if rank == 0:
            log.info("resumed from the checkpoint of step %d (%s)", start, checkpoint.path)

    writer = None
    if rank == 0 and loop_config.get("tensorboard_dir"):
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(loop_config["tensorboard_dir"])

    batches = _batches(ray.train.get_dataset_shard("train"), config, device, rank)
    steps, fail_at = config.train.steps, config.train.inject_failure_at_step
    wait = busy = 0.0
    window_start = time.perf_counter()
    for step in range(start + 1, steps + 1):
        tick = time.perf_counter()
        batch = next(batches)
        tock = time.perf_counter()
        loss, logs = training_step(model, batch, step, config, step_generator(config.train.seed, step, rank))
        stepped = stepper(loss, step)
        wait += tock - tick
        busy += time.perf_counter() - tock

        checkpoint_now = step % config.train.checkpoint_every == 0 or step in (steps, fail_at)
        if step % config.train.log_every == 0 or checkpoint_now:
            elapsed = time.perf_counter() - window_start
            metrics = {
                "step": step,
                "loss": float(loss.detach()),
                **{k: float(v) for k, v in logs.items()},
                "lr": optimizer.param_groups[0]["lr"],
                "skipped_steps": stepper.skipped,
                "step_applied": float(stepped),
                "data_wait_frac": wait / max(wait + busy, 1e-9),
                "samples_per_s": world * config.train.batch_size * config.train.log_every / max(elapsed, 1e-9),
                "replica_spread": _replica_spread(model),
                "resumed_from": start,
            }
            wait = busy = 0.0
            window_start = time.perf_counter()
            if writer is not None:
                for key, value in metrics.items():
                    writer.add_scalar(key, value, step)
            if rank == 0:
                log.info(
                    "step %d/%d loss %.4f | %.1f samples/s | data wait %.0f%%",
                    step, steps, metrics["loss"], metrics["samples_per_s"], 100 * metrics["data_wait_frac"],
                )
            if checkpoint_now:
                with tempfile.TemporaryDirectory() as tmp:
                    ckpt = None
                    if rank == 0:
                        save_checkpoint(tmp, step=step, model=model, config=config,
                                        optimizer=optimizer, scheduler=scheduler)
                        ckpt = ray.train.Checkpoint.from_directory(tmp)
                    ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=checkpoint_dir_name(step))
            else:
                ray.train.report(metrics)
        if fail_at is not None and step == fail_at and start < fail_at:
            raise RuntimeError(f"injected failure at step {step} (train.inject_failure_at_step)")
    if writer is not None:
        writer.close()


def training_dataset(data: str, config: MuNetConfig) -> Any:
    """The streaming Ray dataset a training run reads: shards in a new order every epoch when
    ``data.shuffle_buffer`` is positive (the workers mix samples in their local buffers)."""
    from munet.data.decode import ray_dataset

    return ray_dataset(data, config, shuffle_files=config.data.shuffle_buffer > 0)


def build_trainer(
    config: MuNetConfig,
    dataset: Any,
    out: str,
    name: str,
    tensorboard_dir: str | None = None,
    resume_from: str | None = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """A ``TorchTrainer`` for ``config`` reading ``dataset`` and storing under ``out/name``.

    ``resume_from`` is a checkpoint folder or URI to start from when Ray restores none;
    ``callbacks`` are Ray Tune/Train callbacks for the run.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": config.train.cpus_per_worker}
    if config.train.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config_to_dict(config), "tensorboard_dir": tensorboard_dir, "resume_from": resume_from,
        },
        scaling_config=ScalingConfig(
            num_workers=config.train.workers,
            use_gpu=config.train.use_gpu,
            resources_per_worker=resources,
        ),
        torch_config=TorchConfig(backend="nccl" if config.train.use_gpu else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage_root(out),
            failure_config=FailureConfig(max_failures=config.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.train.keep_checkpoints),
            callbacks=callbacks,
        ),
        datasets={"train": dataset},
    )


def run_training(
    config: MuNetConfig,
    data: str,
    out: str,
    name: str = "train",
    resume: bool = False,
) -> Any:
    """Train with Ray Train on the Ray cluster this process is connected to.

    Args:
        config: the run configuration.
        data: shard folder or object-store URI (as written by ``jobs/make_shards.py``).
        out: run storage root, local folder or URI; the run lives in ``out/name``.
        name: the run name.
        resume: continue the run in ``out/name`` from its latest checkpoint.

    Returns:
        The ``ray.train.Result`` (``.checkpoint`` is the last checkpoint, ``.metrics`` its metrics).

    Raises:
        FileExistsError: ``out/name`` already holds checkpoints and ``resume`` is false.
    """
    has_checkpoints = run_has_checkpoints(out, name)
    if has_checkpoints and not resume:
        raise FileExistsError(
            f"{out}/{name} already holds checkpoints of an earlier run. Pass --resume to continue "
            "it, or choose another --out / --name (nothing was overwritten)."
        )
    resume_from = latest_checkpoint(run_location(out, name)) if resume else None
    if resume and resume_from is None:
        log.warning("--resume given but %s/%s has no complete checkpoint yet: starting from step 0", out, name)
    tensorboard_dir = None
    if "://" not in out:
        tensorboard_dir = str(Path(out).resolve() / name / "tensorboard")
    dataset = training_dataset(data, config)
    trainer = build_trainer(config, dataset, out, name, tensorboard_dir, resume_from=resume_from)
    return trainer.fit()
