"""Ray Tune sweep of the mutualistic mechanism: Optuna search, ASHA early stopping, and one Ray
Train ``TorchTrainer`` per trial.

The Ray Train V2 + Tune pattern: each Tune trial runs :func:`run_trial`, a function trainable
that reserves only its own driver CPU(s); it builds the trial's configuration from the sampled
parameters (:func:`munet.tune.space.trial_config`), launches a ``TorchTrainer`` (whose workers
reserve their own resources), and forwards every training report to Tune through a
``TuneReportCallback``. When training ends, the trial evaluates its last checkpoint on held-out
shards (:func:`munet.eval.evaluate`) and reports the held-out errors as its final result.

What Tune sees:

- intermediate results: the workers' training metrics plus ``train_score`` (the training-set
  score ASHA ranks by, see :class:`~munet.tune.settings.AshaSettings`) and NaN placeholders for
  the held-out metrics the searcher optimises (Tune requires every result to name them);
- the final result: the held-out metrics of :data:`munet.metrics.METRIC_KEYS`,
  ``score``, the last ``train_score`` and ``step``, ``eval_samples`` (only this result has it)
  and the checkpoint's location; or, for a trial that raised, ``error`` (the traceback) with
  NaN metrics.

``OUT`` (a local folder or a URI, see :func:`~munet.tune.settings.sweep_location`) is Tune's
storage, and the trials reach it only through that location: the Ray Train run of each trial is
stored under it, its evaluation reads the checkpoint through Ray's ``Checkpoint`` and uploads its
report, and the tables, plot and best configuration are written through pyarrow. Everything lives
in ``OUT/tune``: one folder per trial, named ``trial_NNN`` by creation order, holding
``config.yaml`` (the configuration it trained with), ``train/`` (the Ray Train run and its
checkpoints) and ``eval/`` (the evaluation report).

Failures: a trial whose driver is lost (its node gone) is restarted up to
``SweepSettings.max_failures`` times and continues its training run from the last checkpoint. An
error the trial raises itself (training that Ray Train gave up on, bad data, NaN losses, a failed
evaluation) would only repeat: the trial records it as its final result, without a restart, and
the sweep goes on. An interrupted sweep (Ctrl-C, a lost sweep driver) resumes with
:func:`run_sweep` ``(resume=True)``: finished and failed trials are kept as they are, unfinished
ones continue from their last training checkpoint, and the remaining trials are sampled.
"""

from __future__ import annotations

import logging
import math
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from munet.checkpoint.find import checkpoint_step, latest_checkpoint, run_location
from munet.config import MuNetConfig, save_config
from munet.tune.results import SweepResults, collect_results, write_results
from munet.tune.settings import (
    EXPERIMENT,
    AshaSettings,
    ObjectiveSettings,
    SweepSpec,
    experiment_location,
    trial_location,
    trial_name,
    trial_number,
)
from munet.tune.space import trial_config

if TYPE_CHECKING:
    from ray.tune import Tuner

log = logging.getLogger(__name__)


def train_score(objective: ObjectiveSettings, metrics: dict[str, Any]) -> float:
    """The training-set analogue of the score, from one training report: body ``metric/mpjpe_mm``
    and the unweighted Chamfer term ``loss/cloth_chamfer`` (metres, turned into cm)."""
    return objective.score(metrics["metric/mpjpe_mm"], 100.0 * metrics["loss/cloth_chamfer"])


def _report_callback(objective: ObjectiveSettings) -> Any:
    """A ``TuneReportCallback`` that adds ``train_score`` and the NaN placeholders to every
    forwarded training report (created inside the trial: it binds to the trial's Tune session)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class _ScoredReports(TuneReportCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            first = {**metrics[0], "train_score": train_score(objective, metrics[0]), **_placeholders(objective)}
            super().after_report(run_context, [first, *metrics[1:]], checkpoint)

    return _ScoredReports()


def _placeholders(objective: ObjectiveSettings) -> dict[str, float]:
    """NaN for the held-out metrics the searcher optimises (Tune requires every result to name
    them) and for ``score``."""
    return {objective.body_metric: math.nan, objective.cloth_metric: math.nan, "score": math.nan}


def _upload(folder: Path, location: str) -> None:
    """Copy the files under the local ``folder`` into the folder or URI ``location``."""
    import pyarrow.fs as pafs

    pafs.copy_files(str(folder), location)


def _train_and_evaluate(name: str, config: MuNetConfig, spec: SweepSpec, staging: Path) -> dict[str, Any]:
    """Train trial ``name`` (continuing its run from its newest checkpoint, if any), evaluate the
    last checkpoint on the held-out shards into ``staging/eval`` and upload ``staging`` to the
    trial's folder; returns the trial's final result."""
    from munet.eval import evaluate
    from munet.metrics import METRIC_KEYS
    from munet.train.distributed import build_trainer, training_dataset

    trial = trial_location(spec.out, name)
    run = run_location(trial, "train")
    trainer = build_trainer(
        config,
        training_dataset(spec.data, config.data, config.body),
        out=trial,
        name="train",
        resume_from=latest_checkpoint(run),
        callbacks=[_report_callback(spec.settings.objective)],
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"{name}: training ended without a checkpoint to evaluate")

    evaluation = spec.settings.eval
    with result.checkpoint.as_directory() as checkpoint:  # a local copy when the storage is remote
        summary = evaluate(
            checkpoint,
            spec.val_data,
            staging / "eval",
            max_samples=evaluation.samples,
            num_surface_samples=evaluation.surface_samples,
            num_pictures=evaluation.pictures,
            seed=spec.settings.seed,
        )
    _upload(staging, trial)
    objective = spec.settings.objective
    return {
        **{key: summary[key] for key in METRIC_KEYS},
        "score": objective.score(summary[objective.body_metric], summary[objective.cloth_metric]),
        "train_score": train_score(objective, result.metrics),
        "step": result.metrics["step"],
        "eval_samples": summary["num_samples"],
        "checkpoint": f"{run}/{PurePosixPath(result.checkpoint.path).name}",
    }


def run_trial(params: dict[str, float], spec: SweepSpec) -> None:
    """One trial, run by Tune in its own actor: train, evaluate on held-out shards, report.

    Everything the trial writes goes to its folder under ``spec.out`` through that location
    (:func:`~munet.tune.settings.trial_location`). An error of the training or the evaluation
    is reported as the trial's final result (``error``: the traceback; ``step``: that of the
    run's newest checkpoint) instead of raised, so that Tune does not restart a trial whose
    failure would repeat. Only the loss of an actor (the trial's own with its node, or its
    training controller) reaches Tune, which restarts the trial up to
    ``SweepSettings.max_failures`` times.

    Args:
        params: the sampled point (names of :class:`~munet.tune.space.SearchSpace`).
        spec: the sweep.
    """
    import ray.tune
    from ray.exceptions import RayActorError

    name = ray.tune.get_context().get_trial_name()
    config = trial_config(spec.base, params, spec.trial_overrides.get(trial_number(name)))
    trial = trial_location(spec.out, name)
    with tempfile.TemporaryDirectory(prefix=f"munet-{name}-") as staging:
        save_config(config, Path(staging) / "config.yaml")
        _upload(Path(staging), trial)
        try:
            final = _train_and_evaluate(name, config, spec, Path(staging))
        except RayActorError:
            raise
        except Exception as error:  # the trial's own failure: recorded, not restarted
            log.error("%s failed: %s", name, error)
            newest = latest_checkpoint(run_location(trial, "train")) or ""
            final = {
                **_placeholders(spec.settings.objective),
                "train_score": math.nan,
                "step": checkpoint_step(newest) or 0,
                "error": "".join(traceback.format_exception(error)),
            }
    ray.tune.report(final)


def _trainable(spec: SweepSpec) -> Any:
    from ray import tune

    return tune.with_resources(tune.with_parameters(run_trial, spec=spec), {"CPU": spec.settings.trial_cpus})


def asha_scheduler(asha: AshaSettings, steps: int) -> Any:
    """ASHA over training steps, ranking trials by ``train_score``; ``None`` (no early stopping)
    when the grace period covers the whole run.

    Rungs sit at ``grace · reduction_factorᵏ`` steps, all before the last step: a trial that has
    trained to the end is always evaluated.
    """
    from ray.tune.schedulers import ASHAScheduler

    grace = max(1, round(asha.grace_period * steps))
    if grace >= steps:
        return None
    return ASHAScheduler(
        time_attr="step",
        metric="train_score",
        mode="min",
        max_t=steps - 1,
        grace_period=grace,
        reduction_factor=asha.reduction_factor,
        stop_last_trials=False,
    )


def _warn_if_starved(concurrent: int, resources: dict[str, float]) -> None:
    """Warn when ``concurrent`` trials, each holding ``resources``, need more CPUs than the Ray
    cluster has now: their data decoding may then wait for a CPU that never frees."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if concurrent * resources["CPU"] > cpus:
        log.warning(
            "%d trials at once need %g CPUs (each: driver, workers and one decode task), the cluster has %g now: "
            "unless it grows, trials may wait for data forever. Lower --max-concurrent, or give a local Ray "
            "more CPUs (--num-cpus)",
            concurrent,
            concurrent * resources["CPU"],
            cpus,
        )


def build_tuner(spec: SweepSpec, max_concurrent: int | None = None) -> Tuner:
    """A new ``Tuner`` for ``spec``.

    At most ``max_concurrent`` (else ``settings.max_concurrent``) trials run at once; with
    neither, as many as the cluster holds, recomputed as it grows
    (:class:`~munet.tune.concurrency.ClusterConcurrency`).
    """
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from munet.tune.concurrency import ClusterConcurrency, trial_resources

    settings, steps = spec.settings, spec.base.train.steps
    objective = settings.objective
    if objective.multi_objective:
        searcher = OptunaSearch(
            metric=[objective.body_metric, objective.cloth_metric], mode=["min", "min"], seed=settings.seed
        )
    else:
        searcher = OptunaSearch(metric="score", mode="min", seed=settings.seed)
    concurrent = max_concurrent or settings.max_concurrent
    if concurrent is None:
        searcher = ClusterConcurrency(searcher, trial_resources(spec))
    else:
        _warn_if_starved(concurrent, trial_resources(spec))
    log.info(
        "sweep of %d trials, %s, in %s",
        settings.trials,
        f"at most {concurrent} at once" if concurrent else "as many at once as the cluster holds",
        spec.out,
    )
    return tune.Tuner(
        _trainable(spec),
        param_space=settings.space.tune_space(),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=asha_scheduler(settings.asha, steps),
            num_samples=settings.trials,
            max_concurrent_trials=concurrent,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=spec.out,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures, fail_fast=False),
            verbose=1,
        ),
    )


def restore_tuner(spec: SweepSpec) -> Tuner:
    """The interrupted sweep of ``spec``: finished and failed trials are kept, unfinished ones
    continue (from their last training checkpoint), and the search goes on where it stopped."""
    from ray import tune

    return tune.Tuner.restore(
        experiment_location(spec.out),
        trainable=_trainable(spec),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` produced: the per-trial results and the files written (by name:
    their paths or URIs)."""

    results: SweepResults
    files: dict[str, str]

    @property
    def complete(self) -> bool:
        """Whether every trial has ended (finished, stopped early or failed)."""
        return not self.results.unfinished


def run_sweep(spec: SweepSpec, resume: bool = False, max_concurrent: int | None = None) -> SweepOutcome:
    """Run (or resume) the sweep of ``spec`` on the Ray cluster this process is connected to, then
    write ``results.csv``, ``results.md``, ``pareto.png`` and ``best_config.yaml`` in ``spec.out``
    (a folder or a URI).

    Tune wrapping a ``TorchTrainer`` reaches its training runs through the Ray dashboard: start a local Ray with
    ``init_ray(include_dashboard=True)``.

    Args:
        spec: the sweep (saved to ``spec.out/sweep.yaml`` when it starts).
        resume: continue the sweep already in ``spec.out``.
        max_concurrent: trials at once (new sweeps only: a resumed sweep keeps its own limit).

    Raises:
        FileExistsError: ``spec.out`` already holds a sweep and ``resume`` is false.
    """
    from ray import tune

    experiment = experiment_location(spec.out)
    can_restore = tune.Tuner.can_restore(experiment)
    if can_restore and not resume:
        raise FileExistsError(
            f"{spec.out} already holds a sweep. Pass --resume to continue it, or choose another "
            "--out (nothing was overwritten)."
        )
    if resume and can_restore:
        if max_concurrent is not None:
            log.warning("a resumed sweep keeps its concurrency limit: --max-concurrent is ignored")
        tuner = restore_tuner(spec)
    else:
        if resume:
            log.warning("--resume given but %s holds no Tune experiment yet: starting it", experiment)
        spec.save()
        tuner = build_tuner(spec, max_concurrent)
    tuner.fit()
    results = collect_results(spec.out, spec.settings.objective)
    files = write_results(results, spec)
    if results.unfinished:
        log.warning(
            "the sweep was interrupted with %d trial(s) unfinished: rerun with --resume", len(results.unfinished)
        )
    return SweepOutcome(results=results, files=files)
