"""How many trials of a sweep run at once when no limit is given: as many as the cluster holds
now, plus one waiting for room, recomputed whenever Tune asks for a new trial.

Tune reserves only a trial's driver (``trial_cpus``); the trial's training workers ask Ray for
their own resources once the driver runs. Without a limit, drivers could take every CPU of a
fixed-size cluster before any trainer has its workers, and no trial would train. A limit computed
once at the start is 1 on a cold autoscaling cluster (no worker node yet) and stays 1. This one
follows the cluster: the trial waiting for room asks for its workers, an autoscaling cluster adds
a node for them, and the limit grows with the nodes that join (up to the cluster's maximum).

Imports Ray Tune: import it only where a sweep is built.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

from munet.tune.settings import SweepSpec


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """The resources one trial of ``spec`` holds while it trains: its driver's ``trial_cpus``,
    its workers' CPUs (and GPUs), and the CPUs of at least one data-decoding task
    (``data.decode_cpus``; Ray Data's tasks take free CPUs beside the workers, and a trial whose
    decoding finds none never trains)."""
    train = spec.base.train
    cpus = spec.settings.trial_cpus + train.workers * train.cpus_per_worker + spec.base.data.decode_cpus
    resources = {"CPU": cpus}
    if train.use_gpu:
        resources["GPU"] = float(train.workers)
    return resources


class ClusterConcurrency(ConcurrencyLimiter):
    """A ``ConcurrencyLimiter`` whose limit is the number of trials the cluster's resources hold
    at the moment Tune asks for a trial, plus one (see the module docstring).

    Args:
        searcher: the search algorithm to limit (Optuna).
        resources: what one trial holds (:func:`trial_resources`).
    """

    def __init__(self, searcher: Searcher, resources: dict[str, float]):
        self.resources = {name: amount for name, amount in resources.items() if amount > 0}
        super().__init__(searcher, max_concurrent=1)  # Ray may not be up yet: sized in suggest

    def cluster_limit(self) -> int:
        """Trials the cluster's resources hold now, plus one waiting for room."""
        import ray

        cluster = ray.cluster_resources()
        fits = min((int(cluster.get(name, 0) // amount) for name, amount in self.resources.items()), default=0)
        return fits + 1

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's parameters, or ``None`` while the limit is reached."""
        self.max_concurrent = self.cluster_limit()
        return super().suggest(trial_id)
