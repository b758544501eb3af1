"""Distributed training on Ray: Ray Data shards → Ray Train ``TorchTrainer`` workers running DDP.

The driver (:func:`run_training`) builds a streaming Ray dataset from WebDataset shards and a
``TorchTrainer``; every worker runs :func:`munet.train.worker.train_loop_per_worker`, which calls
the same :func:`munet.train.step.training_step` as the local trainer. Checkpoints (model, optimizer,
scheduler, step, RNG state, non-finite step counts, config) are reported by rank 0 every
``train.checkpoint_every`` steps; a restarted or resumed run continues at the exact next step, from
the newest checkpoint that loads. Gloo on the CPU, NCCL on GPUs.

Failures: a worker-group failure (a worker or node lost) is retried up to ``train.max_failures``
times from the last checkpoint. Failures that would repeat on every restart, bad data
(:class:`~munet.data.schema.BadSampleError`) and NaN/inf losses
(:class:`~munet.train.optim.NonFiniteLossError`), end the run at once with a
:class:`FatalTrainingError` (:class:`munet.train.ray_callbacks.StopOnRepeatingErrors`); so does a run that finishes on a
non-finite loss. A resume whose model configuration differs from the checkpoint's is refused
before any worker starts (:class:`ResumeConfigError`).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from munet.checkpoint.find import latest_readable_checkpoint, run_has_checkpoints, run_location, storage_root
from munet.checkpoint.load import network_config_differences
from munet.config import BodyConfig, DataConfig, MuNetConfig, config_to_dict
from munet.console import verbose
from munet.train.optim import NonFiniteLossError, accumulation_steps
from munet.train.precision import resolve_precision
from munet.train.worker import train_loop_per_worker

log = logging.getLogger(__name__)


class FatalTrainingError(RuntimeError):
    """The run stopped on a failure that restarting the workers would only repeat (bad data,
    NaN/inf losses), or finished on a non-finite loss. The message says what and what to do."""


class ResumeConfigError(ValueError):
    """``--resume`` with a configuration whose network differs from the checkpoint's."""


def _error_classes(*roots: type) -> set[str]:
    """The names of ``roots`` and of all their subclasses defined so far."""
    names: set[str] = set()
    pending = list(roots)
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return names


def _error_line(error: BaseException, names: set[str]) -> str | None:
    """The message of the innermost exception of a class in ``names`` that the text of
    ``error`` (Ray's wrappers hold the remote traceback as text) shows, or ``None``."""
    text = f"{error}\n{getattr(error, 'traceback_str', '')}"
    pattern = re.compile(r"^\s*(?:[\w.]+\.)?(" + "|".join(sorted(names)) + r")\)?: (.+)$", re.MULTILINE)
    found = [m.group(2).strip() for m in pattern.finditer(text) if not m.group(2).startswith("ray::")]
    return found[-1] if found else None


def repeating_failure(error: BaseException, data: str | None = None) -> str | None:
    """What to tell the user when ``error`` (a worker's failure, possibly wrapped by Ray) would
    happen again after a restart: bad data or NaN/inf losses; ``None`` for any other failure.

    Args:
        error: the exception a worker raised, as Ray hands it to the controller.
        data: the shard folder, named in the advice.
    """
    import munet.data.shards  # noqa: F401 (defines CorruptShardError, a BadSampleError)
    from munet.data.schema import BadSampleError, is_bad_data

    stop = "training stopped without restarting the workers (the failure would repeat)"
    if is_bad_data(error):
        detail = _error_line(error, _error_classes(BadSampleError)) or str(error).strip().splitlines()[-1]
        return (
            f"{stop}: bad data: {detail}. Run `python -m munet.data check {data or 'DATA'}` to list every "
            "bad shard and sample and regenerate or restore them, or set data.on_bad_sample: skip "
            "(--set data.on_bad_sample=skip) to train without them."
        )
    detail = _error_line(error, _error_classes(NonFiniteLossError))
    if detail is not None or isinstance(error, NonFiniteLossError):
        return f"{stop}: non-finite losses: {detail or error}"
    return None


def training_dataset(location: str | None, data: DataConfig, body: BodyConfig) -> Any:
    """The streaming Ray dataset a training run reads: the weighted mixture of ``data.sources``
    when it lists any, else the shard folder or URI ``location`` (shards in a new order every
    epoch when ``data.shuffle_buffer`` is positive; the workers mix samples in their local
    buffers). Samples may hold some targets only: ``body`` names the trained body model, whose
    topology decides which body meshes supervise it (:func:`munet.body.body_topology`)."""
    from munet.body import body_topology
    from munet.data.ray_dataset import mixture_dataset, ray_dataset

    topology = body_topology(body)
    if data.sources:
        return mixture_dataset(data.sources, data, body=topology)
    if not location:
        raise ValueError("no training data: give a shard folder or URI, or list data.sources")
    return ray_dataset(location, data, shuffle_files=data.shuffle_buffer > 0, body=topology)


def build_trainer(
    config: MuNetConfig,
    dataset: Any,
    out: str,
    name: str,
    tensorboard_dir: str | None = None,
    resume_from: str | None = None,
    callbacks: list[Any] | None = None,
    data: str | None = None,
) -> Any:
    """A ``TorchTrainer`` for ``config`` reading ``dataset`` and storing under ``out/name``.

    Raises:
        ValueError: ``train.global_batch_size`` that the workers cannot split evenly, a
            ``train.precision`` the device cannot run, or an unknown ``train.checkpoint_upload``
            (before any worker starts).

    ``resume_from`` is a checkpoint folder or URI to start from when Ray restores none;
    ``callbacks`` are Ray Tune/Train callbacks for the run, to which
    :class:`~munet.train.ray_callbacks.StopOnRepeatingErrors`
    is added (``data``, the shard folder, is named in its advice).
    """
    import torch
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from munet.train.ray_callbacks import StopOnRepeatingErrors

    # Settings the workers would reject, refused before any starts.
    accumulation_steps(config.train, config.train.workers)
    resolve_precision(config.train.precision, torch.device("cuda" if config.train.use_gpu else "cpu"))
    if config.train.checkpoint_upload not in ("sync", "async"):
        raise ValueError(f"train.checkpoint_upload must be 'sync' or 'async', got {config.train.checkpoint_upload!r}")
    resources = {"CPU": config.train.cpus_per_worker}
    if config.train.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config_to_dict(config),
            "tensorboard_dir": tensorboard_dir,
            "resume_from": resume_from,
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
            callbacks=[*(callbacks or []), StopOnRepeatingErrors(data)],
            # Ray Train's own status lines (worker groups starting...) only when asked for.
            logging_config=LoggingConfig(log_level="INFO" if verbose() else "WARNING"),
        ),
        datasets={"train": dataset},
    )


def resume_checkpoint(config: MuNetConfig, out: str, name: str, resume: bool) -> str | None:
    """Check that run ``out/name`` may start with ``config``; returns the checkpoint to resume
    from (the newest readable one), or ``None`` to start at step 0. Reads only storage: no
    worker starts.

    Raises:
        FileExistsError: ``out/name`` already holds checkpoints and ``resume`` is false.
        munet.checkpoint.find.NoUsableCheckpointError: ``resume`` and no checkpoint of the run loads.
        ResumeConfigError: ``resume`` with ``model``/``graph`` settings other than the checkpoint's;
            the message names each differing key.
    """
    has_checkpoints = run_has_checkpoints(out, name)
    if has_checkpoints and not resume:
        raise FileExistsError(
            f"{out}/{name} already holds checkpoints of an earlier run. Pass --resume to continue "
            "it, or choose another --out / --name (nothing was overwritten)."
        )
    found = latest_readable_checkpoint(run_location(out, name)) if resume else None
    resume_from = None
    if found is not None:
        resume_from, state = found
        differences = network_config_differences(state.config, config)
        if differences:
            raise ResumeConfigError(
                f"cannot resume {out}/{name}: its checkpoint {resume_from} (step {state.step}) holds another "
                f"network than this configuration describes ({'; '.join(differences)}). Resume with the "
                "run's own configuration (its config.yaml), or start a new run under another --name "
                "(nothing was changed)."
            )
    elif resume:
        log.warning("--resume given but %s/%s has no complete checkpoint yet: starting from step 0", out, name)
    return resume_from


def run_training(
    config: MuNetConfig,
    data: str | None,
    out: str,
    name: str = "train",
    resume: bool = False,
    *,
    resume_from: str | None = None,
) -> Any:
    """Train with Ray Train on the Ray cluster this process is connected to.

    Args:
        config: the run configuration.
        data: shard folder or object-store URI (as written by ``munet make-shards`` or
            ``munet convert``); ``None`` with ``data.sources`` (a mixture).
        out: run storage root, local folder or URI; the run lives in ``out/name``.
        name: the run name.
        resume: continue the run in ``out/name`` from its newest readable checkpoint.
        resume_from: with ``resume``, the checkpoint that :func:`resume_checkpoint` returned
            when the caller checked the run already (storage is then not searched again).

    Returns:
        The ``ray.train.Result`` (``.checkpoint`` is the last checkpoint, ``.metrics`` its metrics).

    Raises:
        FileExistsError: ``out/name`` already holds checkpoints and ``resume`` is false.
        munet.checkpoint.find.NoUsableCheckpointError: ``resume`` and no checkpoint of the run loads.
        ResumeConfigError: ``resume`` with ``model``/``graph`` settings other than the checkpoint's
            (raised before any worker starts).
        FatalTrainingError: bad data or NaN/inf losses stopped the run (no restart was tried), or
            its final loss is not finite (its checkpoints are kept).
    """
    if not (resume and resume_from):
        resume_from = resume_checkpoint(config, out, name, resume)
    tensorboard_dir = None
    if "://" not in out:
        tensorboard_dir = str(Path(out).resolve() / name / "tensorboard")
    dataset = training_dataset(data, config.data, config.body)
    trainer = build_trainer(config, dataset, out, name, tensorboard_dir, resume_from=resume_from, data=data)
    try:
        result = trainer.fit()
    except Exception as exc:
        fatal = _fatal_inside(exc)
        if fatal is None:
            raise
        raise fatal from exc
    loss = (result.metrics or {}).get("loss")
    if loss is not None and not math.isfinite(loss):
        raise FatalTrainingError(
            f"training finished at step {result.metrics.get('step')} with a non-finite loss ({loss}; "
            f"{result.metrics.get('skipped_steps')} step(s) skipped as NaN/inf): the model is not usable. "
            "Lower train.lr, check the data (python -m munet.data check), or resume from an earlier "
            f"checkpoint; the checkpoints are kept in {run_location(out, name)}."
        )
    return result


def _fatal_inside(error: BaseException) -> FatalTrainingError | None:
    """The :class:`FatalTrainingError` that Ray's ``ControllerError`` (or a chain) carries."""
    seen: set[int] = set()
    current: Any = error
    while isinstance(current, BaseException) and id(current) not in seen:
        if isinstance(current, FatalTrainingError):
            return current
        seen.add(id(current))
        current = getattr(current, "controller_failure", None) or current.__cause__
    return None
