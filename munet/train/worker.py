"""What every Ray Train worker runs: :func:`train_loop_per_worker`, one DDP replica's training loop.

A worker starts from the newest checkpoint that loads (Ray's restored one, or the one a resumed
run was given), or from a new network; it trains on its shard of the training dataset with the
same :func:`munet.train.step.training_step` as the local trainer. Every ``train.log_every`` steps,
and at every checkpoint step, all workers report metrics to Ray Train (throughput over all
workers, the fraction of time spent waiting for data, the spread of the replicas' parameters);
rank 0 also logs them, writes them to TensorBoard, and at checkpoint steps saves the checkpoint it
reports. ``train.inject_failure_at_step`` raises in every worker right after that step's
checkpoint, once (a restarted run continues past it), to test recovery.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from munet.checkpoint.find import checkpoint_dir_name, checkpoint_step
from munet.checkpoint.load import model_from_checkpoint
from munet.checkpoint.state import TrainingState, load_checkpoint, restore_training_state, save_checkpoint
from munet.config import MuNetConfig, config_from_dict
from munet.console import setup_console, verbose
from munet.train.optim import OptimizerStep, accumulation_steps, build_optimizer
from munet.train.precision import resolve_precision

log = logging.getLogger(__name__)


@dataclass
class _Replica:
    """One worker's replica of the run: its place in the worker group and what it trains.

    Attributes:
        config: the run configuration.
        rank, world: this worker's rank and the number of workers.
        device: where its model and batches live.
        model: the network, prepared by Ray Train for DDP.
        optimizer, scheduler, stepper: its optimiser, learning-rate schedule and guarded step.
        accumulation: batches per optimisation step (:func:`munet.train.optim.accumulation_steps`).
        start: the last step trained before this (re)start; 0 for a fresh run.
    """

    config: MuNetConfig
    rank: int
    world: int
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stepper: OptimizerStep
    accumulation: int
    start: int

    @property
    def samples_per_step(self) -> int:
        """Samples of one optimisation step over all workers (the global batch)."""
        return self.world * self.config.train.batch_size * self.accumulation


class _Throughput:
    """Seconds spent waiting for batches and computing steps since the last report (the window),
    and the samples this worker drew from each data source since it (re)started."""

    def __init__(self, num_sources: int = 1) -> None:
        self.num_sources = num_sources
        self.source_counts: torch.Tensor | None = None
        self.restart()

    def restart(self) -> None:
        """Start a new window."""
        self.wait = self.busy = 0.0
        self.window_start = self._batch_ready = time.perf_counter()

    def next_batch(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The next batch, its wait counted."""
        tick = time.perf_counter()
        batch = next(batches)
        self._batch_ready = time.perf_counter()
        self.wait += self._batch_ready - tick
        if "source" in batch:  # counted on the device, read at the logging interval
            counts = torch.bincount(batch["source"].reshape(-1), minlength=self.num_sources)
            self.source_counts = counts if self.source_counts is None else self.source_counts + counts
        return batch

    def sources(self) -> dict[str, float]:
        """``data/source<i>``: samples drawn from source ``i`` of ``data.sources`` (or the one
        folder, ``source0``) by this worker since it (re)started."""
        if self.source_counts is None:
            return {}
        return {f"data/source{i}": float(count) for i, count in enumerate(self.source_counts.tolist())}

    def step_done(self) -> None:
        """Count the time since the last batch arrived as computing."""
        self.busy += time.perf_counter() - self._batch_ready

    def rates(self, samples: int) -> dict[str, float]:
        """``data_wait_frac`` (waiting / waiting + computing) and ``samples_per_s`` (``samples``
        over the window's seconds so far)."""
        elapsed = time.perf_counter() - self.window_start
        return {
            "data_wait_frac": self.wait / max(self.wait + self.busy, 1e-9),
            "samples_per_s": samples / max(elapsed, 1e-9),
        }


def _batches(shard: Any, config: MuNetConfig, device: torch.device, rank: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless fixed-size batches from this worker's dataset shard (one pass per epoch), mixed in
    a local shuffle buffer of ``data.shuffle_buffer`` samples seeded by seed, rank and epoch."""
    epoch = 0
    buffer = config.data.shuffle_buffer
    while True:
        produced = 0
        for batch in shard.iter_torch_batches(
            batch_size=config.train.batch_size,
            drop_last=True,
            device=device,
            prefetch_batches=2,
            pin_memory=device.type == "cuda",
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


def _start_state(restored: Any, resume_from: str | None) -> tuple[Any, TrainingState | None]:
    """The checkpoint to start from, and its state: Ray's restored one (a worker restart within
    this run) or the newest readable one found in storage when the run was resumed, whichever
    has the later step; ``(None, None)`` for a fresh start.

    Ray Train records a checkpoint in its run snapshot only after the upload; a job stopped in
    between leaves a complete checkpoint that only the storage listing knows about. A candidate
    that does not load (truncated, unreadable) is skipped with a warning naming it.
    """
    import ray.train

    candidates = [c for c in (restored, resume_from and ray.train.Checkpoint(resume_from)) if c]
    for checkpoint in sorted(candidates, key=lambda c: checkpoint_step(c.path) or 0, reverse=True):
        try:
            with checkpoint.as_directory() as folder:
                return checkpoint, load_checkpoint(folder)
        except (OSError, ValueError) as exc:
            log.warning("skipping checkpoint %s: it is truncated or unreadable (%s)", checkpoint.path, exc)
    if candidates:
        raise FileNotFoundError(
            f"no readable checkpoint among {[c.path for c in candidates]}: restore one, or start a new run"
        )
    return None, None


def _start(config: MuNetConfig, resume_from: str | None) -> _Replica:
    """This worker's replica: the network of the checkpoint to start from (:func:`_start_state`)
    with its optimiser, schedule, guard and RNG states restored, or a new network; prepared for
    DDP on this worker's device."""
    import ray.train
    import ray.train.torch

    from munet.body import build_body_model
    from munet.model import MuNet

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.train.seed)
    device = ray.train.torch.get_device()

    start = 0
    checkpoint, state = _start_state(ray.train.get_checkpoint(), resume_from)
    if state is None:
        network = MuNet(config, build_body_model(config.body))
    else:
        network = model_from_checkpoint(state, config)
    model = ray.train.torch.prepare_model(network)
    optimizer, scheduler = build_optimizer(model, config)
    stepper = OptimizerStep(model, optimizer, scheduler, config.train, device)
    if state is not None:
        start = restore_training_state(state, optimizer, scheduler, stepper)
        if rank == 0:
            log.info(
                "resumed from the checkpoint of step %d (%s), %d non-finite step(s) skipped so far",
                start,
                checkpoint.path,
                stepper.skipped,
            )
    replica = _Replica(
        config,
        rank,
        world,
        device,
        model,
        optimizer,
        scheduler,
        stepper,
        accumulation_steps(config.train, world),
        start,
    )
    if rank == 0:
        log.info(
            "global batch %d = %d per worker × %d worker(s) × %d accumulated; lr %g; precision %s",
            replica.samples_per_step,
            config.train.batch_size,
            world,
            replica.accumulation,
            config.train.lr,
            resolve_precision(config.train.precision, device),
        )
    return replica


def _tensorboard(directory: str | None, rank: int) -> Any:
    """Rank 0's TensorBoard ``SummaryWriter`` into ``directory``; ``None`` on the other ranks or
    without a directory."""
    if rank != 0 or not directory:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(directory)


def _metrics(
    replica: _Replica,
    step: int,
    loss: torch.Tensor,
    logs: dict[str, Any],
    applied: bool,
    throughput: _Throughput,
) -> dict[str, float]:
    """The metrics reported at ``step``: the loss and its terms (``logs``; read from the device
    here, at the logging interval only), learning rate, skipped and applied steps, throughput of
    the window over all workers, replica spread (a collective: every rank computes it at the same
    step) and the step this (re)start began after."""
    config = replica.config
    rates = throughput.rates(replica.samples_per_step * config.train.log_every)
    return {
        "step": step,
        "loss": float(loss.detach()),
        **{k: float(v) for k, v in logs.items()},
        "lr": replica.optimizer.param_groups[0]["lr"],
        "skipped_steps": replica.stepper.skipped,
        "step_applied": float(applied),
        **rates,
        **throughput.sources(),
        "replica_spread": _replica_spread(replica.model),
        "resumed_from": replica.start,
    }


def _show(metrics: dict[str, float], steps: int, samples_per_step: int, rank: int, writer: Any) -> None:
    """Write ``metrics`` to TensorBoard (when ``writer``) and log a progress line on rank 0: step,
    loss, throughput, the share of time spent waiting for data, the time left at this pace and,
    for a mixture, each source's share of the samples so far."""
    step = int(metrics["step"])
    if writer is not None:
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
    if rank == 0:
        rate = metrics["samples_per_s"]
        left = (steps - step) * samples_per_step / rate if rate > 0 else float("inf")
        counts = [value for key, value in metrics.items() if key.startswith("data/source")]
        shares = ""
        if len(counts) > 1:
            shares = " | sources " + "/".join(f"{100 * c / max(sum(counts), 1):.0f}" for c in counts) + "%"
        log.info(
            "step %d/%d loss %.4f | %.1f samples/s | data wait %.0f%% | ETA %s%s",
            step,
            steps,
            metrics["loss"],
            rate,
            100 * metrics["data_wait_frac"],
            duration(left),
            shares,
        )


def duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (``?`` when not finite)."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _report(replica: _Replica, metrics: dict[str, float], with_checkpoint: bool) -> None:
    """Report ``metrics`` to Ray Train; ``with_checkpoint``, every rank reports under the step's
    checkpoint folder name and rank 0 attaches the checkpoint it saves, uploaded as
    ``train.checkpoint_upload`` says (``async``: Ray deletes the local copy once uploaded)."""
    import ray.train
    from ray.train import CheckpointUploadMode

    if not with_checkpoint:
        ray.train.report(metrics)
        return
    step = int(metrics["step"])
    asynchronous = replica.config.train.checkpoint_upload == "async"  # checked by build_trainer
    mode = CheckpointUploadMode.ASYNC if asynchronous else CheckpointUploadMode.SYNC
    folder = tempfile.mkdtemp(prefix="munet-checkpoint-")
    checkpoint = None
    try:
        if replica.rank == 0:
            save_checkpoint(
                folder,
                step=step,
                model=replica.model,
                config=replica.config,
                optimizer=replica.optimizer,
                scheduler=replica.scheduler,
                guard=replica.stepper.state_dict(),
            )
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(
            metrics,
            checkpoint=checkpoint,
            checkpoint_dir_name=checkpoint_dir_name(step),
            checkpoint_upload_mode=mode,
            delete_local_checkpoint_after_upload=checkpoint is not None and mode == CheckpointUploadMode.ASYNC,
        )
    finally:
        if checkpoint is None or mode == CheckpointUploadMode.SYNC:
            shutil.rmtree(folder, ignore_errors=True)


def _inject_failure(step: int, fail_at: int | None, start: int) -> None:
    """Raise after step ``fail_at`` (``train.inject_failure_at_step``) unless this (re)start began
    at or past it.

    The crash it stands for comes after Ray Train's controller has collected the step's report
    and checkpoint: the controller polls the workers every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``
    (2 s by default), and a worker that dies sooner loses the reports still queued, so the run
    would restart from an earlier checkpoint (what Ray does for a real crash at that moment, but
    not the failure this setting exists to test). The worker waits three intervals first."""
    if fail_at is not None and step == fail_at and start < fail_at:
        time.sleep(3 * float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "2.0")))
        raise RuntimeError(f"injected failure at step {step} (train.inject_failure_at_step)")


def _quiet_ray_train_reports() -> None:
    """Keep Ray Train's "Reporting training result ..." line (every report of every worker, with
    all its metrics) off the console unless :func:`munet.console.verbose`. Ray logs it through a
    logger named after its source file, outside ``ray.train``, so ``RunConfig.logging_config``
    does not reach it."""
    if verbose():
        return
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray layout: nothing to quiet
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def _accumulate(
    replica: _Replica, batches: Iterator[dict[str, torch.Tensor]], throughput: _Throughput, step: int
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The backward passes of one optimisation step: ``replica.accumulation`` batches, the
    gradients synchronised between the DDP replicas only in the last one. Returns the last batch's
    loss and logs. Each batch draws from its own generator (:func:`step_generator` with a rank
    index unique over the step's batches)."""
    from munet.train.step import step_generator, training_step

    config, model = replica.config, replica.model
    for index in range(replica.accumulation):
        batch = throughput.next_batch(batches)
        generator = step_generator(config.train.seed, step, replica.rank + index * replica.world)
        last = index == replica.accumulation - 1
        no_sync = getattr(model, "no_sync", None)
        with contextlib.nullcontext() if last or no_sync is None else no_sync():
            loss, logs = training_step(model, batch, step, config, generator)
            replica.stepper.backward(loss, replica.accumulation)
    return loss, logs


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker training loop (runs inside Ray Train).

    Args:
        loop_config: ``config`` (the run's configuration as nested dicts), ``tensorboard_dir``
            (rank 0 writes its metrics there; ``None``: nowhere) and ``resume_from`` (the
            checkpoint to start from when Ray restores none, or ``None``).
    """
    import ray.train

    setup_console(timestamps=False)
    _quiet_ray_train_reports()
    replica = _start(config_from_dict(loop_config["config"]), loop_config.get("resume_from"))
    config, rank = replica.config, replica.rank
    writer = _tensorboard(loop_config.get("tensorboard_dir"), rank)
    batches = _batches(ray.train.get_dataset_shard("train"), config, replica.device, rank)
    steps, fail_at = config.train.steps, config.train.inject_failure_at_step
    throughput = _Throughput(max(len(config.data.sources), 1))
    for step in range(replica.start + 1, steps + 1):
        loss, logs = _accumulate(replica, batches, throughput, step)
        applied = replica.stepper.step(step, logs)
        throughput.step_done()

        checkpoint_now = step % config.train.checkpoint_every == 0 or step in (steps, fail_at)
        if step % config.train.log_every == 0 or checkpoint_now:
            metrics = _metrics(replica, step, loss, logs, applied, throughput)
            throughput.restart()
            _show(metrics, steps, replica.samples_per_step, rank, writer)
            _report(replica, metrics, checkpoint_now)
        _inject_failure(step, fail_at, replica.start)
    if writer is not None:
        writer.close()
