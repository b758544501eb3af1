"""Evaluate a :class:`~munet.config.Schedule` (a scalar that changes with the training step).

Every scheduled quantity of MuNet — loss weights, the teacher-forcing probability, the feedback
weight — goes through :func:`schedule_value`, so that all of them mean the same thing:

- ``constant``: ``start`` at every step;
- ``linear``: ``start`` up to step ``warmup``, then a straight ramp to ``end`` over ``ramp``
  steps, then ``end``;
- ``cosine``: like ``linear`` with a half-cosine ramp (flat at both ends);
- ``step``: ``start`` before step ``warmup``, ``end`` from step ``warmup`` on.

``end`` left empty means ``start`` (the schedule is then constant whatever its kind).
"""

from __future__ import annotations

import math

from munet.config import Schedule

KINDS = ("constant", "linear", "cosine", "step")


def validate_schedule(schedule: Schedule, name: str = "schedule") -> None:
    """Raise ``ValueError`` (naming ``name``) if ``schedule`` has an unknown kind or negative steps."""
    if schedule.kind not in KINDS:
        raise ValueError(f"{name}: unknown schedule kind {schedule.kind!r}; choose one of {list(KINDS)}")
    if schedule.warmup < 0 or schedule.ramp < 0:
        raise ValueError(
            f"{name}: warmup and ramp must be >= 0 steps, got warmup={schedule.warmup}, ramp={schedule.ramp}"
        )
    for field in ("start", "end"):
        value = getattr(schedule, field)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name}: {field} must be finite, got {value}")


def schedule_value(schedule: Schedule, step: int) -> float:
    """The value of ``schedule`` at training step ``step`` (``step >= 0``).

    >>> schedule_value(Schedule(start=0.0, end=1.0, kind="linear", warmup=10, ramp=20), 20)
    0.5
    """
    validate_schedule(schedule)
    if step < 0:
        raise ValueError(f"the training step must be >= 0, got {step}")
    start = schedule.start
    end = start if schedule.end is None else schedule.end
    if schedule.kind == "constant" or step < schedule.warmup:
        return float(start)
    if schedule.kind == "step":
        return float(end)
    if schedule.ramp == 0:
        return float(end)
    progress = min((step - schedule.warmup) / schedule.ramp, 1.0)
    if schedule.kind == "cosine":
        progress = 0.5 * (1.0 - math.cos(math.pi * progress))
    return float(start + (end - start) * progress)
