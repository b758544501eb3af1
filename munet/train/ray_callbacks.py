"""Ray Train callbacks of the distributed trainer (this module imports Ray Train)."""

from __future__ import annotations

from typing import Any

from ray.train import UserCallback

from munet.train.distributed import FatalTrainingError, repeating_failure


class StopOnRepeatingErrors(UserCallback):
    """Ends a run at once when a worker failed in a way that a restart would repeat: bad data or
    NaN/inf losses (:func:`munet.train.distributed.repeating_failure`). It runs in the run's
    controller.

    Ray Train v2 calls ``after_exception`` with the workers' errors before its failure policy
    decides on a restart; an exception raised here becomes a ``ControllerError``, which that
    policy never retries. So the run ends without the worker-group restart that
    ``FailureConfig(max_failures)`` would otherwise spend on it, and
    :func:`munet.train.distributed.run_training` raises the :class:`FatalTrainingError` carried
    inside. Other failures (a lost worker or node) are left to the failure policy.
    """

    def __init__(self, data: str | None = None):
        """``data``: the shard folder or URI, named in the advice."""
        self.data = data

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        """Raise :class:`FatalTrainingError` if any worker's error would repeat."""
        for rank, error in sorted(worker_exceptions.items()):
            message = repeating_failure(error, self.data)
            if message is not None:
                raise FatalTrainingError(f"{message} (worker rank {rank})")
